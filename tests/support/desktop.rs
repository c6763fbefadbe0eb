//! The desktop around the app under test: the system's dialogs (GTK, driven with xdotool), the
//! window manager's close, the tray, the clipboard and the threads' scheduling policies, seen
//! as a person or another program would.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::app::App;

/// Runs xdotool, failing the test when it fails.
pub fn xdotool(args: &[&str]) {
    let st = Command::new("xdotool").args(args).status().unwrap();
    assert!(st.success(), "xdotool {args:?}");
}

/// Waits for the system dialog (GTK) titled `title` and gives it the keyboard.
pub fn focus_dialog(title: &str) {
    let found = Command::new("xdotool")
        .args(["search", "--sync", "--onlyvisible", "--name", title])
        .output()
        .unwrap();
    let window = String::from_utf8_lossy(&found.stdout)
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no dialog titled {title:?}"))
        .to_string();
    std::thread::sleep(Duration::from_millis(400));
    xdotool(&["windowfocus", "--sync", &window]);
    std::thread::sleep(Duration::from_millis(500));
}

/// Types into the system's file dialog: its location field takes a path.
pub fn type_into_file_dialog(title: &str, path: &Path) {
    focus_dialog(title);
    xdotool(&["key", "ctrl+l"]);
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&["type", "--delay", "20", &path.display().to_string()]);
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&["key", "Return"]);
}

/// Chooses `dir` in the system's folder dialog: the path typed in its location field opens
/// the folder; Return again (while the dialog is still there) chooses it.
pub fn choose_folder_in_dialog(title: &str, dir: &Path) {
    type_into_file_dialog(title, dir);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        let open = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", title])
            .output()
            .unwrap();
        if !open.status.success() || open.stdout.is_empty() {
            return;
        }
        xdotool(&["key", "Return"]);
    }
    let shot = super::target_dir().join("e2e-dialog.png");
    let _ = Command::new("import")
        .args(["-window", "root"])
        .arg(&shot)
        .status();
    panic!(
        "the dialog {title:?} stayed open (screen: {})",
        shot.display()
    );
}

/// Presses a key in the system dialog titled `title`.
pub fn key_in_dialog(title: &str, key: &str) {
    focus_dialog(title);
    xdotool(&["key", key]);
}

/// The app's visible top-level windows titled "Tusker" (X window ids).
pub fn visible_windows() -> Vec<String> {
    let out = Command::new("xdotool")
        .args(["search", "--onlyvisible", "--name", "^Tusker$"])
        .output()
        .expect("xdotool (apt: xdotool)");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Closes the app's window as a window manager's close button does.
pub fn close_window() {
    let windows = visible_windows();
    assert!(!windows.is_empty(), "no visible Tusker window to close");
    let st = Command::new("/usr/bin/python3")
        .arg(super::repo_root().join("tests/close_window.py"))
        .args(&windows)
        .status()
        .unwrap();
    assert!(st.success(), "close_window.py failed");
}

pub async fn tray_status(app: &App) -> String {
    let r = app.invoke("tray_status", serde_json::json!({})).await;
    r["ok"]
        .as_str()
        .unwrap_or_else(|| panic!("tray_status: {r}"))
        .to_string()
}

pub async fn wait_tray_status(app: &App, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let line = tray_status(app).await;
        if line.contains(want) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "the tray never said {want:?}; it says {line:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn tray(app: &App, action: &str) {
    let r = app
        .invoke("tray_action", serde_json::json!({ "action": action }))
        .await;
    assert!(r.get("ok").is_some(), "tray_action {action}: {r}");
}

/// The text of the system clipboard (read with GTK, as another app would).
pub fn clipboard_text() -> String {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import gi; gi.require_version('Gtk', '3.0'); from gi.repository import Gtk, Gdk; \
             print(Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD).wait_for_text() or '', end='')",
        ])
        .output()
        .expect("python3 with GTK (python3-gi) reads the clipboard");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each thread of a process, by name, with its scheduling policy.
pub fn thread_policies(pid: u32) -> Vec<(String, i32)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let (name, fields) = super::proc_stat(&t.path())?;
            Some((name, fields.get(38)?.parse().ok()?))
        })
        .collect()
}

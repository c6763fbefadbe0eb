//! The tray icon: the uploads' overall progress, Pause all, Resume all, Show Tusker and Quit.
//! Closing the window while uploads are active hides it here instead of quitting (a setting),
//! so a long batch goes on without a window in the way.

use std::collections::HashMap;

use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};
use tusker_core::error::explain::human_bytes;
use tusker_core::{AppSettings, UploadId, UploadState, UploadView};

use crate::state::AppState;

const TRAY_ID: &str = "main";

/// What the tray's menu does. The window's `tray_action` command takes the same names and
/// runs the same code, which is how the end-to-end tests press the menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayAction {
    Show,
    PauseAll,
    ResumeAll,
    Quit,
}

impl TrayAction {
    const ALL: [TrayAction; 4] = [
        TrayAction::Show,
        TrayAction::PauseAll,
        TrayAction::ResumeAll,
        TrayAction::Quit,
    ];

    pub fn id(self) -> &'static str {
        match self {
            TrayAction::Show => "show",
            TrayAction::PauseAll => "pause-all",
            TrayAction::ResumeAll => "resume-all",
            TrayAction::Quit => "quit",
        }
    }

    pub fn from_id(id: &str) -> Option<TrayAction> {
        TrayAction::ALL.into_iter().find(|a| a.id() == id)
    }
}

/// The menu's first line, which shows the progress (Linux trays show no tooltips).
struct StatusLine(MenuItem<tauri::Wry>);

/// Puts the icon in the tray. Without a tray on the desktop (GNOME without its AppIndicator
/// extension) nothing shows, and a second launch of Tusker brings the window back.
pub fn install(app: &AppHandle) -> tauri::Result<()> {
    let status = MenuItem::with_id(app, "status", "No uploads running", false, None::<&str>)?;
    let item = |a: TrayAction, text: &str| MenuItem::with_id(app, a.id(), text, true, None::<&str>);
    let menu = Menu::with_items(
        app,
        &[
            &status,
            &PredefinedMenuItem::separator(app)?,
            &item(TrayAction::Show, "Show Tusker")?,
            &item(TrayAction::PauseAll, "Pause all")?,
            &item(TrayAction::ResumeAll, "Resume all")?,
            &PredefinedMenuItem::separator(app)?,
            &item(TrayAction::Quit, "Quit Tusker")?,
        ],
    )?;
    let mut tray = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Tusker")
        .menu(&menu)
        .on_menu_event(|app, event| {
            if let Some(action) = TrayAction::from_id(event.id().as_ref()) {
                run(app, action);
            }
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    app.manage(StatusLine(status));
    Ok(())
}

/// Does what a menu entry says.
pub fn run(app: &AppHandle, action: TrayAction) {
    tracing::info!(action = action.id(), "tray");
    match action {
        TrayAction::Show => show_window(app),
        TrayAction::PauseAll | TrayAction::ResumeAll => {
            let Some(state) = app.try_state::<AppState>() else {
                return;
            };
            let engine = state.engine.clone();
            tauri::async_runtime::spawn(async move {
                let done = if action == TrayAction::PauseAll {
                    engine.pause_all().await
                } else {
                    engine.resume_all(false).await
                };
                if let Err(e) = done {
                    tracing::warn!(error = %e, action = action.id(), "tray action failed");
                }
            });
        }
        TrayAction::Quit => app.exit(0),
    }
}

/// Brings the window back from the tray (or from behind other windows).
pub fn show_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// The menu's first line as it reads now.
pub fn status_line(app: &AppHandle) -> String {
    app.try_state::<StatusLine>()
        .and_then(|line| line.0.text().ok())
        .unwrap_or_default()
}

/// Shows the progress in the menu's first line, the tooltip and, while uploads run, the
/// title next to the icon.
pub fn show_progress(app: &AppHandle, summary: &Summary) {
    if let Some(line) = app.try_state::<StatusLine>() {
        let _ = line.0.set_text(summary.line());
    }
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_tooltip(Some(format!("Tusker: {}", summary.line())));
        let _ = tray.set_title(summary.title());
    }
}

/// One row as the tray counts it.
#[derive(Debug, Clone, Copy)]
struct Counted {
    state: UploadState,
    acked: u64,
    size: u64,
    speed: f32,
}

/// The uploads not completed yet, kept from the engine's batches: what the tray shows and
/// what notifications compare against (a row's previous state).
#[derive(Debug, Default)]
pub struct Progress {
    rows: HashMap<UploadId, Counted>,
}

/// Counts over the uploads not completed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub uploading: usize,
    /// Waiting their turn.
    pub queued: usize,
    /// Waiting to try again (the network, a busy server).
    pub retrying: usize,
    pub paused: usize,
    /// Failed, file missing or changed, or needing sign-in.
    pub attention: usize,
    /// Over the uploads that will go on (uploading, waiting, paused).
    pub acked: u64,
    pub size: u64,
    pub speed: f64,
}

impl Progress {
    /// Takes one row's latest view; returns its state before (None for a row not seen yet,
    /// or one that completed and left).
    pub fn update(&mut self, v: &UploadView) -> Option<UploadState> {
        // Completed rows leave (100,000 of them would cost megabytes for nothing to show).
        if v.state == UploadState::Completed {
            return self.rows.remove(&v.id).map(|r| r.state);
        }
        let counted = Counted {
            state: v.state,
            acked: v.acked,
            size: v.size,
            speed: v.speed as f32,
        };
        self.rows.insert(v.id, counted).map(|r| r.state)
    }

    pub fn remove(&mut self, id: UploadId) {
        self.rows.remove(&id);
    }

    /// Forgets everything (the engine sent its whole queue again).
    pub fn clear(&mut self) {
        self.rows.clear();
    }

    /// Gives back the map's room once a large batch is done.
    pub fn shrink(&mut self) {
        if self.rows.capacity() > 4 * self.rows.len() + 1024 {
            self.rows.shrink_to_fit();
        }
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for r in self.rows.values() {
            match r.state {
                UploadState::Uploading => s.uploading += 1,
                UploadState::Queued => s.queued += 1,
                UploadState::WaitingToRetry => s.retrying += 1,
                UploadState::Paused => s.paused += 1,
                UploadState::Cancelled | UploadState::Completed => continue,
                UploadState::Failed
                | UploadState::FileMissing
                | UploadState::FileChanged
                | UploadState::NeedsSignIn => {
                    s.attention += 1;
                    continue;
                }
            }
            s.acked += r.acked.min(r.size);
            s.size += r.size;
            s.speed += f64::from(r.speed);
        }
        s
    }
}

impl Summary {
    /// "2 uploading, 10 queued, 1 retrying · 45% of 1.2 GiB · 5.1 MiB/s", or "No uploads
    /// running".
    pub fn line(&self) -> String {
        let counts: Vec<String> = [
            (self.uploading, "uploading"),
            (self.queued, "queued"),
            (self.retrying, "retrying"),
            (self.paused, "paused"),
            (self.attention, "need attention"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if counts.is_empty() {
            return "No uploads running".into();
        }
        let mut line = counts.join(", ");
        if self.size > 0 {
            line += &format!(" · {}% of {}", self.percent(), human_bytes(self.size));
        }
        if self.uploading > 0 && self.speed >= 1.0 {
            line += &format!(" · {}/s", human_bytes(self.speed as u64));
        }
        line
    }

    /// Next to the icon while uploads run ("45%"), else nothing.
    pub fn title(&self) -> Option<String> {
        (self.uploading > 0).then(|| format!("{}%", self.percent()))
    }

    fn percent(&self) -> u64 {
        (self.acked as u128 * 100 / self.size.max(1) as u128) as u64
    }

    /// Uploads that still go on: what closing the window into the tray keeps running.
    pub fn active(&self) -> bool {
        self.uploading + self.queued + self.retrying > 0
    }
}

/// Whether closing the window hides it into the tray instead of quitting: uploads go on and
/// the setting says so. The first time, a notification says where Tusker went.
pub fn close_into_tray(app: &AppHandle) -> bool {
    use tauri_plugin_notification::NotificationExt;
    if !crate::window::ACTIVE.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    let Some(state) = app.try_state::<AppState>() else {
        return false;
    };
    let store = state.engine.store();
    let mut settings = match AppSettings::load(store) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "settings unreadable; closing quits");
            return false;
        }
    };
    if !settings.keep_in_tray {
        return false;
    }
    if !settings.tray_explained {
        let _ = app
            .notification()
            .builder()
            .title("Tusker keeps uploading")
            .body(
                "Your uploads go on in the background. Open Tusker from its tray icon or start \
                 it again; quit from the tray's menu. (Settings: \"Keep uploading in the tray\".)",
            )
            .show();
        settings.tray_explained = true;
        if let Err(e) = settings.save(store) {
            tracing::warn!(error = %e, "could not note that the tray was explained");
        }
    }
    tracing::info!("window closed into the tray; the uploads go on");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: UploadId, state: &str, acked: u64, size: u64, speed: f64) -> UploadView {
        serde_json::from_value(serde_json::json!({
            "id": id, "position": id, "path": "/f", "name": "f", "size": size,
            "endpoint": "http://e/files", "state": state, "error": null, "acked": acked,
            "in_flight": 0, "speed": speed, "eta_secs": null, "retry_at_ms": null,
            "recreated": 0, "resent": 0, "note": null, "profile": null, "asks_host": null
        }))
        .unwrap()
    }

    #[test]
    fn counts_what_goes_on_and_what_needs_attention() {
        let mut p = Progress::default();
        assert_eq!(p.summary().line(), "No uploads running");
        assert_eq!(p.summary().title(), None);
        assert!(!p.summary().active());
        assert_eq!(
            p.update(&view(1, "uploading", 512 << 20, 1 << 30, 5.0 * 1048576.0)),
            None
        );
        p.update(&view(2, "queued", 0, 1 << 30, 0.0));
        p.update(&view(3, "paused", 0, 0, 0.0));
        p.update(&view(4, "failed", 10, 100, 0.0));
        p.update(&view(5, "waiting_to_retry", 0, 0, 0.0));
        let s = p.summary();
        assert_eq!(
            (s.uploading, s.queued, s.retrying, s.paused, s.attention),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(
            s.line(),
            "1 uploading, 1 queued, 1 retrying, 1 paused, 1 need attention · 25% of 2.0 GiB · 5.0 MiB/s"
        );
        assert_eq!(s.title().as_deref(), Some("25%"));
        assert!(s.active());
    }

    #[test]
    fn completed_rows_leave_and_report_their_state_before() {
        let mut p = Progress::default();
        p.update(&view(1, "queued", 0, 10, 0.0));
        assert_eq!(
            p.update(&view(1, "uploading", 5, 10, 1.0)),
            Some(UploadState::Queued)
        );
        assert_eq!(
            p.update(&view(1, "completed", 10, 10, 0.0)),
            Some(UploadState::Uploading)
        );
        // Seen again completed (a later batch): unknown, so not announced twice.
        assert_eq!(p.update(&view(1, "completed", 10, 10, 0.0)), None);
        p.update(&view(2, "paused", 3, 10, 0.0));
        let s = p.summary();
        assert_eq!(s.line(), "1 paused · 30% of 10 B");
        assert_eq!(s.title(), None, "nothing uploading: no title");
        assert!(
            !s.active(),
            "paused uploads do not keep the app in the tray"
        );
        p.remove(2);
        p.update(&view(3, "cancelled", 0, 10, 0.0));
        assert_eq!(p.summary().line(), "No uploads running");
        p.clear();
        assert_eq!(p.summary(), Summary::default());
    }

    #[test]
    fn menu_ids_name_their_actions() {
        for a in TrayAction::ALL {
            assert_eq!(TrayAction::from_id(a.id()), Some(a));
        }
        assert_eq!(TrayAction::from_id("status"), None);
    }
}

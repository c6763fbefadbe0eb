//! Watched folders through `tusker-cli watch` against the real `@tus/server`: files there at
//! start, copied in, in new subfolders, written slowly, renamed from a partial name; ignored
//! names; no content sent twice across restarts; exit 0 on SIGTERM and 130 on Ctrl-C.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{assert_each_once, cli, pattern, wait_for, wait_until, write_file, TusServer};

/// A running `tusker-cli watch` and the lines it printed so far.
struct Watcher {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Watcher {
    fn start(data: &Path, endpoint: &str, dir: &Path) -> Watcher {
        let mut child = cli(data)
            .args(["watch", "--endpoint", endpoint, "--settle", "1", "--plain"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push((Instant::now(), l));
                }
            });
        }
        let w = Watcher { child, lines };
        w.wait_line("watching ");
        w
    }

    fn printed(&self) -> String {
        let lines = self.lines.lock().unwrap();
        lines.iter().map(|(_, l)| format!("{l}\n")).collect()
    }

    /// When the first line containing `text` was printed.
    fn line_at(&self, text: &str) -> Option<Instant> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .find(|(_, l)| l.contains(text))
            .map(|(t, _)| *t)
    }

    fn wait_line(&self, text: &str) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(t) = self.line_at(text) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {text:?} within 60 s; printed:\n{}",
                self.printed()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self, signal: i32) -> (Option<i32>, String) {
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        let status = wait_for(&mut self.child, Duration::from_secs(20));
        if status.is_none() {
            let _ = self.child.kill();
        }
        std::thread::sleep(Duration::from_millis(100));
        (status.and_then(|s| s.code()), self.printed())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}

fn want_of(files: &[&PathBuf]) -> HashMap<[u8; 32], usize> {
    files
        .iter()
        .map(|p| (digest(&std::fs::read(p).unwrap()), 1))
        .collect()
}

#[test]
fn cli_watch_takes_each_settled_file_once_and_never_a_half_written_one() {
    let server = TusServer::start();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let w = root.path();
    // There before the watch starts, as after a time Tusker was closed; ignored names beside.
    let old = write_file(w, "old.bin", 300_000, 1);
    write_file(w, ".hidden", 1_000, 2);
    write_file(w, "movie.mp4.part", 1_000, 3);
    write_file(w, "~$report.docx", 1_000, 4);
    write_file(w, ".cache/inside-hidden-folder.bin", 1_000, 5);

    let watch = Watcher::start(data.path(), &server.endpoint(), w);
    watch.wait_line(&format!("uploaded {}", old.display()));

    // Copied in, in a new subfolder.
    let nested = write_file(w, "sub/deep/new.bin", 200_000, 6);
    watch.wait_line(&format!("uploaded {}", nested.display()));

    // Written slowly and held open across a pause longer than the settle time: it is taken
    // only after the writer closed it, whole.
    let slow = w.join("slow.bin");
    let content = pattern(12 * 65_536, 7);
    let mut f = std::fs::File::create(&slow).unwrap();
    for chunk in content.chunks(65_536).take(11) {
        f.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(2_500));
    f.write_all(content.chunks(65_536).last().unwrap()).unwrap();
    let closed = Instant::now();
    drop(f);
    let queued = watch.wait_line(&format!("queued {}", slow.display()));
    assert!(
        queued >= closed,
        "slow.bin was taken while still open for writing:\n{}",
        watch.printed()
    );
    watch.wait_line(&format!("uploaded {}", slow.display()));

    // A download finishing: written under a partial name, then renamed.
    let partial = write_file(w, "dl.bin.crdownload", 150_000, 8);
    let dl = w.join("dl.bin");
    std::fs::rename(&partial, &dl).unwrap();
    watch.wait_line(&format!("uploaded {}", dl.display()));

    // A copy of content already sent is recognised, not sent again.
    let copy = w.join("copy-of-old.bin");
    std::fs::copy(&old, &copy).unwrap();
    watch.wait_line(&format!("already uploaded (upload 1): {}", copy.display()));

    let (code, printed) = watch.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "SIGTERM ends the watch with 0:\n{printed}");
    for ignored in [
        ".hidden",
        "movie.mp4.part",
        "~$report.docx",
        "inside-hidden-folder",
        "dl.bin.crdownload",
    ] {
        assert!(
            !printed.contains(ignored),
            "{ignored} should be ignored:\n{printed}"
        );
    }
    assert_each_once(&want_of(&[&old, &nested, &slow, &dl]), &server);

    // While the watch is not running: a new file arrives and old.bin is edited in place
    // (same size). The next start takes both; nothing else is sent again.
    let old_v1 = std::fs::read(&old).unwrap();
    let later = write_file(w, "later.bin", 100_000, 9);
    std::thread::sleep(Duration::from_millis(20));
    let mut edited = old_v1.clone();
    edited[150_000] ^= 0xff;
    std::fs::write(&old, &edited).unwrap();

    let watch = Watcher::start(data.path(), &server.endpoint(), w);
    watch.wait_line(&format!("uploaded {}", later.display()));
    watch.wait_line(&format!("uploaded {}", old.display()));
    // A full settle time more: nothing else is taken.
    std::thread::sleep(Duration::from_millis(1_500));
    let (code, printed) = watch.stop(libc::SIGINT);
    assert_eq!(
        code,
        Some(130),
        "Ctrl-C ends the watch with 130:\n{printed}"
    );
    for sent_before in [&nested, &slow, &dl, &copy] {
        assert!(
            !printed.contains(&sent_before.display().to_string()),
            "{} looked at again after the restart:\n{printed}",
            sent_before.display()
        );
    }
    let mut want = want_of(&[&old, &nested, &slow, &dl, &later]);
    want.insert(digest(&old_v1), 1);
    assert_each_once(&want, &server);
}

#[test]
fn cli_watch_refuses_what_is_not_a_folder_and_bad_patterns() {
    let server = TusServer::start();
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let file = write_file(root.path(), "a.bin", 10, 1);
    let out = cli(data.path())
        .args(["watch", "--endpoint", &server.endpoint()])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a folder"), "{err}");
    let out = cli(data.path())
        .args(["watch", "--endpoint", &server.endpoint(), "--ignore", "a/b"])
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("patterns match single file or folder names"),
        "{err}"
    );
    wait_until("nothing was uploaded", Duration::from_secs(1), || {
        server.upload_count() == 0
    });
}

//! Watched folders: files that appear in a folder or its subfolders (new, copied in, moved in,
//! or there already when Tusker starts) are uploaded once they have stopped changing.
//!
//! A file is handed to the engine only when its size and mtime have not moved for the settle
//! time and, where the system can tell (Linux's /proc), no process holds it open for writing:
//! a download or a slow copy is never sent half-written. Whether the content was already sent
//! is the engine's decision by proof (the identity of the integrity work), so a file copied in
//! twice, or seen again after a restart, is not uploaded twice; a file whose stamp is the one
//! the journal recorded for its path is not even re-read.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::identity::changes::{FileWatcher, FsChange};
use crate::identity::fingerprint::FileStamp;
use crate::platform::open_for_writing;
use crate::queue::engine::{AddRequest, AddResult, Engine};

/// Names never uploaded unless the user edits the list: partial downloads, temporary files,
/// Office lock files and hidden files (a pattern matches any part of the path below the
/// watched folder, so a hidden folder's files are skipped too).
pub const DEFAULT_IGNORE: &[&str] = &["*.part", "*.crdownload", "*.tmp", "~$*", ".*"];

/// How long size and mtime must stay the same before a file is taken.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// A full walk now and then catches what the file watcher missed (its queue overflowed, a
/// network file system that sends no events).
const RESCAN_EVERY: Duration = Duration::from_secs(30);

/// Glob patterns (`*` and `?`) matched against each name below the watched folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreRules(Vec<String>);

impl IgnoreRules {
    /// Patterns as a user typed them; blank ones are dropped, a `/` is refused (they match
    /// single names).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<IgnoreRules, String> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            if p.contains('/') {
                return Err(format!(
                    "ignore pattern {p:?} contains '/': patterns match single file or folder names"
                ));
            }
            out.push(p.to_string());
        }
        Ok(IgnoreRules(out))
    }

    pub fn defaults() -> IgnoreRules {
        IgnoreRules(DEFAULT_IGNORE.iter().map(|s| s.to_string()).collect())
    }

    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// Whether `name` (one file or folder name) matches a pattern.
    pub fn ignores_name(&self, name: &str) -> bool {
        self.0.iter().any(|p| glob(p.as_bytes(), name.as_bytes()))
    }

    /// Whether any name of `rel` (a path below the watched folder) matches a pattern.
    pub fn ignores(&self, rel: &Path) -> bool {
        rel.components()
            .any(|c| self.ignores_name(&c.as_os_str().to_string_lossy()))
    }
}

/// `*` any run of characters, `?` one; everything else literal.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// What a file looked like at one look: enough to tell it is still being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    pub size: u64,
    pub mtime_ns: i64,
}

impl From<&FileStamp> for Look {
    fn from(s: &FileStamp) -> Look {
        Look {
            size: s.size,
            mtime_ns: s.mtime_ns,
        }
    }
}

/// Files waiting to stop changing. Pure: the caller looks at the files and tells the time.
#[derive(Debug)]
pub struct Settler {
    settle: Duration,
    waiting: HashMap<PathBuf, (Look, Instant)>,
}

impl Settler {
    pub fn new(settle: Duration) -> Settler {
        Settler {
            settle,
            waiting: HashMap::new(),
        }
    }

    /// Records a look at `path`; a change starts its settle time again.
    pub fn note(&mut self, path: PathBuf, look: Look, now: Instant) {
        match self.waiting.get_mut(&path) {
            Some((seen, since)) if *seen != look => {
                *seen = look;
                *since = now;
            }
            Some(_) => {}
            None => {
                self.waiting.insert(path, (look, now));
            }
        }
    }

    /// Starts the settle time of `path` again (someone still writes it).
    pub fn restart(&mut self, path: &Path, now: Instant) {
        if let Some((_, since)) = self.waiting.get_mut(path) {
            *since = now;
        }
    }

    pub fn forget(&mut self, path: &Path) {
        self.waiting.remove(path);
    }

    /// Forgets `path` and everything below it.
    pub fn forget_under(&mut self, path: &Path) {
        self.waiting.retain(|p, _| !p.starts_with(path));
    }

    /// Files unchanged for the settle time, in name order; they stay until forgotten.
    pub fn due(&self, now: Instant) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .waiting
            .iter()
            .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= self.settle)
            .map(|(p, _)| p.clone())
            .collect();
        out.sort();
        out
    }

    pub fn waiting(&self) -> Vec<PathBuf> {
        self.waiting.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// One watched folder and where its files go.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub dir: PathBuf,
    /// Endpoint, profile, metadata and chunk size of the uploads (its `paths` are ignored).
    pub request: AddRequest,
    pub ignore: IgnoreRules,
    pub settle: Duration,
}

/// What a watched folder did, for the window or the terminal.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// Files handed to the queue and what the queue made of each.
    Added {
        dir: PathBuf,
        results: Vec<AddResult>,
    },
    /// Something the user should know (the folder is gone, cannot be watched).
    Problem { dir: PathBuf, message: String },
}

/// A running watched folder; [`FolderWatch::stop`] ends it.
pub struct FolderWatch {
    dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl FolderWatch {
    /// Starts watching `spec.dir` (which must be a folder), reporting to `events`.
    pub fn start(
        engine: Engine,
        spec: WatchSpec,
        events: mpsc::UnboundedSender<WatchEvent>,
    ) -> crate::Result<FolderWatch> {
        let md = std::fs::metadata(&spec.dir).map_err(|e| crate::Error::Read {
            path: spec.dir.display().to_string(),
            source: e,
        })?;
        if !md.is_dir() {
            return Err(crate::Error::NotAFile(format!(
                "{} is not a folder",
                spec.dir.display()
            )));
        }
        let mut spec = spec;
        // Without links, so each file's path can be checked to lie in it with none on the way.
        spec.dir = std::fs::canonicalize(&spec.dir).map_err(|e| crate::Error::Read {
            path: spec.dir.display().to_string(),
            source: e,
        })?;
        spec.request.endpoint =
            crate::tus::client::parse_endpoint(&spec.request.endpoint)?.to_string();
        let dir = spec.dir.clone();
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(engine, spec, events, stop_rx));
        Ok(FolderWatch {
            dir,
            stop: Some(stop_tx),
            task,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops watching and waits until the task is gone (a hand-over in flight finishes).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// The state of one watched folder's task.
struct Watch {
    engine: Engine,
    spec: WatchSpec,
    events: mpsc::UnboundedSender<WatchEvent>,
    os: Option<FileWatcher>,
    watched_dirs: HashSet<PathBuf>,
    settler: Settler,
    /// The stamp each file had when it was handed over (or that the journal holds for its
    /// path): a file still at that stamp is not looked at again.
    known: HashMap<PathBuf, FileStamp>,
    missing_reported: bool,
}

async fn run(
    engine: Engine,
    spec: WatchSpec,
    events: mpsc::UnboundedSender<WatchEvent>,
    mut stop: oneshot::Receiver<()>,
) {
    let (ftx, mut frx) = mpsc::unbounded_channel();
    let os = match FileWatcher::new(ftx) {
        Ok(w) => Some(w),
        Err(e) => {
            let _ = events.send(WatchEvent::Problem {
                dir: spec.dir.clone(),
                message: format!(
                    "cannot watch for changes ({e}); the folder is looked at every {} s",
                    RESCAN_EVERY.as_secs()
                ),
            });
            None
        }
    };
    let mut w = Watch {
        settler: Settler::new(spec.settle),
        known: HashMap::new(),
        engine,
        events,
        os,
        watched_dirs: HashSet::new(),
        missing_reported: false,
        spec,
    };
    w.seed_from_journal();
    w.scan(&w.spec.dir.clone());
    let tick_every = (w.spec.settle / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_scan = Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            Some(changes) = frx.recv() => w.changes(changes),
            _ = tick.tick() => {
                if last_scan.elapsed() >= RESCAN_EVERY {
                    last_scan = Instant::now();
                    w.scan(&w.spec.dir.clone());
                }
                if !w.hand_over().await {
                    return;
                }
            }
        }
    }
}

impl Watch {
    /// Paths the journal already has for this folder and destination, at the stamp it
    /// recorded.
    fn seed_from_journal(&mut self) {
        let r = &self.spec.request;
        let store = self.engine.store();
        let seeded = store
            .destination(&r.endpoint, &r.metadata, r.profile_id, &r.headers)
            .and_then(|d| store.stamps_under(&self.spec.dir.display().to_string(), &d));
        match seeded {
            Ok(rows) => {
                for (path, stamp) in rows {
                    self.known.insert(PathBuf::from(path), stamp);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the journal for a watched folder"),
        }
    }

    fn rel<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.spec.dir).ok()
    }

    fn ignored(&self, path: &Path) -> bool {
        self.rel(path).is_none_or(|r| self.spec.ignore.ignores(r))
    }

    /// Walks `dir` (watching every folder in it) and notes the files not yet handed over.
    fn scan(&mut self, dir: &Path) {
        if !self.spec.dir.is_dir() {
            if !self.missing_reported {
                self.missing_reported = true;
                let _ = self.events.send(WatchEvent::Problem {
                    dir: self.spec.dir.clone(),
                    message: "the watched folder is missing; it is looked for again every 30 s"
                        .into(),
                });
            }
            return;
        }
        self.missing_reported = false;
        let now = Instant::now();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            self.watch_dir(&d);
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if self.ignored(&path) {
                    continue;
                }
                // Symlinks are not followed: what a watched folder uploads lies in it.
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push(path),
                    Ok(t) if t.is_file() => self.look(path, now),
                    _ => {}
                }
            }
        }
    }

    fn watch_dir(&mut self, dir: &Path) {
        if let Some(os) = self.os.as_mut() {
            if self.watched_dirs.insert(dir.to_path_buf()) {
                os.watch_dir(dir);
            }
        }
    }

    /// Looks at one file: unknown or changed ones wait to settle.
    fn look(&mut self, path: PathBuf, now: Instant) {
        match crate::identity::fingerprint::stamp(&path) {
            Ok(stamp) if self.known.get(&path) == Some(&stamp) => self.settler.forget(&path),
            Ok(stamp) => self.settler.note(path, Look::from(&stamp), now),
            Err(_) => self.settler.forget(&path),
        }
    }

    fn changes(&mut self, changes: Vec<FsChange>) {
        let now = Instant::now();
        for c in changes {
            let path = match c {
                FsChange::Renamed { from, to } => {
                    // Whatever waited below the old name is not there any more: a folder moved
                    // away (and a link put in its place) must not keep its files waiting.
                    self.settler.forget_under(&from);
                    self.known.retain(|p, _| !p.starts_with(&from));
                    to
                }
                FsChange::Modified(p) => p,
                FsChange::Removed(p) => {
                    if !p.exists() {
                        self.settler.forget(&p);
                        self.known.remove(&p);
                        // A folder deleted or moved away: watched again if it comes back.
                        if self.watched_dirs.remove(&p) {
                            if let Some(os) = self.os.as_mut() {
                                os.unwatch_dir(&p);
                            }
                        }
                    }
                    continue;
                }
            };
            if self.ignored(&path) {
                continue;
            }
            match std::fs::symlink_metadata(&path) {
                // A folder created or moved in: its files may be there before its watch is.
                Ok(md) if md.is_dir() => self.scan(&path),
                Ok(md) if md.is_file() => self.look(path, now),
                _ => {}
            }
        }
    }

    /// Hands the settled files to the engine; false once the engine is gone.
    async fn hand_over(&mut self) -> bool {
        if self.settler.is_empty() {
            return true;
        }
        let now = Instant::now();
        for p in self.settler.waiting() {
            self.look(p, now);
        }
        let due = self.settler.due(now);
        if due.is_empty() {
            return true;
        }
        let writing = open_for_writing(&due);
        let mut paths = Vec::new();
        let mut examined = std::collections::BTreeMap::new();
        for p in due {
            if writing.contains(&p) {
                self.settler.restart(&p, now);
                continue;
            }
            // What is handed over is this entry as it is now: never a link, nowhere but in
            // the folder (no folder on the way swapped for a link), and the file opened for
            // the upload must be this very one (device and inode).
            if !crate::identity::files::inside(&self.spec.dir, &p) {
                tracing::warn!(path = %p.display(), "a watched file is now reached through a link; not handed over");
                self.settler.forget(&p);
                continue;
            }
            match std::fs::symlink_metadata(&p) {
                Ok(md) if md.is_file() => {
                    self.settler.forget(&p);
                    self.known.insert(p.clone(), FileStamp::of(&md));
                    examined.insert(p.clone(), crate::platform::FileId::of(&md));
                    paths.push(p);
                }
                _ => self.settler.forget(&p),
            }
        }
        if paths.is_empty() {
            return true;
        }
        tracing::info!(folder = %self.spec.dir.display(), files = paths.len(), "watched folder: handing files to the queue");
        // The files go where the folder's profile points now (edited in the window, or by
        // the CLI beside a running app), never to where it pointed when the watch started.
        let mut request = self.spec.request.clone();
        if let Some(pid) = request.profile_id {
            match self.engine.store().profile(pid) {
                Ok(Some(p)) => request.endpoint = p.endpoint,
                Ok(None) => {
                    let _ = self.events.send(WatchEvent::Problem {
                        dir: self.spec.dir.clone(),
                        message: "its profile was removed: choose another one in Settings".into(),
                    });
                    for p in &paths {
                        self.known.remove(p);
                    }
                    return true;
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the watched folder's profile"),
            }
        }
        let req = AddRequest {
            paths,
            examined,
            ..request
        };
        match self.engine.add(req).await {
            Ok(results) => {
                for r in &results {
                    if let AddResult::AlreadyUploaded { id, path } = r {
                        let Some(stamp) = self.known.get(Path::new(path)) else {
                            continue;
                        };
                        if let Err(e) = self.engine.store().add_proven_copy(path, *id, stamp) {
                            tracing::warn!(error = %e, "journal write failed");
                        }
                    }
                }
                let _ = self.events.send(WatchEvent::Added {
                    dir: self.spec.dir.clone(),
                    results,
                });
                true
            }
            Err(crate::Error::EngineStopped) => false,
            Err(e) => {
                let _ = self.events.send(WatchEvent::Problem {
                    dir: self.spec.dir.clone(),
                    message: e.to_string(),
                });
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases = [
            ("*.part", "movie.mp4.part", true),
            ("*.part", "movie.mp4", false),
            ("*.part", ".part", true),
            ("~$*", "~$report.docx", true),
            ("~$*", "report~$.docx", false),
            (".*", ".hidden", true),
            (".*", "visible.txt", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*", "", true),
            ("*.tmp", "x.tmp.bak", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(glob(p.as_bytes(), s.as_bytes()), want, "{p} vs {s}");
        }
    }

    #[test]
    fn default_rules_skip_partial_temporary_and_hidden_names_at_any_depth() {
        let rules = IgnoreRules::defaults();
        for skipped in [
            "a.part",
            "d/a.crdownload",
            "x.tmp",
            "~$Budget.xlsx",
            ".DS_Store",
            ".git/config",
            "photos/.thumbs/1.jpg",
        ] {
            assert!(rules.ignores(Path::new(skipped)), "{skipped}");
        }
        for taken in ["a.mp4", "d/e/f.jpg", "part.txt", "tmp/x.bin", "a.tmp.mp4"] {
            assert!(!rules.ignores(Path::new(taken)), "{taken}");
        }
    }

    #[test]
    fn rules_refuse_paths_and_drop_blanks() {
        assert!(IgnoreRules::new(&["a/b"]).is_err());
        let r = IgnoreRules::new(&[" *.bak ", "", "  "]).unwrap();
        assert_eq!(r.patterns(), ["*.bak"]);
        assert!(
            !r.ignores(Path::new(".hidden")),
            "the user's list replaces the defaults"
        );
    }

    #[test]
    fn a_file_is_due_only_after_the_settle_time_without_change() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let look = |size, mtime_ns| Look { size, mtime_ns };
        let p = PathBuf::from("/w/a");
        let mut st = Settler::new(Duration::from_millis(2000));
        st.note(p.clone(), look(10, 1), s(0));
        assert!(st.due(s(1999)).is_empty());
        // Same look again: the clock keeps running.
        st.note(p.clone(), look(10, 1), s(1500));
        assert_eq!(st.due(s(2000)), vec![p.clone()]);
        // It grew: wait again from now.
        st.note(p.clone(), look(20, 1), s(2100));
        assert!(st.due(s(4000)).is_empty());
        assert_eq!(st.due(s(4100)), vec![p.clone()]);
        // Same size, new mtime (an in-place rewrite): wait again.
        st.note(p.clone(), look(20, 2), s(4200));
        assert!(st.due(s(6000)).is_empty());
        // Someone holds it open for writing: wait again.
        st.restart(&p, s(6200));
        assert!(st.due(s(8100)).is_empty());
        assert_eq!(st.due(s(8200)), vec![p.clone()]);
        st.forget(&p);
        assert!(st.due(s(99_000)).is_empty());
        assert!(st.is_empty());
    }

    #[test]
    fn due_files_come_in_name_order() {
        let t0 = Instant::now();
        let mut st = Settler::new(Duration::ZERO);
        for n in ["c", "a", "b"] {
            st.note(
                PathBuf::from(n),
                Look {
                    size: 1,
                    mtime_ns: 1,
                },
                t0,
            );
        }
        assert_eq!(
            st.due(t0),
            [PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("c")]
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_held_open_for_writing_is_seen_as_being_written() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&b, b"done").unwrap();
        let mut f = std::fs::File::create(&a).unwrap();
        f.write_all(b"half").unwrap();
        let _reader = std::fs::File::open(&b).unwrap();
        let paths = [a.clone(), b.clone()];
        assert_eq!(open_for_writing(&paths), HashSet::from([a.clone()]));
        drop(f);
        assert!(open_for_writing(&paths).is_empty());
    }
}

//! Noticing, while Tusker runs, that a file in the queue was renamed, moved, modified or
//! deleted (inotify on Linux, the notify crate elsewhere; a save that writes in bursts is one
//! change).
//! The stamp checks in the upload loop stay as the last line of defence; the watcher makes
//! the reaction immediate and lets the journal follow renames.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// A change to a file the queue cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsChange {
    /// Renamed or moved within watched folders: the journal's path follows.
    Renamed { from: PathBuf, to: PathBuf },
    /// Content written (or the file replaced by another one renamed over it).
    Modified(PathBuf),
    /// Deleted, or moved somewhere not watched.
    Removed(PathBuf),
}

/// What the operating system reported, before renames are paired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawChange {
    Written(PathBuf),
    Removed(PathBuf),
    /// The first half of a rename; the cookie pairs it with its `MovedTo`.
    MovedFrom(u32, PathBuf),
    MovedTo(u32, PathBuf),
}

/// Watches the folders of the files in the queue, reference-counted per folder.
pub struct FileWatcher {
    os: os::Watcher,
    dirs: HashMap<PathBuf, usize>,
}

impl FileWatcher {
    /// Starts a watcher that sends batches of changes to `tx`.
    pub fn new(tx: mpsc::UnboundedSender<Vec<FsChange>>) -> std::io::Result<FileWatcher> {
        Ok(FileWatcher {
            os: os::Watcher::new(tx)?,
            dirs: HashMap::new(),
        })
    }

    /// Starts watching the folder of `file` (once per folder).
    pub fn watch(&mut self, file: &Path) {
        let Some(dir) = file.parent() else { return };
        let count = self.dirs.entry(dir.to_path_buf()).or_insert(0);
        *count += 1;
        if *count == 1 {
            if let Err(e) = self.os.watch(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder");
            }
        }
    }

    /// Starts watching `dir` itself (a watched folder and each folder in it).
    pub fn watch_dir(&mut self, dir: &Path) {
        let count = self.dirs.entry(dir.to_path_buf()).or_insert(0);
        *count += 1;
        if *count == 1 {
            if let Err(e) = self.os.watch(dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder");
            }
        }
    }

    /// Stops watching `dir` itself (a folder gone from a watched folder).
    pub fn unwatch_dir(&mut self, dir: &Path) {
        if let Some(count) = self.dirs.get_mut(dir) {
            *count -= 1;
            if *count == 0 {
                self.dirs.remove(dir);
                self.os.unwatch(dir);
            }
        }
    }

    /// Stops watching the folder of `file` when no other file there needs it.
    pub fn unwatch(&mut self, file: &Path) {
        let Some(dir) = file.parent() else { return };
        if let Some(count) = self.dirs.get_mut(dir) {
            *count -= 1;
            if *count == 0 {
                self.dirs.remove(dir);
                self.os.unwatch(dir);
            }
        }
    }
}

/// Turns what the system reported in one quiet spell into the changes the queue acts on:
/// the two halves of a rename become one change, a burst of writes to a file one. Reads and
/// metadata-only changes (a `touch`) are never reported; the stamp checks catch those.
pub fn classify(raw: &[RawChange]) -> Vec<FsChange> {
    use std::collections::HashSet;
    let tos: HashMap<u32, &PathBuf> = raw
        .iter()
        .filter_map(|r| match r {
            RawChange::MovedTo(cookie, p) => Some((*cookie, p)),
            _ => None,
        })
        .collect();
    let froms: HashSet<u32> = raw
        .iter()
        .filter_map(|r| match r {
            RawChange::MovedFrom(cookie, _) => Some(*cookie),
            _ => None,
        })
        .collect();
    let mut out: Vec<FsChange> = Vec::new();
    for r in raw {
        let changes = match r {
            RawChange::Written(p) => vec![FsChange::Modified(p.clone())],
            RawChange::Removed(p) => vec![FsChange::Removed(p.clone())],
            RawChange::MovedFrom(cookie, from) => match tos.get(cookie) {
                // Whatever was at the destination was replaced (first, so that the upload
                // that follows the rename is not taken for the replaced one).
                Some(&to) => vec![
                    FsChange::Modified(to.clone()),
                    FsChange::Renamed {
                        from: from.clone(),
                        to: to.clone(),
                    },
                ],
                None => vec![FsChange::Removed(from.clone())],
            },
            // Reported with its first half.
            RawChange::MovedTo(cookie, _) if froms.contains(cookie) => vec![],
            RawChange::MovedTo(_, to) => vec![FsChange::Modified(to.clone())],
        };
        for c in changes {
            if out.last() != Some(&c) {
                out.push(c);
            }
        }
    }
    out
}

/// Linux: inotify with only the events that can change what the queue holds. (The notify
/// crate also asks for every open, so each read of a queued file, Tusker's own included,
/// woke its thread: with 100,000 small files that was about 8% of the run's time.)
#[cfg(target_os = "linux")]
mod os {
    use super::{classify, FsChange, RawChange};
    use inotify::{EventMask, Inotify, WatchMask};
    use std::collections::HashMap;
    use std::os::fd::AsRawFd;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use tokio::sync::mpsc;

    /// A save that writes in bursts is reported once it has been quiet this long...
    const QUIET: Duration = Duration::from_millis(50);
    /// ...or this long after its first event, whichever comes first.
    const MOST: Duration = Duration::from_millis(200);

    const MASK: WatchMask = WatchMask::MODIFY
        .union(WatchMask::CREATE)
        .union(WatchMask::CLOSE_WRITE)
        .union(WatchMask::DELETE)
        .union(WatchMask::MOVED_FROM)
        .union(WatchMask::MOVED_TO)
        .union(WatchMask::DELETE_SELF)
        .union(WatchMask::ONLYDIR);

    type Dirs = Arc<Mutex<HashMap<i32, PathBuf>>>;

    pub struct Watcher {
        watches: inotify::Watches,
        dirs: Dirs,
        by_path: HashMap<PathBuf, inotify::WatchDescriptor>,
        stop: Arc<AtomicBool>,
    }

    impl Watcher {
        pub fn new(tx: mpsc::UnboundedSender<Vec<FsChange>>) -> std::io::Result<Watcher> {
            let inotify = Inotify::init()?;
            let watches = inotify.watches();
            let dirs = Dirs::default();
            let stop = Arc::new(AtomicBool::new(false));
            let (d, s) = (dirs.clone(), stop.clone());
            std::thread::Builder::new()
                .name("file-watcher".into())
                .spawn(move || run(inotify, d, tx, s))?;
            Ok(Watcher {
                watches,
                dirs,
                by_path: HashMap::new(),
                stop,
            })
        }

        pub fn watch(&mut self, dir: &Path) -> std::io::Result<()> {
            // Under the lock, so an event of the new watch is never read before its folder
            // is known.
            let mut dirs = lock(&self.dirs);
            let wd = self.watches.add(dir, MASK)?;
            dirs.insert(wd.get_watch_descriptor_id(), dir.to_path_buf());
            self.by_path.insert(dir.to_path_buf(), wd);
            Ok(())
        }

        pub fn unwatch(&mut self, dir: &Path) {
            if let Some(wd) = self.by_path.remove(dir) {
                lock(&self.dirs).remove(&wd.get_watch_descriptor_id());
                let _ = self.watches.remove(wd);
            }
        }
    }

    impl Drop for Watcher {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Reads events, waits for a quiet spell, then sends what changed.
    fn run(
        mut inotify: Inotify,
        dirs: Dirs,
        tx: mpsc::UnboundedSender<Vec<FsChange>>,
        stop: Arc<AtomicBool>,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut raw: Vec<RawChange> = Vec::new();
        let (mut first, mut last) = (Instant::now(), Instant::now());
        loop {
            if stop.load(Ordering::Relaxed) || tx.is_closed() {
                return;
            }
            // Wakes at least 4 times a second to notice the stop.
            let wait = if raw.is_empty() {
                Duration::from_millis(250)
            } else {
                QUIET.min(MOST.saturating_sub(first.elapsed()))
            };
            if readable(&inotify, wait) {
                match inotify.read_events(&mut buf) {
                    Ok(events) => {
                        let dirs = lock(&dirs);
                        for e in events {
                            if e.mask.contains(EventMask::Q_OVERFLOW) {
                                tracing::warn!("file watcher queue overflowed; changes are caught by the stamp checks");
                                continue;
                            }
                            let Some(dir) = dirs.get(&e.wd.get_watch_descriptor_id()) else {
                                continue;
                            };
                            let path = match e.name {
                                Some(name) => dir.join(name),
                                None => dir.clone(),
                            };
                            let change = if e.mask.intersects(
                                EventMask::MODIFY | EventMask::CLOSE_WRITE | EventMask::CREATE,
                            ) {
                                RawChange::Written(path)
                            } else if e
                                .mask
                                .intersects(EventMask::DELETE | EventMask::DELETE_SELF)
                            {
                                RawChange::Removed(path)
                            } else if e.mask.contains(EventMask::MOVED_FROM) {
                                RawChange::MovedFrom(e.cookie, path)
                            } else if e.mask.contains(EventMask::MOVED_TO) {
                                RawChange::MovedTo(e.cookie, path)
                            } else {
                                continue;
                            };
                            if raw.is_empty() {
                                first = Instant::now();
                            }
                            last = Instant::now();
                            raw.push(change);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "file watcher stopped; changes are caught by the stamp checks");
                        return;
                    }
                }
            }
            if !raw.is_empty() && (last.elapsed() >= QUIET || first.elapsed() >= MOST) {
                let changes = classify(&raw);
                raw.clear();
                if !changes.is_empty() && tx.send(changes).is_err() {
                    return;
                }
            }
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `wait` for events.
    fn readable(inotify: &Inotify, wait: Duration) -> bool {
        let mut fd = libc::pollfd {
            fd: inotify.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, owned by this frame, for the call's duration.
        let n = unsafe { libc::poll(&mut fd, 1, wait.as_millis() as libc::c_int) };
        n > 0
    }
}

/// Elsewhere: the notify crate, with its debouncer pairing renames.
#[cfg(not(target_os = "linux"))]
mod os {
    use super::{classify, FsChange, RawChange};
    use notify_debouncer_full::notify::event::{ModifyKind, RenameMode};
    use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
    use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
    use std::path::Path;
    use std::time::Duration;
    use tokio::sync::mpsc;

    pub struct Watcher(Debouncer<RecommendedWatcher, RecommendedCache>);

    impl Watcher {
        pub fn new(tx: mpsc::UnboundedSender<Vec<FsChange>>) -> std::io::Result<Watcher> {
            let debouncer = new_debouncer(
                Duration::from_millis(200),
                None,
                move |res: DebounceEventResult| match res {
                    Ok(events) => {
                        let mut raw = Vec::new();
                        for (n, e) in events.iter().enumerate() {
                            let paths = &e.event.paths;
                            match e.event.kind {
                                EventKind::Modify(ModifyKind::Name(RenameMode::Both))
                                    if paths.len() == 2 =>
                                {
                                    let cookie = n as u32 + 1;
                                    raw.push(RawChange::MovedFrom(cookie, paths[0].clone()));
                                    raw.push(RawChange::MovedTo(cookie, paths[1].clone()));
                                }
                                EventKind::Modify(ModifyKind::Name(RenameMode::From)) => raw
                                    .extend(
                                        paths.iter().map(|p| RawChange::MovedFrom(0, p.clone())),
                                    ),
                                EventKind::Modify(ModifyKind::Name(RenameMode::To)) => raw
                                    .extend(paths.iter().map(|p| RawChange::MovedTo(0, p.clone()))),
                                EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                                    raw.extend(paths.iter().cloned().map(RawChange::Written))
                                }
                                EventKind::Remove(_) => {
                                    raw.extend(paths.iter().cloned().map(RawChange::Removed))
                                }
                                _ => {}
                            }
                        }
                        let changes = classify(&raw);
                        if !changes.is_empty() {
                            let _ = tx.send(changes);
                        }
                    }
                    Err(errors) => {
                        for e in errors {
                            tracing::warn!(error = %e, "file watcher error");
                        }
                    }
                },
            )
            .map_err(std::io::Error::other)?;
            Ok(Watcher(debouncer))
        }

        pub fn watch(&mut self, dir: &Path) -> std::io::Result<()> {
            self.0
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(std::io::Error::other)
        }

        pub fn unwatch(&mut self, dir: &Path) {
            let _ = self.0.unwatch(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_what_matters() {
        let a = PathBuf::from("/d/a");
        let b = PathBuf::from("/d/b");
        let c = PathBuf::from("/d/c");
        let changes = classify(&[
            RawChange::MovedFrom(7, a.clone()),
            RawChange::MovedTo(7, b.clone()),
            RawChange::Written(a.clone()),
            RawChange::Written(a.clone()),
            RawChange::Written(a.clone()),
            RawChange::Removed(a.clone()),
            // Moved out of the watched folders, and in from elsewhere.
            RawChange::MovedFrom(8, c.clone()),
            RawChange::MovedTo(9, a.clone()),
        ]);
        assert_eq!(
            changes,
            vec![
                FsChange::Modified(b.clone()),
                FsChange::Renamed {
                    from: a.clone(),
                    to: b
                },
                FsChange::Modified(a.clone()),
                FsChange::Removed(a.clone()),
                FsChange::Removed(c),
                FsChange::Modified(a),
            ]
        );
    }

    /// The real watcher (inotify here) on a real folder: a rename arrives as one change, a
    /// burst of writes as one, a deletion as a removal, and reading the file reports nothing.
    #[test]
    fn reports_renames_writes_and_deletes_but_not_reads() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        let b = dir.path().join("b.bin");
        std::fs::write(&a, b"one").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut w = FileWatcher::new(tx).unwrap();
        w.watch(&a);
        let next = |rx: &mut mpsc::UnboundedReceiver<Vec<FsChange>>| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                if let Ok(changes) = rx.try_recv() {
                    return changes;
                }
                assert!(std::time::Instant::now() < deadline, "no change reported");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        };
        // Reads first: if they were reported, they would come before the rename.
        for _ in 0..3 {
            std::fs::read(&a).unwrap();
        }
        std::fs::rename(&a, &b).unwrap();
        assert_eq!(
            next(&mut rx),
            vec![
                FsChange::Modified(b.clone()),
                FsChange::Renamed {
                    from: a.clone(),
                    to: b.clone()
                }
            ]
        );
        let mut f = std::fs::OpenOptions::new().append(true).open(&b).unwrap();
        for _ in 0..20 {
            f.write_all(b"more").unwrap();
        }
        drop(f);
        assert_eq!(next(&mut rx), vec![FsChange::Modified(b.clone())]);
        std::fs::remove_file(&b).unwrap();
        assert_eq!(next(&mut rx), vec![FsChange::Removed(b.clone())]);
        w.unwatch(&b);
    }
}

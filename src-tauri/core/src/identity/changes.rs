//! Noticing, while Tusker runs, that a file in the queue was renamed, moved, modified or
//! deleted (inotify on Linux, the notify crate elsewhere; a save that writes in bursts is one
//! change).
//! The stamp checks in the upload loop stay as the last line of defence; the watcher makes
//! the reaction immediate and lets the journal follow renames.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

use crate::platform::{RawChange, RawSink, Watcher};

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

/// Watches the folders of the files in the queue, reference-counted per folder.
pub struct FileWatcher {
    os: Watcher,
    dirs: HashMap<PathBuf, usize>,
}

impl FileWatcher {
    /// Starts a watcher that sends batches of changes to `tx`.
    pub fn new(tx: mpsc::UnboundedSender<Vec<FsChange>>) -> std::io::Result<FileWatcher> {
        Ok(FileWatcher {
            os: Watcher::new(Box::new(Classified(tx)))?,
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

/// Delivers what the system reported as the changes the queue acts on.
struct Classified(mpsc::UnboundedSender<Vec<FsChange>>);

impl RawSink for Classified {
    fn deliver(&self, raw: Vec<RawChange>) -> bool {
        let changes = classify(&raw);
        changes.is_empty() || self.0.send(changes).is_ok()
    }

    fn closed(&self) -> bool {
        self.0.is_closed()
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

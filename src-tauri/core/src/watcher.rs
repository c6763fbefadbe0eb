//! Noticing, while Tusker runs, that a file in the queue was renamed, moved, modified or
//! deleted (notify with a debouncer, so a save that writes in bursts is one event).
//! The stamp checks in the upload loop stay as the last line of defence; the watcher makes
//! the reaction immediate and lets the journal follow renames.

use notify_debouncer_full::notify::event::{ModifyKind, RenameMode};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
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

/// Watches the folders of the files in the queue, reference-counted per folder.
pub struct FileWatcher {
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    dirs: HashMap<PathBuf, usize>,
}

impl FileWatcher {
    /// Starts a watcher that sends batches of changes to `tx`.
    pub fn new(
        tx: mpsc::UnboundedSender<Vec<FsChange>>,
    ) -> notify_debouncer_full::notify::Result<FileWatcher> {
        let debouncer = new_debouncer(
            Duration::from_millis(200),
            None,
            move |res: DebounceEventResult| match res {
                Ok(events) => {
                    let changes =
                        classify(events.iter().map(|e| (&e.event.kind, &e.event.paths[..])));
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
        )?;
        Ok(FileWatcher {
            debouncer,
            dirs: HashMap::new(),
        })
    }

    /// Starts watching the folder of `file` (once per folder).
    pub fn watch(&mut self, file: &Path) {
        let Some(dir) = file.parent() else { return };
        let count = self.dirs.entry(dir.to_path_buf()).or_insert(0);
        *count += 1;
        if *count == 1 {
            if let Err(e) = self.debouncer.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder");
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
                let _ = self.debouncer.unwatch(dir);
            }
        }
    }
}

/// Turns raw notify events into the changes the queue acts on. Reads and metadata-only
/// changes (a `touch`) are ignored here; the stamp checks catch those.
pub fn classify<'a>(events: impl Iterator<Item = (&'a EventKind, &'a [PathBuf])>) -> Vec<FsChange> {
    let mut out = Vec::new();
    for (kind, paths) in events {
        match kind {
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if paths.len() == 2 => {
                // Whatever was at the destination was replaced (first, so that the upload
                // that follows the rename is not taken for the replaced one).
                out.push(FsChange::Modified(paths[1].clone()));
                out.push(FsChange::Renamed {
                    from: paths[0].clone(),
                    to: paths[1].clone(),
                });
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                out.extend(paths.iter().cloned().map(FsChange::Removed));
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                out.extend(paths.iter().cloned().map(FsChange::Modified));
            }
            EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => {
                out.extend(paths.iter().cloned().map(FsChange::Modified));
            }
            EventKind::Remove(_) => out.extend(paths.iter().cloned().map(FsChange::Removed)),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_debouncer_full::notify::event::{AccessKind, DataChange, MetadataKind, RemoveKind};

    #[test]
    fn classifies_what_matters() {
        let a = PathBuf::from("/d/a");
        let b = PathBuf::from("/d/b");
        let both = [a.clone(), b.clone()];
        let one = [a.clone()];
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        let touch = EventKind::Modify(ModifyKind::Metadata(MetadataKind::WriteTime));
        let read = EventKind::Access(AccessKind::Read);
        let rm = EventKind::Remove(RemoveKind::File);
        let changes = classify(
            [
                (&rename, &both[..]),
                (&write, &one[..]),
                (&touch, &one[..]),
                (&read, &one[..]),
                (&rm, &one[..]),
            ]
            .into_iter(),
        );
        assert_eq!(
            changes,
            vec![
                FsChange::Modified(b.clone()),
                FsChange::Renamed {
                    from: a.clone(),
                    to: b
                },
                FsChange::Modified(a.clone()),
                FsChange::Removed(a),
            ]
        );
    }
}

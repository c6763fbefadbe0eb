//! What the file system says of queued files: each change is looked at off the engine's
//! thread, then a rename is followed and an edit restarts or fails the upload.

use super::*;

/// A change the watcher saw, with what the disk says of it now, looked at off the engine's
/// thread (a stat on a hung network mount must not hold the queue).
pub(super) enum Looked {
    Renamed {
        from: PathBuf,
        to: PathBuf,
    },
    Modified {
        path: PathBuf,
        size: SizeNow,
    },
    /// Something stands at the path again (or the disk did not say).
    Removed {
        path: PathBuf,
        still_there: bool,
    },
}

/// What a written file's size is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SizeNow {
    Bytes(u64),
    /// Gone, or not a regular file any more (a link, say).
    NotAFile,
    /// The disk did not answer in time.
    Unknown,
}

impl Looked {
    /// What the disk says of `change` now (a stat each).
    fn look(change: FsChange) -> Looked {
        match change {
            FsChange::Renamed { from, to } => Looked::Renamed { from, to },
            FsChange::Modified(path) => Looked::Modified {
                size: match crate::identity::fingerprint::stamp(&path) {
                    Ok(s) => SizeNow::Bytes(s.size),
                    Err(_) => SizeNow::NotAFile,
                },
                path,
            },
            FsChange::Removed(path) => Looked::Removed {
                still_there: std::fs::symlink_metadata(&path).is_ok(),
                path,
            },
        }
    }

    /// `change` when the disk did not answer: nothing is decided on it (a rename is still
    /// followed, a write is proven by the worker, a delete waits for the worker to see it).
    fn unknown(change: FsChange) -> Looked {
        match change {
            FsChange::Renamed { from, to } => Looked::Renamed { from, to },
            FsChange::Modified(path) => Looked::Modified {
                path,
                size: SizeNow::Unknown,
            },
            FsChange::Removed(path) => Looked::Removed {
                path,
                still_there: true,
            },
        }
    }
}

/// Looks at the watcher's changes in order, on the blocking pool with a time limit, and hands
/// them to the queue.
pub(super) async fn look_at_changes(
    mut changes: mpsc::UnboundedReceiver<Vec<FsChange>>,
    looked: mpsc::UnboundedSender<Vec<Looked>>,
) {
    while let Some(batch) = changes.recv().await {
        let kept = batch.clone();
        let seen = crate::upload::source::blocking_file("the watched files", move || {
            Ok(batch.into_iter().map(Looked::look).collect::<Vec<_>>())
        })
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "changes to watched files could not be looked at");
            kept.into_iter().map(Looked::unknown).collect()
        });
        if looked.send(seen).is_err() {
            return;
        }
    }
}

impl Actor {
    pub(super) fn watch(&mut self, id: UploadId, path: &str) {
        if let Some(w) = self.watcher.as_mut() {
            if self.watched.insert(id) {
                w.watch(std::path::Path::new(path));
            }
        }
    }

    pub(super) fn unwatch(&mut self, id: UploadId, path: &str) {
        if let Some(w) = self.watcher.as_mut() {
            if self.watched.remove(&id) {
                w.unwatch(std::path::Path::new(path));
                if self.watched.is_empty() {
                    // A finished drop of 100,000 files leaves a table for 131,072.
                    self.watched.shrink_to_fit();
                }
            }
        }
    }

    /// Unfinished uploads at `path`.
    pub(super) fn ids_at(&self, path: &std::path::Path) -> Vec<UploadId> {
        let p = path.display().to_string();
        self.order
            .iter()
            .copied()
            .filter(|id| {
                self.entries
                    .get(id)
                    .is_some_and(|e| e.row.is_at(&p) && e.row.state.is_unfinished())
            })
            .collect()
    }

    /// Reacts to files changing under the queue while it runs.
    pub(super) fn fs_changes(&mut self, changes: Vec<Looked>) {
        for change in changes {
            match change {
                Looked::Renamed { from, to } => {
                    for id in self.ids_at(&from) {
                        self.follow_rename(id, &to);
                    }
                }
                Looked::Modified { path: p, size } => {
                    for id in self.ids_at(&p) {
                        self.file_modified(id, size);
                    }
                }
                Looked::Removed {
                    path: p,
                    still_there,
                } => {
                    if still_there {
                        continue;
                    }
                    for id in self.ids_at(&p) {
                        tracing::info!(id, path = %p.display(), "file deleted or moved away");
                        self.stop(id);
                        self.apply(
                            id,
                            Event::FileGone,
                            Some(Said::of(&Error::FileMissing(format!(
                                "{} was deleted or moved away",
                                p.display()
                            )))),
                        );
                    }
                }
            }
        }
        self.schedule();
    }

    pub(super) fn follow_rename(&mut self, id: UploadId, to: &std::path::Path) {
        let Some(old) = self.entries.get(&id).map(|e| e.row.path()) else {
            return;
        };
        let new = to.display().to_string();
        let name = to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| new.clone());
        // The stamp stays the journal's: the next run proves the content before it appends
        // (a rename may come with an edit).
        if let Err(e) = self.ctx.store.set_path(id, &new, &name) {
            tracing::error!(id, error = %e, "journal write failed");
            return;
        }
        tracing::info!(id, from = %old, to = %new, "file renamed; the upload follows it");
        self.unwatch(id, &old);
        self.watch(id, &new);
        self.saw_path(&new);
        if let Some(e) = self.entries.get_mut(&id) {
            e.row.set_path(&new, &name, &mut self.shared);
        }
        self.mark(id);
        // A running worker goes on: its request reads through the open file, and before the
        // next one it finds the new path in the journal and proves the moved stamp (a
        // stopped request could leave bytes on the server that nothing proves). If the
        // upload already stopped because the old name vanished (the worker can beat the
        // watcher), it is found again.
        self.apply(id, Event::FileFound, None);
    }

    /// A write to a queued file. A new size cannot be this upload's content any more: the
    /// upload stops at once. The same size may be a touch or an edit past what the server
    /// holds: a running worker proves the sent bytes before its next request (`file
    /// changed` if they differ), a waiting upload when it starts.
    pub(super) fn file_modified(&mut self, id: UploadId, size: SizeNow) {
        let Ok(rec) = self.ctx.store.get(id) else {
            return;
        };
        // Unknown (the disk did not answer in time): the worker proves before it goes on.
        let same_size = match size {
            SizeNow::Bytes(s) => s == rec.size,
            SizeNow::NotAFile => false,
            SizeNow::Unknown => true,
        };
        if same_size {
            tracing::info!(id, path = %rec.path, "file written to; the upload proves what the server holds before it goes on");
            return;
        }
        let was_running = self.stop(id);
        if rec.upload_url.is_some() {
            tracing::info!(id, path = %rec.path, "file modified after bytes were sent");
            self.apply(
                id,
                Event::FileChanged,
                Some(Said::of(&Error::FileChanged(format!(
                    "{} was modified during the upload",
                    rec.path
                )))),
            );
        } else if was_running {
            // Nothing sent yet: the next run finds the new size and says `file changed`;
            // Restart (or adding the file again) takes the new content.
            self.apply(id, Event::Interrupted, None);
        }
    }
}

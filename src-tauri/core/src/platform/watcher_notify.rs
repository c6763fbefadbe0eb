//! Elsewhere: the notify crate, with its debouncer pairing renames.

use super::{RawChange, RawSink};
use notify_debouncer_full::notify::event::{ModifyKind, RenameMode};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use std::path::Path;
use std::time::Duration;

pub struct Watcher(Debouncer<RecommendedWatcher, RecommendedCache>);

impl Watcher {
    pub fn new(sink: Box<dyn RawSink>) -> std::io::Result<Watcher> {
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
                            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                                raw.extend(paths.iter().map(|p| RawChange::MovedFrom(0, p.clone())))
                            }
                            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                                raw.extend(paths.iter().map(|p| RawChange::MovedTo(0, p.clone())))
                            }
                            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                                raw.extend(paths.iter().cloned().map(RawChange::Written))
                            }
                            EventKind::Remove(_) => {
                                raw.extend(paths.iter().cloned().map(RawChange::Removed))
                            }
                            _ => {}
                        }
                    }
                    sink.deliver(raw);
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

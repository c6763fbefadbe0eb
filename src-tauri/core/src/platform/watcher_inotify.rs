//! Linux: inotify with only the events that can change what the queue holds. (The notify
//! crate also asks for every open, so each read of a queued file, Tusker's own included,
//! woke its thread: with 100,000 small files that was about 8% of the run's time.)

use super::{RawChange, RawSink};
use inotify::{EventMask, Inotify, WatchMask};
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    pub fn new(sink: Box<dyn RawSink>) -> std::io::Result<Watcher> {
        let inotify = Inotify::init()?;
        let watches = inotify.watches();
        let dirs = Dirs::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (dirs.clone(), stop.clone());
        std::thread::Builder::new()
            .name("file-watcher".into())
            .spawn(move || run(inotify, d, sink, s))?;
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

/// Reads events, waits for a quiet spell, then delivers what changed.
fn run(mut inotify: Inotify, dirs: Dirs, sink: Box<dyn RawSink>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut raw: Vec<RawChange> = Vec::new();
    let (mut first, mut last) = (Instant::now(), Instant::now());
    loop {
        if stop.load(Ordering::Relaxed) || sink.closed() {
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
        if !raw.is_empty()
            && (last.elapsed() >= QUIET || first.elapsed() >= MOST)
            && !sink.deliver(std::mem::take(&mut raw))
        {
            return;
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

//! Everything that differs between operating systems, behind this one small interface, one
//! file per family (`unix.rs`, `other.rs`) and a folder watcher per system
//! (`watcher_inotify.rs` on Linux, `watcher_notify.rs` elsewhere): opening a file to upload
//! without following a link and telling which file was opened, positional reads, permissions
//! and the umask, the advisory lock, process groups, who has a file open for writing, giving
//! memory back, thread policies. A platform is added as files here, not as `cfg` lines
//! across the code.

use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as os;

#[cfg(not(unix))]
mod other;
#[cfg(not(unix))]
use other as os;

#[cfg(target_os = "linux")]
mod watcher_inotify;
#[cfg(target_os = "linux")]
pub use watcher_inotify::Watcher;

#[cfg(not(target_os = "linux"))]
mod watcher_notify;
#[cfg(not(target_os = "linux"))]
pub use watcher_notify::Watcher;

/// Which file an entry is on its volume: device and inode (volume serial and file index on
/// Windows). Two looks at a path name the same file only if their ids are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(md: &Metadata) -> FileId {
        os::file_id(md)
    }
}

/// Why a path could not be opened as the regular file it was.
#[derive(Debug)]
pub enum OpenError {
    /// The last component is a symbolic link (never followed).
    Link,
    /// A directory, FIFO, device or socket.
    NotRegular,
    /// Another file than the one examined (`FileId` differs): it was replaced.
    Replaced,
    Io(io::Error),
}

/// Opens `path` for reading as the regular file it must be: a symbolic link in its last
/// component is not followed, a FIFO swapped in does not block the open, and with `expect`
/// the file opened must be that one (so a file replaced between a look and the open is
/// refused, whatever now stands at the path). Returns the file and its metadata, read from
/// the open file itself.
pub fn open_regular(path: &Path, expect: Option<FileId>) -> Result<(File, Metadata), OpenError> {
    let file = os::open_no_follow(path)?;
    let md = file.metadata().map_err(OpenError::Io)?;
    if !md.is_file() {
        return Err(OpenError::NotRegular);
    }
    if expect.is_some_and(|want| FileId::of(&md) != want) {
        return Err(OpenError::Replaced);
    }
    Ok((file, md))
}

/// Where an open file really is (every link on the way resolved), as the system knows it
/// now: `None` where the system cannot say (then only the identity check stands).
pub fn real_path(file: &File) -> Option<std::path::PathBuf> {
    os::real_path(file)
}

/// Modification and status-change times in nanoseconds since the epoch.
pub fn times_ns(md: &Metadata) -> (i64, i64) {
    os::times_ns(md)
}

/// Reads exactly `buf.len()` bytes at `offset` (pread); fewer means the file shrank.
pub fn read_full_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match os::read_at(file, &mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Sets a mode that keeps other users out (`0o600`, `0o700`). Best effort: a path this user
/// does not own (a shared data directory someone set up) keeps its mode, with a warning.
pub fn owner_only(path: &Path, mode: u32) {
    if let Err(e) = os::set_mode(path, mode) {
        tracing::warn!(path = %path.display(), error = %e, "could not make this readable by its owner alone");
    }
}

/// Which of `paths` some process has open for writing (Linux: `/proc`). Elsewhere none, so
/// the settle time alone decides.
pub fn open_for_writing(
    paths: &[std::path::PathBuf],
) -> std::collections::HashSet<std::path::PathBuf> {
    os::open_for_writing(paths)
}

/// Makes files this process creates from now on its user's alone (umask 077).
pub fn private_files() {
    os::private_files()
}

/// Creates a file only this user may read (`0o600` where modes exist).
pub fn owner_only_open(o: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    os::owner_only_open(o)
}

/// Takes an exclusive advisory lock on an open file, held until it is closed.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    os::lock_exclusive(file)
}

/// Starts a command in a process group of its own, so [`kill_group`] stops all it started.
pub fn own_process_group(cmd: &mut tokio::process::Command) {
    os::own_process_group(cmd)
}

/// Kills a process group started with [`own_process_group`] (the command and its children).
pub fn kill_group(group: Option<u32>) {
    os::kill_group(group)
}

/// Returns the allocator's free pages to the system (glibc's arenas keep them otherwise).
pub fn give_back_memory() {
    os::give_back_memory()
}

/// Marks the calling thread as batch work for the kernel (Linux `SCHED_BATCH`): the same
/// share of the CPU, but its wake-ups no longer interrupt interactive threads mid-task.
pub fn batch_thread() {
    os::batch_thread()
}

/// Takes this process's real-time threads (Linux `SCHED_RR`/`SCHED_FIFO`) back to the normal
/// policy.
pub fn no_realtime_threads() {
    os::no_realtime_threads()
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

/// Where a folder [`Watcher`] delivers what the system reported, one quiet spell at a time.
pub trait RawSink: Send + 'static {
    /// Takes one spell's changes; false once nobody listens any more (the watcher stops).
    fn deliver(&self, raw: Vec<RawChange>) -> bool;
    /// Nobody listens any more.
    fn closed(&self) -> bool;
}

/// What asked the process to stop: Ctrl-C (SIGINT), or SIGTERM (a logout, `kill`, a service
/// manager) where the system has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Terminate,
}

/// Waits until the process is asked to stop; an error when it cannot listen for that.
pub async fn stop_requested() -> io::Result<Stop> {
    os::stop_requested().await
}

//! Linux and macOS: `O_NOFOLLOW` for the last component, `O_NONBLOCK` so a FIFO cannot hold
//! the open, device and inode from `fstat`.

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{FileId, OpenError};

pub fn open_no_follow(path: &Path) -> Result<File, OpenError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => OpenError::Link,
            // A FIFO without a writer opened non-blocking for reading succeeds; a device may
            // refuse. Either way fstat decides; this is the open's own failure.
            _ => OpenError::Io(e),
        })
}

#[cfg(target_os = "linux")]
pub fn real_path(file: &File) -> Option<std::path::PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

#[cfg(not(target_os = "linux"))]
pub fn real_path(_file: &File) -> Option<std::path::PathBuf> {
    None
}

pub fn file_id(md: &Metadata) -> FileId {
    FileId {
        dev: md.dev(),
        ino: md.ino(),
    }
}

pub fn times_ns(md: &Metadata) -> (i64, i64) {
    (
        md.mtime().saturating_mul(1_000_000_000) + md.mtime_nsec(),
        md.ctime().saturating_mul(1_000_000_000) + md.ctime_nsec(),
    )
}

/// One positional read (pread): the file's cursor is not moved, so parts can share a file.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

pub fn open_for_writing(paths: &[PathBuf]) -> HashSet<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        open_for_writing_linux(paths)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = paths;
        HashSet::new()
    }
}

/// Linux: /proc/*/fd and fdinfo, of the processes this user may see.
#[cfg(target_os = "linux")]
fn open_for_writing_linux(paths: &[PathBuf]) -> HashSet<PathBuf> {
    let wanted: HashMap<PathBuf, &PathBuf> = paths
        .iter()
        .map(|p| (std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()), p))
        .collect();
    let mut out = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for proc_entry in procs.flatten() {
        let name = proc_entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let fd_dir = proc_entry.path().join("fd");
        let Ok(fds) = std::fs::read_dir(&fd_dir) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(orig) = wanted.get(&target) else {
                continue;
            };
            let info = proc_entry.path().join("fdinfo").join(fd.file_name());
            let flags = std::fs::read_to_string(info).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            });
            // O_WRONLY = 1, O_RDWR = 2.
            if flags.is_some_and(|f| f & 0o3 != 0) {
                out.insert((*orig).clone());
            }
        }
    }
    out
}

pub fn private_files() {
    // SAFETY: umask only sets the process's file-creation mask; no memory is touched.
    unsafe {
        libc::umask(0o077);
    }
}

pub fn owner_only_open(o: &mut OpenOptions) -> &mut OpenOptions {
    o.mode(0o600)
}

pub fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file the caller holds open; released when it is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub fn own_process_group(cmd: &mut tokio::process::Command) {
    cmd.process_group(0);
}

pub fn kill_group(group: Option<u32>) {
    if let Some(pid) = group.and_then(|g| i32::try_from(g).ok()) {
        // SAFETY: a plain system call on a process group this process started.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

pub fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub fn batch_thread() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: 0 is the calling thread; the parameter lives across the call.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "SCHED_BATCH refused");
        }
    }
}

pub fn no_realtime_threads() {
    #[cfg(target_os = "linux")]
    {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return;
        };
        for tid in tasks
            .flatten()
            .filter_map(|t| t.file_name().to_str()?.parse::<libc::pid_t>().ok())
        {
            // SAFETY: plain calls on a thread id of this process; the parameter outlives them.
            let policy = unsafe { libc::sched_getscheduler(tid) } & !libc::SCHED_RESET_ON_FORK;
            if policy == libc::SCHED_RR || policy == libc::SCHED_FIFO {
                let param = libc::sched_param { sched_priority: 0 };
                if unsafe { libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param) } != 0 {
                    tracing::debug!(tid, error = %std::io::Error::last_os_error(), "real-time thread kept");
                }
            }
        }
    }
}

pub async fn stop_requested() -> std::io::Result<super::Stop> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = int.recv() => super::Stop::Interrupt,
        _ = term.recv() => super::Stop::Terminate,
    })
}

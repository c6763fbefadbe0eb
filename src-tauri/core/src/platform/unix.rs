//! Linux and macOS: `O_NOFOLLOW` for the last component, `O_NONBLOCK` so a FIFO cannot hold
//! the open, device and inode from `fstat`.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

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

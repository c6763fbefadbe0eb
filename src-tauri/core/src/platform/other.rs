//! Other systems (Windows): a plain open; links are told apart by the metadata of the path
//! before it (issue 27 brings the Windows equivalents: FILE_FLAG_OPEN_REPARSE_POINT and the
//! volume serial and file index).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{FileId, OpenError};

pub fn open_no_follow(path: &Path) -> Result<File, OpenError> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_symlink() => return Err(OpenError::Link),
        Ok(_) => {}
        Err(e) => return Err(OpenError::Io(e)),
    }
    File::open(path).map_err(OpenError::Io)
}

pub fn real_path(_file: &File) -> Option<std::path::PathBuf> {
    None
}

pub fn file_id(md: &Metadata) -> FileId {
    let _ = md;
    FileId { dev: 0, ino: 0 }
}

pub fn times_ns(md: &Metadata) -> (i64, i64) {
    let ns = |t: std::io::Result<std::time::SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    };
    (ns(md.modified()), ns(md.created()))
}

/// One positional read (`seek_read` on Windows, which the reader's own cursor does not need).
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
    #[cfg(not(windows))]
    {
        let _ = (file, buf, offset);
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

/// No Unix modes here; the data directory's place in the user's profile keeps others out
/// (issue 27 brings an ACL).
pub fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// No `/proc` here: the settle time alone decides (issue 27: a share-mode probe on Windows).
pub fn open_for_writing(_paths: &[PathBuf]) -> HashSet<PathBuf> {
    HashSet::new()
}

pub fn private_files() {}

pub fn owner_only_open(o: &mut OpenOptions) -> &mut OpenOptions {
    o
}

pub fn lock_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}

pub fn own_process_group(_cmd: &mut tokio::process::Command) {}

pub fn kill_group(_group: Option<u32>) {}

pub fn give_back_memory() {}

pub fn batch_thread() {}

pub fn no_realtime_threads() {}

/// Ctrl-C only: no SIGTERM here.
pub async fn stop_requested() -> std::io::Result<super::Stop> {
    tokio::signal::ctrl_c().await?;
    Ok(super::Stop::Interrupt)
}

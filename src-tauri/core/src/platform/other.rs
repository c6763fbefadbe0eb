//! Other systems (Windows): a plain open; links are told apart by the metadata of the path
//! before it (issue 27 brings the Windows equivalents: FILE_FLAG_OPEN_REPARSE_POINT and the
//! volume serial and file index).

use std::fs::{File, Metadata};
use std::path::Path;
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

//! What differs between operating systems, behind one small interface: opening a file to
//! upload without following a link, and telling which file was opened. One file per family
//! (`unix.rs`, `other.rs`).

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as os;

#[cfg(not(unix))]
mod other;
#[cfg(not(unix))]
use other as os;

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

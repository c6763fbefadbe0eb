//! Content identity of a file that survives renames, moves and restarts.
//!
//! Electron clients keyed resume on name, mtime and path, so any of those changing lost the
//! upload. Tusker keys on the size plus a SHA-256 over the file's head and tail blocks: cheap
//! (two reads, whatever the file size) and it changes when the content at either end changes.
//! Middle-only edits keep the fingerprint, so it is only an index for finding candidates:
//! "same content" is decided by the hashes in [`crate::identity::proof`], and the [`FileStamp`] says
//! when those must be checked again.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

/// Bytes hashed at each end of the file.
pub const BLOCK: u64 = 64 * 1024;

/// What a stat tells without reading the file. While it stays the same the file is taken
/// to hold the bytes it held; once it moves, content is proven by hashes. The ctime cannot be
/// set back by a program (unlike the mtime `touch -d` sets), and the inode changes when an
/// editor saves by writing a new file and renaming it over the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
    pub ctime_ns: i64,
}

impl FileStamp {
    /// Whether the file may have changed since `journal` was taken. A journal row from before
    /// inode and ctime were kept (both 0) is compared by size and mtime only.
    pub fn moved_from(&self, journal: &FileStamp) -> bool {
        if journal.ino == 0 && journal.ctime_ns == 0 {
            return self.size != journal.size || self.mtime_ns != journal.mtime_ns;
        }
        self != journal
    }
}

impl FileStamp {
    /// The stamp of metadata already read (of an open file, or of a path's own entry).
    pub fn of(md: &std::fs::Metadata) -> FileStamp {
        let (mtime_ns, ctime_ns) = crate::platform::times_ns(md);
        FileStamp {
            size: md.len(),
            mtime_ns,
            ino: crate::platform::FileId::of(md).ino,
            ctime_ns,
        }
    }
}

/// Stats a path's own entry and refuses anything that is not a regular file: FIFOs and
/// devices would block or never end, and a symbolic link is never followed (a file swapped
/// for a link to another one must not be read as if it were the file).
pub fn stamp(path: &Path) -> Result<FileStamp> {
    let md = std::fs::symlink_metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::FileMissing(path.display().to_string()),
        _ => Error::Read {
            path: path.display().to_string(),
            source: e,
        },
    })?;
    if md.file_type().is_symlink() {
        return Err(Error::NotAFile(format!(
            "{} is a symbolic link now (not followed)",
            path.display()
        )));
    }
    if !md.is_file() {
        return Err(Error::NotAFile(path.display().to_string()));
    }
    Ok(FileStamp::of(&md))
}

/// Opens a file to read it for an upload: never through a link in its last component,
/// never blocking on a FIFO, and with `expect` only the very file examined before.
pub fn open(
    path: &Path,
    expect: Option<crate::platform::FileId>,
) -> Result<(File, std::fs::Metadata)> {
    use crate::platform::OpenError;
    crate::platform::open_regular(path, expect).map_err(|e| match e {
        OpenError::Link => Error::NotAFile(format!(
            "{} is a symbolic link now (not followed)",
            path.display()
        )),
        OpenError::NotRegular => Error::NotAFile(path.display().to_string()),
        OpenError::Replaced => Error::FileChanged(format!(
            "{} was replaced by another file after it was looked at",
            path.display()
        )),
        OpenError::Io(e) => open_err(path, e),
    })
}

/// The fingerprint of a file: `v1:<size>:<hex sha256(size, head, tail)>`.
pub fn fingerprint(path: &Path) -> Result<(String, FileStamp)> {
    let (f, md) = open(path, None)?;
    fingerprint_of(path, f, &md)
}

/// [`fingerprint`] of a file already open (its metadata read from it): what is hashed and
/// stamped is the file examined, whatever stands at the path by now.
pub fn fingerprint_of(
    path: &Path,
    mut f: File,
    md: &std::fs::Metadata,
) -> Result<(String, FileStamp)> {
    let st = FileStamp::of(md);
    let read_err = |e| Error::Read {
        path: path.display().to_string(),
        source: e,
    };
    let mut h = Sha256::new();
    h.update(st.size.to_le_bytes());
    let mut buf = vec![0u8; BLOCK as usize];
    let head = read_up_to(&mut f, &mut buf).map_err(read_err)?;
    h.update(&buf[..head]);
    if st.size > BLOCK {
        let tail_start = st.size.saturating_sub(BLOCK).max(BLOCK);
        f.seek(SeekFrom::Start(tail_start)).map_err(read_err)?;
        let n = read_up_to(&mut f, &mut buf).map_err(read_err)?;
        h.update(&buf[..n]);
    }
    Ok((format!("v1:{}:{:x}", st.size, h.finalize()), st))
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// SHA-256 of a whole file, streamed in 1 MiB reads: what `tusker-cli hash` prints, so a user
/// can compare a file with what a server stored (and the benchmark can time sha2 against
/// `openssl dgst`).
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let read_err = |e: std::io::Error| Error::Read {
        path: path.display().to_string(),
        source: e,
    };
    let (mut f, _) = open(path, None)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// An open's or read's failure as the error people see: a missing file is named as such.
pub fn open_err(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::FileMissing(path.display().to_string())
    } else {
        Error::Read {
            path: path.display().to_string(),
            source: e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn identity_follows_content_not_path() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.bin");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&a, &data).unwrap();
        let (fa, _) = fingerprint(&a).unwrap();
        let b = d.path().join("moved.bin");
        std::fs::rename(&a, &b).unwrap();
        assert_eq!(fingerprint(&b).unwrap().0, fa);
        // A change in the tail changes it.
        let mut f = std::fs::OpenOptions::new().write(true).open(&b).unwrap();
        f.seek(SeekFrom::Start(299_000)).unwrap();
        f.write_all(b"xx").unwrap();
        drop(f);
        assert_ne!(fingerprint(&b).unwrap().0, fa);
    }

    #[test]
    fn small_and_empty_files() {
        let d = tempfile::tempdir().unwrap();
        let e = d.path().join("empty");
        std::fs::write(&e, b"").unwrap();
        let (fe, st) = fingerprint(&e).unwrap();
        assert_eq!(st.size, 0);
        let s = d.path().join("small");
        std::fs::write(&s, b"hello").unwrap();
        assert_ne!(fingerprint(&s).unwrap().0, fe);
    }

    #[test]
    fn refuses_directories_and_missing() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(fingerprint(d.path()), Err(Error::NotAFile(_))));
        assert!(matches!(
            fingerprint(&d.path().join("nope")),
            Err(Error::FileMissing(_))
        ));
    }
}

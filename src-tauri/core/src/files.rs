//! Turning what a user dropped (files and folders) into the list of files to upload, with a
//! specific error for each entry that cannot be uploaded, so one bad entry never blocks the rest.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::fingerprint::{self, FileStamp};

/// A file ready to be enqueued: its identity is known.
#[derive(Debug, Clone)]
pub struct PreparedFile {
    pub path: PathBuf,
    pub name: String,
    pub fingerprint: String,
    pub stamp: FileStamp,
}

/// Walks `paths` (folders recursively, in name order) and fingerprints every regular file.
/// A path handed over that is a symlink is followed. Inside a dropped folder, a symlink to a
/// file in it is followed; one that leads outside it, or to a folder (no loops), is skipped
/// with a notice (rclone's default): a drop never uploads what lies elsewhere unseen.
pub fn prepare(paths: &[PathBuf]) -> Vec<Prepared> {
    let mut out = Vec::new();
    prepare_each(paths, &mut |p| {
        out.push(p);
        true
    });
    out
}

/// A file ready to be enqueued, or the entry that cannot be and why.
pub type Prepared = Result<PreparedFile, (PathBuf, Error)>;

/// [`prepare`], handing each file to `each` as soon as it is fingerprinted (a folder of
/// 100,000 files starts uploading while the rest is still walked). `each` returns false to
/// stop the walk.
pub fn prepare_each(paths: &[PathBuf], each: &mut dyn FnMut(Prepared) -> bool) {
    for p in paths {
        if !visit(p, None, each) {
            return;
        }
    }
}

/// Visits one entry; false once `out` asked to stop.
fn visit(path: &Path, root: Option<&Path>, out: &mut dyn FnMut(Prepared) -> bool) -> bool {
    let top = root.is_none();
    let lmd = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            let err = if e.kind() == std::io::ErrorKind::NotFound {
                Error::FileMissing(path.display().to_string())
            } else {
                Error::Read {
                    path: path.display().to_string(),
                    source: e,
                }
            };
            return out(Err((path.to_path_buf(), err)));
        }
    };
    let is_link = lmd.file_type().is_symlink();
    let md = if is_link {
        match std::fs::metadata(path) {
            Ok(m) => m,
            Err(_) => {
                return out(Err((
                    path.to_path_buf(),
                    Error::FileMissing(format!("{} (dangling symlink)", path.display())),
                )));
            }
        }
    } else {
        lmd
    };
    if is_link && !top {
        if md.is_dir() {
            return out(Err((
                path.to_path_buf(),
                Error::Skipped(format!(
                    "{}: a symlink to a folder, not followed",
                    path.display()
                )),
            )));
        }
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if !root.is_some_and(|r| target.starts_with(r)) {
            return out(Err((
                path.to_path_buf(),
                Error::Skipped(format!(
                    "{}: a symlink that leads outside the dropped folder (to {}), not followed",
                    path.display(),
                    target.display()
                )),
            )));
        }
    }
    if md.is_dir() {
        let canonical;
        let root = match root {
            Some(r) => r,
            None => {
                canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
                &canonical
            }
        };
        let entries = match std::fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                return out(Err((
                    path.to_path_buf(),
                    Error::Read {
                        path: path.display().to_string(),
                        source: e,
                    },
                )));
            }
        };
        let mut children: Vec<PathBuf> = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => children.push(e.path()),
                Err(e) => {
                    let keep_on = out(Err((
                        path.to_path_buf(),
                        Error::Read {
                            path: path.display().to_string(),
                            source: e,
                        },
                    )));
                    if !keep_on {
                        return false;
                    }
                }
            }
        }
        children.sort();
        for c in children {
            if !visit(&c, Some(root), out) {
                return false;
            }
        }
        return true;
    }
    if !md.is_file() {
        return out(Err((
            path.to_path_buf(),
            Error::NotAFile(path.display().to_string()),
        )));
    }
    match fingerprint::fingerprint(path) {
        Ok((fp, stamp)) => {
            let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            let name = abs
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| abs.display().to_string());
            out(Ok(PreparedFile {
                path: abs,
                name,
                fingerprint: fp,
                stamp,
            }))
        }
        Err(e) => out(Err((path.to_path_buf(), e))),
    }
}

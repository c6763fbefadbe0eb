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
pub fn prepare(paths: &[PathBuf]) -> Vec<Result<PreparedFile, (PathBuf, Error)>> {
    let mut out = Vec::new();
    for p in paths {
        visit(p, None, &mut out);
    }
    out
}

fn visit(path: &Path, root: Option<&Path>, out: &mut Vec<Result<PreparedFile, (PathBuf, Error)>>) {
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
            out.push(Err((path.to_path_buf(), err)));
            return;
        }
    };
    let is_link = lmd.file_type().is_symlink();
    let md = if is_link {
        match std::fs::metadata(path) {
            Ok(m) => m,
            Err(_) => {
                out.push(Err((
                    path.to_path_buf(),
                    Error::FileMissing(format!("{} (dangling symlink)", path.display())),
                )));
                return;
            }
        }
    } else {
        lmd
    };
    if is_link && !top {
        if md.is_dir() {
            out.push(Err((
                path.to_path_buf(),
                Error::Skipped(format!(
                    "{}: a symlink to a folder, not followed",
                    path.display()
                )),
            )));
            return;
        }
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if !root.is_some_and(|r| target.starts_with(r)) {
            out.push(Err((
                path.to_path_buf(),
                Error::Skipped(format!(
                    "{}: a symlink that leads outside the dropped folder (to {}), not followed",
                    path.display(),
                    target.display()
                )),
            )));
            return;
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
                out.push(Err((
                    path.to_path_buf(),
                    Error::Read {
                        path: path.display().to_string(),
                        source: e,
                    },
                )));
                return;
            }
        };
        let mut children: Vec<PathBuf> = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => children.push(e.path()),
                Err(e) => out.push(Err((
                    path.to_path_buf(),
                    Error::Read {
                        path: path.display().to_string(),
                        source: e,
                    },
                ))),
            }
        }
        children.sort();
        for c in children {
            visit(&c, Some(root), out);
        }
        return;
    }
    if !md.is_file() {
        out.push(Err((
            path.to_path_buf(),
            Error::NotAFile(path.display().to_string()),
        )));
        return;
    }
    match fingerprint::fingerprint(path) {
        Ok((fp, stamp)) => {
            let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            let name = abs
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| abs.display().to_string());
            out.push(Ok(PreparedFile {
                path: abs,
                name,
                fingerprint: fp,
                stamp,
            }));
        }
        Err(e) => out.push(Err((path.to_path_buf(), e))),
    }
}

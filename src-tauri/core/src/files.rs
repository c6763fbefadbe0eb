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
/// Symlinks to files are followed; symlinks to folders are not descended into (no loops).
pub fn prepare(paths: &[PathBuf]) -> Vec<Result<PreparedFile, (PathBuf, Error)>> {
    let mut out = Vec::new();
    for p in paths {
        visit(p, true, &mut out);
    }
    out
}

fn visit(path: &Path, top: bool, out: &mut Vec<Result<PreparedFile, (PathBuf, Error)>>) {
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
    if md.is_dir() {
        if is_link && !top {
            tracing::info!(path = %path.display(), "not following a symlinked folder");
            return;
        }
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
            visit(&c, false, out);
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

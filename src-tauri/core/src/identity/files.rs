//! Turning what a user dropped (files and folders) into the list of files to upload, with a
//! specific error for each entry that cannot be uploaded, so one bad entry never blocks the rest.
//!
//! Every file is opened without following a link in its last component and must be the very
//! file that was examined (device and inode): a file swapped for a link to another one, or
//! for another file, between the look and the open is refused by name. Paths are recorded
//! without links in them (the folders on the way resolved), so the worker can later tell a
//! folder swapped for a link. The walk is iterative and refuses absurd depths and lengths, so
//! no tree can overflow a stack.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::identity::fingerprint::{self, FileStamp};
use crate::platform::{FileId, OpenError};

/// Whether `path` lies in `dir` with no link on the way (`dir` given without links).
pub fn inside(dir: &Path, path: &Path) -> bool {
    path.starts_with(dir) && without_links(path) == path
}

/// A file ready to be enqueued: its identity is known.
#[derive(Debug, Clone)]
pub struct PreparedFile {
    pub path: PathBuf,
    pub name: String,
    pub fingerprint: String,
    pub stamp: FileStamp,
}

/// Folders deeper than this below a dropped one are not walked (a tree that deep is a
/// mistake or an attack; each level is named in the notice once).
pub const MAX_DEPTH: usize = 256;

/// Paths longer than this (bytes) are refused: more than any system opens.
pub const MAX_PATH: usize = 4096;

/// How a walk treats what it is handed.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// A handed-over path that is a link is followed: a drop, a file dialog or a command line
    /// names it on purpose. A watched folder's files and a restart are never followed.
    pub follow_top: bool,
    /// Files a watched folder examined, by path: what is opened must be that very file.
    pub examined: BTreeMap<PathBuf, FileId>,
}

impl Walk {
    /// What a person handed over (links they named are followed).
    pub fn handed_over() -> Walk {
        Walk {
            follow_top: true,
            ..Walk::default()
        }
    }
}

/// Walks `paths` (folders recursively, in name order) and fingerprints every regular file.
/// A path handed over that is a symlink is followed. Inside a dropped folder, a symlink to a
/// file in it is followed; one that leads outside it, or to a folder (no loops), is skipped
/// with a notice (rclone's default): a drop never uploads what lies elsewhere unseen.
pub fn prepare(paths: &[PathBuf]) -> Vec<Prepared> {
    let mut out = Vec::new();
    prepare_each(paths, &Walk::handed_over(), &mut |p| {
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
pub fn prepare_each(paths: &[PathBuf], walk: &Walk, each: &mut dyn FnMut(Prepared) -> bool) {
    for p in paths {
        if !walk_tree(p, walk, each) {
            return;
        }
    }
}

/// What one entry turned out to be.
enum Entry {
    /// A folder to walk (its path without links).
    Dir(PathBuf),
    /// A regular file: where to open it (without links), the name it goes by, and the
    /// identity it had when examined.
    File {
        path: PathBuf,
        name: String,
        id: FileId,
    },
    Refused(Error),
}

/// `path` with the folders on the way resolved (no link among them), its last component kept.
fn without_links(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or(abs.clone()),
        _ => abs,
    }
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn read_error(path: &Path, e: std::io::Error) -> Error {
    crate::identity::fingerprint::open_err(path, e)
}

/// Examines one entry; `root` is the dropped folder it lies in (`None`: handed over itself).
fn examine(path: &Path, root: Option<&Path>, walk: &Walk) -> Entry {
    crate::failpoint::hit(crate::failpoint::Point::Walking);
    if path.as_os_str().len() > MAX_PATH {
        return Entry::Refused(Error::Skipped(format!(
            "{}…: a path longer than {MAX_PATH} bytes",
            path.display()
                .to_string()
                .chars()
                .take(80)
                .collect::<String>()
        )));
    }
    let lmd = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Entry::Refused(read_error(path, e)),
    };
    if lmd.file_type().is_symlink() {
        if root.is_none() && !walk.follow_top {
            return Entry::Refused(Error::Skipped(format!(
                "{}: a symbolic link, not followed",
                path.display()
            )));
        }
        let (Ok(target), Ok(md)) = (std::fs::canonicalize(path), std::fs::metadata(path)) else {
            return Entry::Refused(Error::FileMissing(format!(
                "{} (dangling symlink)",
                path.display()
            )));
        };
        return match root {
            None if md.is_dir() => Entry::Dir(target),
            Some(_) if md.is_dir() => Entry::Refused(Error::Skipped(format!(
                "{}: a symlink to a folder, not followed",
                path.display()
            ))),
            Some(r) if !target.starts_with(r) => Entry::Refused(Error::Skipped(format!(
                "{}: a symlink that leads outside the dropped folder (to {}), not followed",
                path.display(),
                target.display()
            ))),
            _ if md.is_file() => Entry::File {
                name: name_of(path),
                id: FileId::of(&md),
                path: target,
            },
            _ => Entry::Refused(Error::NotAFile(path.display().to_string())),
        };
    }
    if lmd.is_dir() {
        return Entry::Dir(match root {
            // Below a resolved root, names joined to it hold no link.
            Some(_) => path.to_path_buf(),
            None => std::fs::canonicalize(path).unwrap_or_else(|_| without_links(path)),
        });
    }
    if !lmd.is_file() {
        return Entry::Refused(Error::NotAFile(path.display().to_string()));
    }
    if root.is_none()
        && !walk.follow_top
        && without_links(path) != std::path::absolute(path).unwrap_or_default()
    {
        // A watched folder's file is taken only where it was found: not through a folder on
        // the way that is a link now.
        return Entry::Refused(Error::Skipped(format!(
            "{}: reached through a link (a folder on the way was replaced), not uploaded",
            path.display()
        )));
    }
    let id = match walk.examined.get(path) {
        Some(id) => *id,
        None => FileId::of(&lmd),
    };
    Entry::File {
        path: match root {
            Some(_) => path.to_path_buf(),
            None => without_links(path),
        },
        name: name_of(path),
        id,
    }
}

/// Opens and fingerprints a file examined as `id`: what is read is that very file.
fn open_examined(shown: &Path, path: PathBuf, name: String, id: FileId) -> Prepared {
    let swapped = || {
        Error::Skipped(format!(
            "{}: replaced by a link or another file after it was looked at, not uploaded",
            shown.display()
        ))
    };
    let (file, md) = match crate::platform::open_regular(&path, Some(id)) {
        Ok(open) => open,
        Err(OpenError::Link | OpenError::Replaced) => return Err((shown.to_path_buf(), swapped())),
        Err(OpenError::NotRegular) => {
            return Err((
                shown.to_path_buf(),
                Error::NotAFile(shown.display().to_string()),
            ))
        }
        Err(OpenError::Io(e)) => return Err((shown.to_path_buf(), read_error(shown, e))),
    };
    // The file opened must be where it was looked for: a folder on the way swapped for a
    // link (to ~/.ssh, say) between the listing and the open leads elsewhere.
    if crate::platform::real_path(&file).is_some_and(|real| real != path) {
        return Err((
            shown.to_path_buf(),
            Error::Skipped(format!(
                "{}: reached through a link (a folder on the way was replaced), not uploaded",
                shown.display()
            )),
        ));
    }
    match fingerprint::fingerprint_of(&path, file, &md) {
        Ok((fingerprint, stamp)) => Ok(PreparedFile {
            path,
            name,
            fingerprint,
            stamp,
        }),
        Err(e) => Err((shown.to_path_buf(), e)),
    }
}

/// One handed-over path, walked depth first in name order with a stack of its own (no
/// recursion: a tree 10,000 levels deep is refused at [`MAX_DEPTH`], not a crash). False
/// once `out` asked to stop.
fn walk_tree(top: &Path, walk: &Walk, out: &mut dyn FnMut(Prepared) -> bool) -> bool {
    let root = match examine(top, None, walk) {
        Entry::Refused(e) => return out(Err((top.to_path_buf(), e))),
        Entry::File { path, name, id } => return out(open_examined(top, path, name, id)),
        Entry::Dir(root) => root,
    };
    // Each frame: a folder's entries still to visit (in reverse name order) and its depth.
    let mut stack: Vec<(Vec<PathBuf>, usize)> = Vec::new();
    match children(&root) {
        Ok((names, errors)) => {
            for e in errors {
                if !out(Err((root.clone(), e))) {
                    return false;
                }
            }
            stack.push((names, 1));
        }
        Err(e) => return out(Err((top.to_path_buf(), e))),
    }
    while let Some((entries, depth)) = stack.last_mut() {
        let depth = *depth;
        let Some(path) = entries.pop() else {
            stack.pop();
            continue;
        };
        let keep_on = match examine(&path, Some(&root), walk) {
            Entry::Refused(e) => out(Err((path, e))),
            Entry::File { path: p, name, id } => out(open_examined(&path, p, name, id)),
            Entry::Dir(dir) if depth >= MAX_DEPTH => out(Err((
                dir.clone(),
                Error::Skipped(format!(
                    "{}: more than {MAX_DEPTH} folders deep, not walked further",
                    dir.display()
                        .to_string()
                        .chars()
                        .take(200)
                        .collect::<String>()
                )),
            ))),
            Entry::Dir(dir) => match children(&dir) {
                Ok((names, errors)) => {
                    let mut ok = true;
                    for e in errors {
                        ok = ok && out(Err((dir.clone(), e)));
                    }
                    stack.push((names, depth + 1));
                    ok
                }
                Err(e) => out(Err((dir, e))),
            },
        };
        if !keep_on {
            return false;
        }
    }
    true
}

/// A folder's entries in reverse name order (popped in name order), and the errors met
/// reading it.
fn children(dir: &Path) -> Result<(Vec<PathBuf>, Vec<Error>), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| read_error(dir, e))?;
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => names.push(e.path()),
            Err(e) => errors.push(read_error(dir, e)),
        }
    }
    names.sort();
    names.reverse();
    Ok((names, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk_all(paths: &[PathBuf], walk: &Walk) -> (Vec<PreparedFile>, Vec<(PathBuf, String)>) {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        prepare_each(paths, walk, &mut |p| {
            match p {
                Ok(f) => ok.push(f),
                Err((path, e)) => bad.push((path, e.to_string())),
            }
            true
        });
        (ok, bad)
    }

    #[test]
    fn a_tree_deeper_than_the_limit_is_walked_without_recursion_and_refused_past_it() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("deep");
        let mut at = base.clone();
        std::fs::create_dir(&at).unwrap();
        std::fs::write(at.join("top.bin"), b"top").unwrap();
        for _ in 0..(MAX_DEPTH + 40) {
            at = at.join("d");
            std::fs::create_dir(&at).unwrap();
        }
        std::fs::write(at.join("bottom.bin"), b"bottom").unwrap();
        let (ok, bad) = walk_all(std::slice::from_ref(&base), &Walk::handed_over());
        assert_eq!(ok.len(), 1, "{bad:?}");
        assert_eq!(ok[0].name, "top.bin");
        assert_eq!(bad.len(), 1, "named once: {bad:?}");
        assert!(bad[0].1.contains("folders deep"), "{bad:?}");
    }

    #[test]
    fn files_come_in_name_order_depth_first() {
        let d = tempfile::tempdir().unwrap();
        for f in ["b/2.bin", "a/z.bin", "a/y/1.bin", "c.bin"] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f).unwrap();
        }
        let (ok, bad) = walk_all(&[d.path().to_path_buf()], &Walk::handed_over());
        assert!(bad.is_empty(), "{bad:?}");
        let rel: Vec<String> = ok
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(std::fs::canonicalize(d.path()).unwrap())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(rel, ["a/y/1.bin", "a/z.bin", "b/2.bin", "c.bin"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_swapped_for_a_link_after_it_was_examined_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("id_rsa");
        std::fs::write(&secret, b"PRIVATE KEY").unwrap();
        let watched = d.path().join("watched");
        std::fs::create_dir(&watched).unwrap();
        let file = watched.join("report.pdf");
        std::fs::write(&file, b"the report").unwrap();
        // What the watched folder examined.
        let examined = FileId::of(&std::fs::symlink_metadata(&file).unwrap());
        let walk = Walk {
            follow_top: false,
            examined: BTreeMap::from([(file.clone(), examined)]),
        };
        // Swapped for a link to the key (ln -s; mv -T), then handed over.
        let tmp = watched.join(".swap");
        std::os::unix::fs::symlink(&secret, &tmp).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let (ok, bad) = walk_all(std::slice::from_ref(&file), &walk);
        assert!(ok.is_empty(), "{ok:?}");
        assert_eq!(bad[0].0, file);
        assert!(bad[0].1.contains("not followed"), "{bad:?}");
        // Swapped for another regular file (a hard link to the key): not the file examined.
        std::fs::remove_file(&file).unwrap();
        std::fs::hard_link(&secret, &file).unwrap();
        let (ok, bad) = walk_all(std::slice::from_ref(&file), &walk);
        assert!(ok.is_empty());
        assert!(bad[0].1.contains("replaced"), "{bad:?}");
        // A FIFO swapped in does not block the walk.
        std::fs::remove_file(&file).unwrap();
        let c = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (ok, bad) = walk_all(std::slice::from_ref(&file), &Walk::default());
        assert!(ok.is_empty());
        assert!(bad[0].1.contains("not a regular file"), "{bad:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_watched_file_whose_folder_was_swapped_for_a_link_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(d.path()).unwrap();
        let ssh = d.join("ssh");
        std::fs::create_dir(&ssh).unwrap();
        std::fs::write(ssh.join("id_rsa"), b"PRIVATE KEY").unwrap();
        let sub = d.join("watched/sub");
        std::fs::create_dir_all(&sub).unwrap();
        let file = sub.join("id_rsa");
        std::fs::write(&file, b"decoy").unwrap();
        let decoy = FileId::of(&std::fs::symlink_metadata(&file).unwrap());
        // mv sub away; ln -s ssh sub
        std::fs::rename(&sub, d.join("watched/x")).unwrap();
        std::os::unix::fs::symlink(&ssh, &sub).unwrap();
        let key = FileId::of(&std::fs::metadata(&file).unwrap());
        for examined in [decoy, key] {
            let walk = Walk {
                follow_top: false,
                examined: BTreeMap::from([(file.clone(), examined)]),
            };
            let (ok, bad) = walk_all(std::slice::from_ref(&file), &walk);
            assert!(ok.is_empty(), "{ok:?}");
            assert!(bad[0].1.contains("reached through a link"), "{bad:?}");
        }
        assert!(!inside(&d.join("watched"), &file));
        assert!(inside(&d.join("watched"), &d.join("watched/x/id_rsa")));
    }

    #[cfg(unix)]
    #[test]
    fn a_handed_over_link_is_followed_and_recorded_as_its_target() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real.bin");
        std::fs::write(&real, b"x").unwrap();
        let link = d.path().join("latest.bin");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let (ok, _) = walk_all(std::slice::from_ref(&link), &Walk::handed_over());
        assert_eq!(ok[0].path, std::fs::canonicalize(&real).unwrap());
        assert_eq!(ok[0].name, "latest.bin", "the name the person handed over");
        let (ok, bad) = walk_all(&[link], &Walk::default());
        assert!(
            ok.is_empty() && bad[0].1.contains("not followed"),
            "{bad:?}"
        );
    }
}

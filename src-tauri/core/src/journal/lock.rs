//! One engine per data directory: two processes appending to the same server uploads would
//! corrupt them. The OS lock dies with the process, so a crash never leaves a stale lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Holds the data directory's lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock or reports who holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        // A directory Tusker makes (or finds empty), or one that already is a Tusker data dir, becomes this
        // user's alone (the journal, logs and secrets file are inside); a directory someone
        // named that holds other things keeps its mode.
        let ours = std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
            || dir.join("journal.sqlite").exists()
            || dir.join("tusker.lock").exists();
        std::fs::create_dir_all(dir)?;
        if ours {
            crate::platform::owner_only(dir, 0o700);
        }
        let path = dir.join("tusker.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Locked {
                    dir: dir.display().to_string(),
                    holder: if holder.is_empty() {
                        "unknown process".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "tusker".into());
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        write!(file, "{exe} (pid {})", std::process::id())?;
        file.flush()?;
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_a_name() {
        let d = tempfile::tempdir().unwrap();
        let l = DirLock::acquire(d.path()).unwrap();
        let err = DirLock::acquire(d.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(l);
        // Another test thread may fork a child between our open and its exec; the child holds
        // the lock's file description until exec closes it (CLOEXEC), so allow a short wait.
        let mut tries = 0;
        while let Err(e) = DirLock::acquire(d.path()) {
            tries += 1;
            assert!(tries < 200, "the lock stayed held after drop: {e}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

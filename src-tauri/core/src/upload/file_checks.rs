//! The file under an upload: still the one that was added (no link on the way, the same
//! stamp, or a moved stamp proven), and the run's record of sent bytes aligned with it.

use super::*;

/// Another inode at an upload's path may be an editor's save, or a folder on the way swapped
/// for a link to somewhere else: only a path that still leads through no link is taken as
/// the file (the journal's paths are recorded without links, see [`crate::identity::files`]).
pub(crate) async fn no_link_on_the_way(rec: &UploadRecord, now: &FileStamp) -> Result<()> {
    if rec.ino == 0 || now.ino == rec.ino {
        return Ok(());
    }
    let path = std::path::PathBuf::from(&rec.path);
    let real = source::blocking_file(&rec.path, {
        let path = path.clone();
        move || Ok(std::fs::canonicalize(&path).ok())
    })
    .await?;
    if real.as_deref() == Some(path.as_path()) {
        return Ok(());
    }
    Err(Error::FileChanged(format!(
        "{} is now reached through a symbolic link (not followed)",
        rec.path
    )))
}

/// Compares the file with the journal's stamp before (re)starting. A moved stamp means the
/// file may hold other bytes than were sent: a new size is `file changed`; the same size is
/// proven block by block against the journal (at hashing speed), and any difference inside
/// what the server holds is `file changed`. Edits past it are no mix: they are sent as they are.
/// `None`: the stamp has not moved, the file holds the bytes that were sent.
pub(super) async fn check_file(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    cache: &mut Option<Moved>,
) -> Result<Option<Moved>> {
    let path = std::path::PathBuf::from(&rec.path);
    let st = source::stamp(&rec.path).await?;
    if !st.moved_from(&rec.stamp()) {
        return Ok(None);
    }
    no_link_on_the_way(rec, &st).await?;
    if st.size != rec.size {
        return Err(Error::FileChanged(format!(
            "{}: size is now {} bytes, was {}",
            rec.path, st.size, rec.size
        )));
    }
    if let Some(m) = cache.as_ref() {
        if m.stamp == st && m.hasher.len() == rec.acked_offset {
            return Ok(Some(m.clone()));
        }
    }
    let journal = ctx.store.proof(rec.id)?;
    let started = std::time::Instant::now();
    let (fp, stamp, result, after) = source::blocking(move || {
        let (fp, stamp) = fingerprint::fingerprint(&path)?;
        let result = proof::rebuild(&path, &journal, journal.len, false)?;
        Ok((fp, stamp, result, fingerprint::stamp(&path)?))
    })
    .await?;
    let hasher = match result {
        Ok(h) => h,
        Err(m) => {
            tracing::info!(
                id = rec.id,
                at = m.at,
                "file changed inside the bytes the server holds"
            );
            return Err(Error::FileChanged(format!(
                "{}: the bytes at offset {} differ from those the server holds",
                rec.path, m.at
            )));
        }
    };
    if after != stamp {
        return Err(Error::FileChanged(format!(
            "{} changed while it was being verified",
            rec.path
        )));
    }
    tracing::info!(
        id = rec.id,
        proven = hasher.len(),
        ms = started.elapsed().as_millis() as u64,
        "file stamp moved; the bytes the server holds are proven to be the file's"
    );
    let m = Moved {
        stamp,
        fingerprint: fp,
        hasher,
    };
    *cache = Some(m.clone());
    Ok(Some(m))
}

/// [`check_unchanged`] off the engine's thread.
pub(super) async fn unchanged(path: &str, stamp: &FileStamp) -> Result<()> {
    let (p, stamp) = (path.to_string(), *stamp);
    source::blocking_file(path, move || check_unchanged(&p, &stamp)).await
}

/// Verifies the stamp has not moved since the upload started (cheap stat, no hashing). On
/// the blocking pool only (inside a read).
pub(super) fn check_unchanged(path: &str, stamp: &FileStamp) -> Result<()> {
    let st = fingerprint::stamp(Path::new(path))?;
    if st.moved_from(stamp) {
        return Err(Error::FileChanged(format!(
            "{path} was modified during the upload"
        )));
    }
    Ok(())
}

/// Before each request: the file still holds what was sent. A file gone from its path is
/// looked up again in the journal, which the watcher updates when it follows a rename. A
/// stamp that moved while this run works (a rename, a touch, an edit) ends the pass: the next
/// one proves the sent bytes against the journal and asks the server what it holds before it
/// appends (a request that failed may have left more there than the journal proves).
pub(super) async fn ensure_file(ctx: &UploadCtx, rec: &UploadRecord) -> Result<(), Interruption> {
    let st = match source::stamp(&rec.path).await {
        Ok(st) => st,
        Err(Error::FileMissing(_)) => {
            let now = ctx.store.get(rec.id)?;
            if now.path == rec.path {
                return Err(Error::FileMissing(rec.path.clone()).into());
            }
            tracing::info!(id = rec.id, path = %now.path, "the file was renamed; following it");
            return Err(Interruption::Recheck);
        }
        Err(e) => return Err(e.into()),
    };
    if !st.moved_from(&rec.stamp()) {
        return Ok(());
    }
    if st.size != rec.size {
        return Err(
            Error::FileChanged(format!("{} was modified during the upload", rec.path)).into(),
        );
    }
    tracing::info!(
        id = rec.id,
        "the file's stamp moved during the upload; proving before going on"
    );
    Err(Interruption::Recheck)
}

/// Brings the run's record of sent bytes to exactly `[0, target)` of the server upload:
/// kept as it is when it already is (the normal case after an acknowledged PATCH), otherwise
/// rebuilt from the journal's proof and the file (the server kept part of a request, or the
/// run starts). The file's stamp is unmoved here, so its bytes are the ones that were sent;
/// the journal's digests in the range read are compared all the same.
pub(super) async fn align(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    sent: &Sent,
    target: u64,
) -> Result<()> {
    if source::lock(sent).hasher().len() == target {
        return Ok(());
    }
    let journal = ctx.store.proof(rec.id)?;
    rebuild_sent(rec, sent, 0, journal, target).await
}

/// Rebuilds a record of sent bytes from `base` on (0, or where a part starts) to `target`
/// bytes after it from the journal's proof and the file, and checks the stamp after the read.
pub(super) async fn rebuild_sent(
    rec: &UploadRecord,
    sent: &Sent,
    base: u64,
    journal: proof::PrefixProof,
    target: u64,
) -> Result<()> {
    let path = std::path::PathBuf::from(&rec.path);
    let rebuilt =
        source::blocking(move || proof::rebuild_at(&path, base, &journal, target, true)).await?;
    unchanged(&rec.path, &rec.stamp()).await?;
    match rebuilt {
        Ok(h) => {
            source::lock(sent).reset(h);
            Ok(())
        }
        Err(m) => Err(Error::FileChanged(format!(
            "{}: the bytes at offset {} differ from those the server holds",
            rec.path,
            base + m.at
        ))),
    }
}

//! What the server holds: HEAD's answer, and an offset the server confirmed journalled with
//! the proof of the bytes below it.

use super::*;

/// What a HEAD says about an upload that still matches the file.
pub(super) struct ServerState {
    pub(super) offset: u64,
    pub(super) expires: Option<i64>,
    /// The length is still deferred (a PATCH must declare it). Only a server that says so
    /// explicitly; one that merely omits Upload-Length must not get it declared twice.
    pub(super) length_deferred: bool,
}

/// What a HEAD says about the journal's server upload.
pub(super) enum Head {
    Holds(ServerState),
    /// 404, 410 (or 403 on HEAD): it no longer exists; expiry ends up here too, as the
    /// server judges it (the local clock never abandons an upload without asking).
    Gone,
    /// It exists but cannot be this file's: another length, or an offset past the file's end.
    Mismatch,
}

/// Asks the server what it holds; errors are transient or final as classified.
pub(super) async fn server_offset(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    url: &str,
    grant: &Grant,
) -> Result<Head> {
    let head = server_offset_any(ctx, rec, url, grant).await?;
    // A URL a service handed over is the only one there is: never replaced.
    match (&head, rec.given_url) {
        (Head::Gone, true) => Err(given_url_gone()),
        (Head::Mismatch, true) => Err(Error::UploadUrl(format!(
            "the server's upload is not for a file of {} bytes (HEAD said another length, or an offset past it)",
            rec.size
        ))),
        _ => Ok(head),
    }
}

pub(super) async fn server_offset_any(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    url: &str,
    grant: &Grant,
) -> Result<Head> {
    match ctx.client.head(url, grant).await {
        Ok(info) => {
            if info.length.is_some_and(|l| l != rec.size) || info.offset > rec.size {
                tracing::warn!(id = rec.id, server_length = ?info.length, server_offset = info.offset, "server upload does not match the file");
                Ok(Head::Mismatch)
            } else {
                Ok(Head::Holds(ServerState {
                    offset: info.offset,
                    expires: info.expires.and_then(unix_secs),
                    length_deferred: info.length_deferred,
                }))
            }
        }
        Err(e) if says_gone(&e) => {
            tracing::info!(id = rec.id, status = ?e.status(), "server upload is gone");
            Ok(Head::Gone)
        }
        Err(e) => Err(e),
    }
}

/// Terminates a server upload this run gives up on (DELETE, where the server offers
/// termination), so it does not linger unfinished. The journal keeps its URL until a new one
/// replaces it; a failure here only costs server space.
pub(super) async fn abandon(
    ctx: &UploadCtx,
    caps: &ServerCaps,
    id: UploadId,
    url: &str,
    grant: &Grant,
) {
    if !caps.may_have("termination") {
        tracing::info!(
            id,
            "server has no termination extension; the abandoned upload is left to expire"
        );
        return;
    }
    match ctx.client.delete(url, grant).await {
        Ok(()) => tracing::info!(id, "terminated the abandoned server upload"),
        Err(e) => tracing::warn!(id, error = %e, "terminating the abandoned server upload failed"),
    }
}

/// The server holds fewer bytes than it confirmed (it lost some): never silently. The
/// difference is counted in the journal and the view says why progress went back.
pub(super) fn regressed(ctx: &UploadCtx, reporter: &Reporter, from: u64, to: u64) -> Result<()> {
    tracing::warn!(
        id = reporter.id,
        confirmed = from,
        server = to,
        "the server holds fewer bytes than it confirmed; sending them again"
    );
    ctx.store
        .add_resent(reporter.id, reporter.epoch, from - to)?;
    reporter.send(WorkerEvent::Regressed { from, to });
    Ok(())
}

/// The server holds `offset` bytes (an acknowledged PATCH, a HEAD): brings the run's record
/// of sent bytes to exactly that, journals it with its proof (and the completion, when every
/// byte is there), and reports the progress; fewer than the journal had is counted and shown.
/// True when the upload is journalled complete.
pub(super) async fn take_offset(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    run: &mut RunState<'_>,
    reporter: &Reporter,
    offset: u64,
    expires: Option<i64>,
    length_pending: bool,
) -> Result<bool> {
    if offset < *run.acked {
        regressed(ctx, reporter, *run.acked, offset)?;
    }
    // No reader of the request that just ended may add to the record any more.
    source::lock(run.sent).seal();
    align(ctx, rec, run.sent, offset).await?;
    let done = journal_offset(
        ctx,
        rec,
        reporter.epoch,
        run.sent,
        offset,
        expires,
        length_pending,
    )
    .await?;
    *run.acked = offset;
    reporter.send(WorkerEvent::Progress {
        acked: offset,
        in_flight: 0,
    });
    Ok(done)
}

/// Journals a server-confirmed offset with the proof of the bytes below it (the run's record
/// of what it sent must already cover exactly `[0, offset)`); with every byte confirmed, the
/// completion and the content hash too.
pub(super) async fn journal_offset(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    epoch: i64,
    sent: &Sent,
    offset: u64,
    expires: Option<i64>,
    length_pending: bool,
) -> Result<bool> {
    // The record is sealed and aligned: only this worker touches it until `journalled`.
    let done = offset == rec.size && !length_pending;
    let (delta, hash) = {
        let log = source::lock(sent);
        if log.hasher().len() != offset {
            // Never journal a proof of another range than the offset it goes with.
            return Err(Error::Protocol(format!(
                "internal: the record of sent bytes ends at {}, not at {offset}",
                log.hasher().len()
            )));
        }
        (
            log.hasher().delta(),
            done.then(|| log.hasher().content_hash()),
        )
    };
    if let Some(hash) = hash {
        ctx.store
            .set_final_offset(rec.id, epoch, offset, expires, &delta, &hash)
            .await?;
    } else {
        ctx.store
            .set_offset(rec.id, epoch, offset, expires, &delta)
            .await?;
    }
    source::lock(sent).hasher_mut().journalled();
    Ok(done)
}

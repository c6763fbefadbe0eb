//! Resume (HEAD): what the server holds, taken only if it is provably this file's.

use super::*;

/// Resumes what the server has, if it still has it and it is provably this file's (HEAD);
/// `None` when a new server upload is needed.
pub(super) async fn resume(
    ctx: &UploadCtx,
    reporter: &Reporter,
    run: &mut RunState<'_>,
    pass: &mut Pass,
) -> Result<Option<ServerUpload>, Interruption> {
    let (id, epoch, sent) = (pass.rec.id, reporter.epoch, run.sent);
    let Pass {
        rec,
        grant,
        caps,
        moved,
        journalled_done,
        ..
    } = pass;
    // Resume what the server has, if it still has it and it is provably this file's.
    let mut resumed = None;
    if let Some(url) = rec.upload_url.clone() {
        match server_offset(ctx, rec, &url, grant).await? {
            Head::Holds(st) if moved.is_some() && st.offset > rec.acked_offset && rec.given_url => {
                return Err(Error::UploadUrl(format!(
                    "{} changed and the server holds {} bytes that cannot be checked against it",
                    rec.path, st.offset
                ))
                .into());
            }
            Head::Holds(st) if moved.is_some() && st.offset > rec.acked_offset => {
                tracing::warn!(
                    id,
                    proven = rec.acked_offset,
                    server = st.offset,
                    "the server holds bytes sent before the file changed, which nothing can prove; starting a new upload"
                );
                abandon(ctx, caps, id, &url, grant).await;
            }
            Head::Holds(st) => {
                let journalled = rec.acked_offset;
                if let Some(m) = moved.take() {
                    // Proven: the new stamp becomes the journal's, and so does the proof.
                    ctx.store
                        .adopt_stamp(id, epoch, journalled, &m.stamp, &m.fingerprint)?;
                    rec.mtime_ns = m.stamp.mtime_ns;
                    rec.ino = m.stamp.ino;
                    rec.ctime_ns = m.stamp.ctime_ns;
                    rec.fingerprint = m.fingerprint;
                    source::lock(sent).reset(m.hasher);
                    *run.proven = None;
                }
                *journalled_done = take_offset(
                    ctx,
                    rec,
                    run,
                    reporter,
                    st.offset,
                    st.expires,
                    st.length_deferred,
                )
                .await?;
                // After an interruption the row says what the server kept (a bar that went
                // back to it would otherwise look like lost work).
                // (Less than the journal had: the note says the server lost data instead.)
                if st.offset > 0 && st.offset < rec.size && st.offset >= journalled {
                    reporter.send(WorkerEvent::Note(format!(
                        "resumed: the server had kept {} of {}",
                        crate::error::explain::human_bytes(st.offset),
                        crate::error::explain::human_bytes(rec.size)
                    )));
                }
                resumed = Some(ServerUpload {
                    url,
                    offset: st.offset,
                    length_pending: st.length_deferred,
                });
            }
            Head::Mismatch => abandon(ctx, caps, id, &url, grant).await,
            Head::Gone => reporter.send(WorkerEvent::Note(LOST_NOTE.into())),
        }
    }

    Ok(resumed)
}

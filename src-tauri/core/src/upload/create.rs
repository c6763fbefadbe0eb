//! Create (POST): a new server upload, its URL journalled before anything is sent to it.

use super::*;

/// Creates the server upload (POST, with the first chunk where creation-with-upload was
/// opted into) and journals its URL before anything is sent to it.
pub(super) async fn create(
    ctx: &UploadCtx,
    reporter: &Reporter,
    run: &mut RunState<'_>,
    pass: &mut Pass,
) -> Result<ServerUpload, Interruption> {
    let (id, epoch, sent) = (pass.rec.id, reporter.epoch, run.sent);
    let (cut, exact, chunk, had_url) = (pass.cut, pass.exact, pass.chunk, pass.had_url);
    let Pass {
        rec,
        endpoint,
        grant,
        caps,
        moved,
        journalled_done,
        ..
    } = pass;
    reporter.send(WorkerEvent::StartingOver);
    source::lock(sent).reset(PrefixHasher::new());
    if let Some(m) = &moved {
        // The new server upload gets the file as it is now (a POST with data reads it
        // under this stamp); the journal takes the stamp once the URL is recorded.
        rec.mtime_ns = m.stamp.mtime_ns;
        rec.ino = m.stamp.ino;
        rec.ctime_ns = m.stamp.ctime_ns;
    }
    let metadata = upload_metadata(rec)?;
    let defer = rec.size == 0 && caps.has("creation-defer-length");
    let mut use_cwu = ctx.settings.creation_with_upload
        && caps.has("creation-with-upload")
        && rec.size > 0
        && exact.is_none();
    let created = loop {
        let transfer = Transfer::new();
        let first = if use_cwu {
            let max = chunk.min(ctx.settings.post_body_cap);
            Some(next_body(ctx, rec, 0, max, cut, &transfer, sent).await?)
        } else {
            None
        };
        let first_len = first.as_ref().map_or(0, |b| b.len);
        let r = supervise(
            ctx.client.create(
                endpoint,
                grant,
                (!defer).then_some(rec.size),
                &metadata,
                first,
            ),
            &transfer,
            0,
            // A bodiless POST is answered at once or it stalls.
            if first_len == 0 { u64::MAX } else { first_len },
            &ctx.settings,
            reporter,
        )
        .await;
        let r = match r {
            Err(e) => Err(blame_file(e, &transfer, rec).await),
            ok => ok,
        };
        match r {
            // A proxy in front of the server may cap request bodies: create empty.
            Err(e) if use_cwu && e.status() == Some(413) => {
                tracing::info!(id, "413 on POST with data; creating without data");
                use_cwu = false;
            }
            r => break r.map_err(|e| not_tus(e, caps, &rec.endpoint))?,
        }
    };
    crate::failpoint::hit(crate::failpoint::Point::CreateAnswered);
    check_location(grant, endpoint, &created.url)?;
    let exp = created.expires.and_then(unix_secs);
    ctx.store
        .set_url(id, epoch, &created.url, exp, had_url)
        .await?;
    *run.acked = 0;
    if let Some(m) = moved.take() {
        // A new server upload holds nothing yet: the moved stamp is the file's now.
        ctx.store
            .adopt_stamp(id, epoch, 0, &m.stamp, &m.fingerprint)?;
        rec.mtime_ns = m.stamp.mtime_ns;
        rec.ino = m.stamp.ino;
        rec.ctime_ns = m.stamp.ctime_ns;
        rec.fingerprint = m.fingerprint;
        *run.proven = None;
    }
    if created.offset > 0 {
        *journalled_done = take_offset(ctx, rec, run, reporter, created.offset, exp, defer).await?;
    }
    // The URL is a capability on many servers: only at debug level.
    tracing::debug!(id, url = %crate::redact::strip_userinfo(&created.url), "server upload URL");
    tracing::info!(
        id,
        offset = created.offset,
        recreated = had_url,
        "created server upload"
    );
    reporter.send(WorkerEvent::Url {
        url: created.url.clone(),
        recreated: had_url,
    });
    reporter.send(WorkerEvent::Progress {
        acked: created.offset,
        in_flight: 0,
    });
    Ok(ServerUpload {
        url: created.url,
        offset: created.offset,
        length_pending: defer,
    })
}

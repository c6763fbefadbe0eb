//! Send (PATCH): chunks until the server holds every byte.

use super::*;

/// Sends PATCHes until the server holds every byte: a moved PATCH is followed, an answer
/// that is not believed is checked with HEAD, a 413 halves the chunk, a checksum mismatch
/// sends the chunk again. Returns the offset reached.
pub(super) async fn send(
    ctx: &UploadCtx,
    reporter: &Reporter,
    run: &mut RunState<'_>,
    pass: &mut Pass,
    at: ServerUpload,
) -> Result<u64, Interruption> {
    let (id, sent) = (pass.rec.id, run.sent);
    let (cut, exact, chunk_limit) = (pass.cut, pass.exact, pass.chunk_limit);
    let checksum = cut.checksum;
    let mut chunk = pass.chunk;
    let ServerUpload {
        mut url,
        mut offset,
        mut length_pending,
    } = at;
    let Pass {
        rec,
        grant,
        caps,
        journalled_done,
        ..
    } = pass;
    let mut conflicts = 0u32;
    let base_chunk = chunk;
    // Bytes per second of the last PATCH.
    let mut rate: Option<f64> = None;
    let mut bad_answers = 0u32;
    let mut checksum_mismatches = 0u32;
    let mut moves = 0u32;
    while offset < rec.size || length_pending {
        ensure_file(ctx, rec).await?;
        align(ctx, rec, sent, offset).await?;
        let transfer = Transfer::new();
        // Exact chunks stay on their boundaries even after a server kept part of one.
        let want = match exact {
            Some(n) => n - offset % n,
            None => grown_chunk(chunk, base_chunk, chunk_limit, checksum.is_some(), rate),
        };
        let began = std::time::Instant::now();
        let body = next_body(ctx, rec, offset, want, cut, &transfer, sent).await?;
        let sent_len = body.len;
        let result = supervise(
            ctx.client.patch(
                &url,
                grant,
                offset,
                body,
                length_pending.then_some(rec.size),
            ),
            &transfer,
            offset,
            if sent_len == 0 { u64::MAX } else { sent_len },
            &ctx.settings,
            reporter,
        )
        .await;
        // A 2xx whose Upload-Offset is missing, malformed, shows no progress or claims more
        // than was sent is not believed: HEAD says what the server holds.
        let result = believed(result, offset, sent_len);
        match result {
            Ok(p) => {
                crate::failpoint::hit(crate::failpoint::Point::PatchAcked);
                rate = Some((p.offset - offset) as f64 / began.elapsed().as_secs_f64().max(1e-3));
                let exp = p.expires.and_then(unix_secs);
                // The server may keep less than the whole body (it ended the request early);
                // the last PATCH journals offset, proof and completion in one write.
                *journalled_done =
                    take_offset(ctx, rec, run, reporter, p.offset, exp, false).await?;
                offset = p.offset;
                length_pending = false;
                conflicts = 0;
                bad_answers = 0;
                checksum_mismatches = 0;
            }
            // A 307/308 to a PATCH (allowed by the client's rules): send it there again. The
            // journal keeps the upload's URL; the next run is redirected again if need be.
            Err(Error::Moved(to)) if moves < 5 => {
                moves += 1;
                tracing::info!(id, "the server moved the PATCH; sending it again there");
                url = to;
            }
            Err(Error::BadOffset(why)) => {
                bad_answers += 1;
                if bad_answers > MAX_BAD_ANSWERS {
                    return Err(Error::BadOffset(format!(
                        "{why} ({bad_answers} answers in a row)"
                    ))
                    .into());
                }
                tracing::warn!(id, why = %why, "asking the server's offset (HEAD) instead");
                let st = head_again(ctx, rec, &url, grant, caps).await?;
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
                offset = st.offset;
                length_pending = st.length_deferred;
            }
            Err(e) => {
                let e = blame_file(e, &transfer, rec).await;
                match e.status() {
                    Some(409) if conflicts < 5 => {
                        conflicts += 1;
                        let ServerState {
                            offset: server,
                            expires: exp,
                            ..
                        } = head_again(ctx, rec, &url, grant, caps).await?;
                        tracing::info!(
                            id,
                            ours = offset,
                            server,
                            "offset conflict; continuing from the server's offset"
                        );
                        *journalled_done =
                            take_offset(ctx, rec, run, reporter, server, exp, length_pending)
                                .await?;
                        offset = server;
                    }
                    Some(413) if sent_len > MIN_CHUNK && exact.is_none() => {
                        chunk = (sent_len / 2).max(MIN_CHUNK);
                        tracing::info!(id, chunk, "413: halving the chunk size");
                        ctx.store.learn_chunk(&rec.endpoint, chunk)?;
                    }
                    // rustus answers a checksum mismatch with 417.
                    Some(460 | 417) if checksum.is_some() && checksum_mismatches < 3 => {
                        checksum_mismatches += 1;
                        tracing::warn!(id, offset, "checksum mismatch; sending the chunk again");
                    }
                    _ if says_gone(&e) && rec.given_url => return Err(given_url_gone().into()),
                    _ if says_gone(&e) => {
                        tracing::info!(id, status = ?e.status(), "server upload vanished; creating a new one");
                        return Err(Interruption::Gone);
                    }
                    _ => return Err(e.into()),
                }
            }
        }
    }
    Ok(offset)
}

/// HEAD again in the middle of sending: what the server holds, or the server upload is gone
/// (one of another length is terminated first).
async fn head_again(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    url: &str,
    grant: &Grant,
    caps: &ServerCaps,
) -> Result<ServerState, Interruption> {
    match server_offset(ctx, rec, url, grant).await? {
        Head::Holds(st) => Ok(st),
        Head::Gone => Err(Interruption::Gone),
        Head::Mismatch => {
            abandon(ctx, caps, rec.id, url, grant).await;
            Err(Interruption::Gone)
        }
    }
}

//! One part on its own connection: resumed where the server has it or created, then its
//! range PATCHed, each confirmed offset journalled with the proof of the part's bytes.

use super::*;

/// What every request of one part needs besides the part itself: the worker's context (the
/// part's own connections), the upload, its run's epoch, the pass's setup, the parts' tally.
#[derive(Clone, Copy)]
pub(super) struct PartCtx<'a> {
    pub(super) ctx: &'a UploadCtx,
    pub(super) rec: &'a UploadRecord,
    pub(super) epoch: i64,
    pub(super) s: &'a Setup<'a>,
    pub(super) tally: &'a Tally,
}

/// Brings a part's record of sent bytes to exactly `[0, target)` of the part (see [`align`]).
pub(super) async fn align_part(
    pc: &PartCtx<'_>,
    part: &PartRow,
    sent: &Sent,
    target: u64,
) -> Result<()> {
    let PartCtx { ctx, rec, .. } = *pc;
    if source::lock(sent).hasher().len() == target {
        return Ok(());
    }
    let journal = ctx.store.part_proof(rec.id, part)?;
    rebuild_sent(rec, sent, part.start, journal, target).await
}

/// The server holds `offset` bytes of a part: journal it with the proof of those bytes.
pub(super) async fn take_part_offset(
    pc: &PartCtx<'_>,
    part: &mut PartRow,
    sent: &Sent,
    offset: u64,
) -> Result<()> {
    let PartCtx {
        ctx,
        rec,
        epoch,
        tally,
        ..
    } = *pc;
    if offset < part.acked {
        tracing::warn!(
            id = rec.id,
            part = part.idx,
            confirmed = part.acked,
            server = offset,
            "the server holds fewer bytes of a part than it confirmed; sending them again"
        );
        ctx.store.add_resent(rec.id, epoch, part.acked - offset)?;
    }
    source::lock(sent).seal();
    align_part(pc, part, sent, offset).await?;
    {
        let mut log = source::lock(sent);
        if log.hasher().len() != offset {
            return Err(Error::Protocol(format!(
                "internal: the record of a part's sent bytes ends at {}, not at {offset}",
                log.hasher().len()
            )));
        }
        let delta = log.hasher().delta();
        ctx.store
            .set_part_offset(rec.id, epoch, part, offset, &delta)?;
        log.hasher_mut().journalled();
    }
    part.acked = offset;
    tally.set(part.idx, offset, 0);
    Ok(())
}

/// Creates a part's server upload and journals its URL before anything is sent to it.
pub(super) async fn create_part(
    pc: &PartCtx<'_>,
    part: &mut PartRow,
    sent: &Sent,
) -> Result<String, Interruption> {
    let PartCtx {
        ctx,
        rec,
        epoch,
        s,
        tally,
    } = *pc;
    let created = match ctx
        .client
        .create_partial(s.endpoint, s.grant, part.len, None)
        .await
    {
        Ok(c) => c,
        // @tus/server 2.4.5: "Concatenation extension is not (yet) supported".
        Err(e) if e.status() == Some(501) => {
            return Err(Interruption::NoParts(
                "the server refused a partial upload (501)".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    crate::failpoint::hit(crate::failpoint::Point::PartCreated);
    check_location(s.grant, s.endpoint, &created.url)?;
    ctx.store
        .set_part_url(rec.id, epoch, part, Some(&created.url))?;
    part.url = Some(created.url.clone());
    part.acked = 0;
    source::lock(sent).reset(PrefixHasher::new());
    tally.set(part.idx, 0, 0);
    tracing::debug!(id = rec.id, part = part.idx, url = %crate::redact::strip_userinfo(&created.url), "part upload URL");
    Ok(created.url)
}

/// Where a part's server upload stands at the start of its run: its URL when the server still
/// holds it as it should (its offset taken), `None` when it is to be created.
pub(super) async fn resume_part(
    pc: &PartCtx<'_>,
    part: &mut PartRow,
    sent: &Sent,
    final_posts: u32,
) -> Result<Option<String>, Interruption> {
    let PartCtx { ctx, rec, s, .. } = *pc;
    let id = rec.id;
    let mut url = None;
    if let Some(u) = part.url.clone() {
        match ctx.client.head(&u, s.grant).await {
            Ok(h) if h.length.is_some_and(|l| l != part.len) || h.offset > part.len => {
                tracing::warn!(
                    id,
                    part = part.idx,
                    "the part's server upload does not match it; creating it again"
                );
                abandon(ctx, s.caps, id, &u, s.grant).await;
            }
            Ok(h) => {
                take_part_offset(pc, part, sent, h.offset).await?;
                url = Some(u);
            }
            Err(e) if says_gone(&e) && part.acked == part.len && final_posts > 0 => {
                return Err(parts_taken().into())
            }
            Err(e) if says_gone(&e) => {
                tracing::info!(id, part = part.idx, "the part's server upload is gone");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(url)
}

/// Runs one part to completion on its own connection: resume it where the server has it
/// (or create it), then PATCH its range.
pub(super) async fn run_part(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    epoch: i64,
    s: &Setup<'_>,
    mut part: PartRow,
    tally: &Tally,
    final_posts: u32,
) -> Result<(), Interruption> {
    let ctx = &UploadCtx {
        client: ctx.client.own_connections(),
        ..ctx.clone()
    };
    let pc = PartCtx {
        ctx,
        rec,
        epoch,
        s,
        tally,
    };
    let id = rec.id;
    let sent = SentLog::from(part.start, PrefixHasher::new());
    let url = resume_part(&pc, &mut part, &sent, final_posts).await?;
    let mut url = match url {
        Some(u) => u,
        None => create_part(&pc, &mut part, &sent).await?,
    };
    let (mut conflicts, mut bad_answers, mut mismatches, mut moves, mut gone) = (0, 0, 0, 0, 0);
    // Bytes per second of the last PATCH.
    let mut rate: Option<f64> = None;
    // The next chunk's checksum, read while this chunk is sent: `(offset, len, digest)`.
    let mut next: Planned = None;
    let source = Source::new(&rec.path).expecting(rec.ino);
    while part.acked < part.len {
        ensure_file(ctx, rec).await?;
        align_part(&pc, &part, &sent, part.acked).await?;
        let offset = part.acked;
        let (len, checksum) = next_chunk(&pc, &part, &source, &mut next, rate).await?;
        let began = std::time::Instant::now();
        let transfer = Transfer::new();
        let body = source
            .body(
                part.start + offset,
                len,
                ctx.limiter.clone(),
                transfer.clone(),
                sent.clone(),
            )
            .await?;
        let idx = part.idx;
        let result = supervise_with(
            ctx.client.patch(
                &url,
                s.grant,
                offset,
                SizedBody {
                    body,
                    len,
                    checksum,
                },
                None,
            ),
            &transfer,
            len,
            &ctx.settings,
            |n| tally.set(idx, offset, n),
        )
        .await;
        let result = believed(result, offset, len);
        match result {
            Ok(p) => {
                crate::failpoint::hit(crate::failpoint::Point::PatchAcked);
                rate = Some((p.offset - offset) as f64 / began.elapsed().as_secs_f64().max(1e-3));
                take_part_offset(&pc, &mut part, &sent, p.offset).await?;
                if p.offset == part.len {
                    tally.confirm(part.idx);
                }
                (conflicts, bad_answers, mismatches) = (0, 0, 0);
            }
            Err(Error::Moved(to)) if moves < 5 => {
                moves += 1;
                url = to;
            }
            Err(e) => {
                let e = blame_file(e, &transfer, rec).await;
                let status = e.status();
                let ask = match (&e, status) {
                    (Error::BadOffset(why), _) => {
                        bad_answers += 1;
                        if bad_answers > MAX_BAD_ANSWERS {
                            return Err(Error::BadOffset(format!(
                                "{why} ({bad_answers} answers in a row)"
                            ))
                            .into());
                        }
                        true
                    }
                    (_, Some(409)) if conflicts < 5 => {
                        conflicts += 1;
                        true
                    }
                    (_, Some(413)) if len > MIN_CHUNK => {
                        let chunk = (len / 2).max(MIN_CHUNK);
                        if chunk < tally.chunk() {
                            tracing::info!(id, chunk, "413: halving the chunk size");
                            tally.shrink_chunk(chunk);
                            ctx.store.learn_chunk(&rec.endpoint, chunk)?;
                        }
                        false
                    }
                    // rustus answers a checksum mismatch with 417.
                    (_, Some(460 | 417)) if s.checksum.is_some() && mismatches < 3 => {
                        mismatches += 1;
                        tracing::warn!(
                            id,
                            part = part.idx,
                            offset,
                            "checksum mismatch; sending the chunk again"
                        );
                        false
                    }
                    _ if says_gone(&e) && gone < 3 => {
                        gone += 1;
                        tracing::info!(
                            id,
                            part = part.idx,
                            "the part's server upload vanished; creating it again"
                        );
                        url = create_part(&pc, &mut part, &sent).await?;
                        false
                    }
                    _ => return Err(e.into()),
                };
                if ask {
                    match ctx.client.head(&url, s.grant).await {
                        Ok(h) if h.offset <= part.len => {
                            take_part_offset(&pc, &mut part, &sent, h.offset).await?;
                        }
                        Ok(h) => {
                            return Err(Error::BadOffset(format!(
                                "a part of {} bytes holds {} on the server",
                                part.len, h.offset
                            ))
                            .into())
                        }
                        Err(e) if says_gone(&e) => {
                            url = create_part(&pc, &mut part, &sent).await?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
    tally.set(part.idx, part.acked, 0);
    Ok(())
}

/// A chunk planned while the one before it was sent: its offset, length and checksum.
type Planned = Option<(u64, u64, tokio::task::JoinHandle<Result<String>>)>;

/// The part's next chunk: its length (the one planned while the last chunk was sent, or grown
/// from the rate) and its checksum. With checksums, the next chunk's is computed while this
/// one is on the wire (its size is decided now, from the rate so far): no pause between
/// PATCHes to read it.
async fn next_chunk(
    pc: &PartCtx<'_>,
    part: &PartRow,
    source: &Source,
    next: &mut Planned,
    rate: Option<f64>,
) -> Result<(u64, Option<String>)> {
    let PartCtx { s, tally, .. } = *pc;
    let offset = part.acked;
    let planned = next.take();
    let len = match &planned {
        Some((at, len, _)) if *at == offset => *len,
        _ => grown_chunk(
            tally.chunk(),
            s.chunk,
            s.chunk_limit,
            s.checksum.is_some(),
            rate,
        ),
    }
    .min(part.len - offset);
    let checksum = match (s.checksum, planned) {
        (Some(_), Some((at, l, digest))) if at == offset && l == len => Some(
            digest
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))??,
        ),
        (Some(alg), _) => Some(source.checksum(alg, part.start + offset, len).await?),
        (None, _) => None,
    };
    // With checksums, the next chunk's is computed while this one is on the wire (its
    // size is decided now, from the rate so far): no pause between PATCHes to read it.
    if let Some(alg) = s.checksum {
        let at = offset + len;
        if at < part.len {
            let n =
                grown_chunk(tally.chunk(), s.chunk, s.chunk_limit, true, rate).min(part.len - at);
            let src = source.clone();
            let from = part.start + at;
            *next = Some((
                at,
                n,
                tokio::spawn(async move { src.checksum(alg, from, n).await }),
            ));
        }
    }
    Ok((len, checksum))
}

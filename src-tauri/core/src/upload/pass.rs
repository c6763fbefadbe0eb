//! One pass of an upload: prepare (the file, the credentials, the server's capabilities, the
//! chunk), then resume or create, then send; or hand over to parts.

use super::*;

/// What one pass has worked out before its first request: the record as the pass sees it,
/// where it goes with which headers, and how its bodies are cut.
pub(super) struct Pass {
    pub(super) rec: UploadRecord,
    pub(super) endpoint: url::Url,
    pub(super) grant: Grant,
    pub(super) caps: ServerCaps,
    pub(super) cut: Cut,
    /// A server that takes exactly N bytes per PATCH (Supabase: 6 MiB).
    pub(super) exact: Option<u64>,
    pub(super) chunk: u64,
    /// The chunk before the checksum cap (parts let it grow on a fast link).
    pub(super) chunk_limit: u64,
    /// A moved stamp whose proof passed, not yet the journal's.
    pub(super) moved: Option<Moved>,
    /// The upload had a server upload before this pass: a new one is a re-creation.
    pub(super) had_url: bool,
    /// The upload goes as parts already.
    pub(super) has_parts: bool,
    /// The last answer's offset was journalled with the completion.
    pub(super) journalled_done: bool,
}

/// How a request's body is read: streamed before the tail, read into memory and checked
/// again inside it, with the checksum the server verifies, if any.
#[derive(Clone, Copy)]
pub(super) struct Cut {
    pub(super) tail_start: u64,
    pub(super) checksum: Option<ChecksumAlgorithm>,
}

/// Where the server upload stands: its URL, the bytes it holds, and whether its length is
/// still to be declared.
pub(super) struct ServerUpload {
    pub(super) url: String,
    pub(super) offset: u64,
    pub(super) length_pending: bool,
}

/// One pass: check the file, find or create the server upload, send until done or failure.
/// The steps are named as tus-js-client names them: resume (HEAD), create (POST), send
/// (PATCH).
pub(super) async fn attempt(
    ctx: &UploadCtx,
    id: UploadId,
    reporter: &Reporter,
    known: Option<UploadRecord>,
    run: &mut RunState<'_>,
) -> Result<(), Interruption> {
    let mut pass = prepare(ctx, id, known, run).await?;
    if pass.has_parts || parts::wanted(ctx, &pass.rec, &pass.caps, pass.exact.is_some()) {
        let Pass {
            rec,
            endpoint,
            grant,
            caps,
            cut,
            chunk,
            chunk_limit,
            moved,
            ..
        } = pass;
        let setup = parts::Setup {
            endpoint: &endpoint,
            grant: &grant,
            caps: &caps,
            checksum: cut.checksum,
            chunk,
            chunk_limit,
        };
        return parts::attempt(ctx, rec, reporter, run, moved, &setup).await;
    }
    // Exactly once: by default the request that completes a server upload is always a PATCH
    // to a URL the journal already holds. A POST that completes the upload by itself leaves a
    // finished duplicate behind whenever the process dies before its answer is journalled
    // (the torture test found this), so the POST carries no data unless the user opted into
    // creation-with-upload, and an empty file is created with a deferred length (when the
    // server offers it) that a PATCH then declares.
    let at = match resume(ctx, reporter, run, &mut pass).await? {
        Some(at) => at,
        None if pass.rec.given_url => return Err(given_url_gone().into()),
        None => create(ctx, reporter, run, &mut pass).await?,
    };
    let offset = send(ctx, reporter, run, &mut pass, at).await?;
    let (rec, epoch, sent) = (&pass.rec, reporter.epoch, run.sent);
    // Complete without a final PATCH (an empty file, or a POST with creation-with-upload
    // carried every byte): the worker journals completion either way, so the scheduler never
    // has to (and a stopped worker's epoch keeps it from doing so).
    if !pass.journalled_done {
        align(ctx, rec, sent, offset).await?;
        let (delta, hash) = {
            let log = source::lock(sent);
            (log.hasher().delta(), log.hasher().content_hash())
        };
        ctx.store
            .set_final_offset(id, epoch, offset, None, &delta, &hash)
            .await?;
        source::lock(sent).hasher_mut().journalled();
    }
    Ok(())
}

/// Reads the record, checks the file (a moved stamp is proven), takes the credentials and
/// the server's capabilities, and chooses the chunk.
pub(super) async fn prepare(
    ctx: &UploadCtx,
    id: UploadId,
    known: Option<UploadRecord>,
    run: &mut RunState<'_>,
) -> Result<Pass, Interruption> {
    let mut rec = match known {
        Some(r) => r,
        None => ctx.store.get(id)?,
    };
    // An upload that goes as parts has its proofs per part (checked by the parts' pass).
    // (Only files over one block are ever split: small ones skip the query.)
    let has_parts = rec.size > proof::BLOCK && ctx.store.has_parts(id)?;
    let moved = if has_parts {
        None
    } else {
        check_file(ctx, &rec, run.proven).await?
    };
    if run.forget_url {
        // Known gone: the journal keeps the old URL until a new one replaces it, so a failed
        // creation (say, expired credentials) loses nothing.
        rec.upload_url = None;
    }
    let had_url = rec.upload_url.is_some() || run.forget_url;
    let endpoint = client::parse_endpoint(&rec.endpoint)?;
    // Read once per pass: credentials and chunk rules come from the profile as it is now.
    let profile = profile_of(ctx, &rec)?;
    let grant = credentials_from(ctx, &rec, profile.as_ref(), run.refused).await?;
    *run.generation = grant.generation;
    // An upload URL a service handed over gets the profile's secrets under the same rule as
    // a Location: on another host only when the profile allows that host.
    if let (true, Some(url)) = (rec.given_url, &rec.upload_url) {
        check_location(&grant, &endpoint, url)?;
    }
    let caps = ctx
        .caps
        .get(&ctx.client, &ctx.store, &rec.endpoint, &grant)
        .await?;
    if let Some(max) = caps.max_size {
        if rec.size > max {
            return Err(Error::TooLarge {
                size: rec.size,
                max,
            }
            .into());
        }
    }
    let checksum = if ctx.settings.checksums && caps.has("checksum") {
        ChecksumAlgorithm::choose(&caps.checksum_algorithms)
    } else {
        None
    };
    // A server that takes exactly N bytes per PATCH (Supabase: 6 MiB) gets exactly that:
    // never capped, halved or cut at the tail; the last chunk is the tail read into memory.
    let exact = profile
        .as_ref()
        .filter(|p| p.exact_chunk)
        .and_then(|p| p.chunk_size)
        .map(|n| n.max(1));
    // The chunk before the checksum cap (parts let it grow on a fast link).
    let mut chunk_limit = u64::MAX;
    let chunk = match exact {
        Some(n) => n,
        None => {
            let mut chunk = rec
                .chunk_size
                .or(ctx.settings.chunk_size)
                .unwrap_or(u64::MAX)
                .max(1);
            if let Some(learned) = ctx.store.learned_chunk(&rec.endpoint)? {
                chunk = chunk.min(learned);
            }
            chunk_limit = chunk;
            if checksum.is_some() {
                chunk = chunk.min(ctx.settings.checksum_chunk_cap);
            }
            chunk
        }
    };
    let tail_start = match exact {
        Some(n) => rec.size.saturating_sub(1) / n * n,
        None => rec.size.saturating_sub(TAIL),
    };
    Ok(Pass {
        rec,
        endpoint,
        grant,
        caps,
        cut: Cut {
            tail_start,
            checksum,
        },
        exact,
        chunk,
        chunk_limit,
        moved,
        had_url,
        has_parts,
        journalled_done: false,
    })
}

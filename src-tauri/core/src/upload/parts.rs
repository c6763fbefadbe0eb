//! Parallel parts: a large file sent as K partial uploads, each on its own connection, then
//! joined by one final upload (the concatenation extension). Where one TCP flow cannot fill
//! the link (a per-flow cap, a long round trip), K flows can.
//!
//! The integrity rules of a whole upload hold per part. Parts start on 1 MiB boundaries, so
//! a part's block digests are the file's own (kept under the file's block numbers), and the
//! content hash of the file is the same whether it went in one stream or in K parts. The
//! journal holds each part's URL from its POST's answer on, and its proven offset; the final
//! upload is POSTed only when every part is complete on the server and the file's stamp has
//! not moved since the parts were read (a moved stamp is proven part by part first).
//!
//! Exactly once: the final's URL is journalled the moment its answer arrives. A death between
//! the final POST and that write cannot be resolved by asking the server (neither rustus nor
//! tusd can say which final holds which parts), so the journal counts final POSTs: the next
//! run POSTs again and the row says the server may hold a second copy. The window is the
//! length of one final POST.

use std::collections::VecDeque;
use std::sync::Mutex;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::*;
use crate::journal::PartRow;
use crate::tus::protocol::Concat;
use crate::tus::protocol::ServerCaps;

/// What an attempt has already worked out for the upload's requests.
pub(super) struct Setup<'a> {
    pub endpoint: &'a url::Url,
    /// The upload's headers and where they may go (every request passes the gate).
    pub grant: &'a Grant,
    pub caps: &'a ServerCaps,
    pub checksum: Option<ChecksumAlgorithm>,
    pub chunk: u64,
    /// What the chunk may grow to: with checksums, `chunk` is capped (a range is read twice
    /// and a failed request loses it whole), but a fast flow pays a round trip per chunk.
    pub chunk_limit: u64,
}

/// Whether a new server upload of this file goes as parts: the server offers concatenation,
/// the file is at least the threshold, and this run has more than one connection.
pub(super) fn wanted(ctx: &UploadCtx, rec: &UploadRecord, caps: &ServerCaps, exact: bool) -> bool {
    ctx.settings.parts > 1
        && ctx.connections > 1
        && !exact
        && !rec.given_url
        && rec.size >= ctx.settings.parts_min_size
        && rec.size > proof::BLOCK
        && caps.has("concatenation")
        && !ctx.caps.refuses_parts(&rec.endpoint)
}

/// Confirmed and in-flight bytes per part, summed for the scheduler.
struct Tally {
    reporter: Reporter,
    parts: Mutex<Vec<(u64, u64)>>,
    /// Parts a PATCH answer of this pass confirmed complete (no HEAD needed before the final).
    confirmed: Mutex<std::collections::HashSet<usize>>,
    /// The chunk size, shared so that a 413 one part got shrinks every part's next PATCH.
    chunk: std::sync::atomic::AtomicU64,
}

impl Tally {
    fn new(reporter: &Reporter, parts: &[PartRow], chunk: u64) -> Tally {
        Tally {
            reporter: reporter.clone(),
            parts: Mutex::new(parts.iter().map(|p| (p.acked, 0)).collect()),
            confirmed: Mutex::default(),
            chunk: chunk.into(),
        }
    }

    fn chunk(&self) -> u64 {
        self.chunk.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn shrink_chunk(&self, to: u64) {
        self.chunk
            .fetch_min(to, std::sync::atomic::Ordering::Relaxed);
    }

    fn set(&self, idx: usize, acked: u64, in_flight: u64) {
        let mut v = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = v.get_mut(idx) {
            *slot = (acked, in_flight);
        }
        let (a, f) = v.iter().fold((0, 0), |(a, f), (x, y)| (a + x, f + y));
        self.reporter.send(WorkerEvent::Progress {
            acked: a,
            in_flight: f,
        });
    }

    fn confirm(&self, idx: usize) {
        self.confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(idx);
    }

    fn confirmed(&self, idx: usize) -> bool {
        self.confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&idx)
    }

    fn acked(&self) -> u64 {
        let v = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        v.iter().map(|(a, _)| a).sum()
    }
}

/// One pass of an upload that goes as parts.
pub(super) async fn attempt(
    ctx: &UploadCtx,
    mut rec: UploadRecord,
    reporter: &Reporter,
    run: &mut RunState<'_>,
    moved: Option<Moved>,
    s: &Setup<'_>,
) -> Result<(), Interruption> {
    let id = rec.id;
    let epoch = reporter.epoch;
    let mut parts = ctx.store.parts(id)?;
    if parts.is_empty() {
        let k = ctx.settings.parts.min(ctx.connections).max(1);
        let ranges = protocol::split_parts(rec.size, k, proof::BLOCK);
        reporter.send(WorkerEvent::StartingOver);
        let stamp = moved.as_ref().map(|m| (&m.stamp, m.fingerprint.as_str()));
        ctx.store.plan_parts(id, epoch, &ranges, stamp)?;
        if let Some(m) = moved {
            adopt(&mut rec, &m.stamp, m.fingerprint);
            *run.proven = None;
        }
        parts = ctx.store.parts(id)?;
        *run.acked = 0;
        rec.upload_url = None;
        tracing::info!(
            id,
            parts = parts.len(),
            "sending the file as parallel parts"
        );
    } else {
        prove_parts(ctx, &mut rec, epoch, &mut parts, s).await?;
    }

    // The final may exist already (its answer was journalled, the completion was not).
    if let Some(url) = rec.upload_url.clone() {
        match ctx.client.head(&url, s.grant).await {
            Ok(h) => {
                return finish(ctx, &rec, reporter, run, s, &url, h).await;
            }
            Err(e) if says_gone(&e) => {
                tracing::warn!(id, "the final upload is gone; joining the parts again");
                ctx.store.set_final_url(id, epoch, None, None)?;
                rec.upload_url = None;
            }
            Err(e) => return Err(e.into()),
        }
    }

    let final_posts = ctx.store.final_posts(id)?;
    let tally = Tally::new(reporter, &parts, s.chunk);
    let result = {
        let mut queue: VecDeque<PartRow> = parts
            .iter()
            .filter(|p| p.url.is_none() || p.acked < p.len)
            .cloned()
            .collect();
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < ctx.connections.max(1) {
                let Some(p) = queue.pop_front() else { break };
                running.push(run_part(ctx, &rec, epoch, s, p, &tally, final_posts));
            }
            match running.next().await {
                None => break Ok(()),
                Some(Ok(())) => {}
                // The other parts stop with it (dropped); the journal holds what each confirmed.
                Some(Err(e)) => break Err(e),
            }
        }
    };
    *run.acked = tally.acked();
    match result {
        Err(Interruption::NoParts(why)) => return fall_back(ctx, &rec, s, &why).await,
        r => r?,
    }

    // Every part is complete. The final gets them only if the file has not moved since they
    // were read (a moved stamp ends this pass, and the next one proves each part).
    ensure_file(ctx, &rec).await?;
    let parts = ctx.store.parts(id)?;
    // Parts a PATCH answer just confirmed complete need no HEAD (one round trip fewer); the
    // others (complete before this pass) are asked, all at once.
    let unconfirmed: Vec<&PartRow> = parts.iter().filter(|p| !tally.confirmed(p.idx)).collect();
    check_parts(ctx, &rec, epoch, s, &unconfirmed, final_posts).await?;
    let Some(urls) = parts
        .iter()
        .map(|p| p.url.clone())
        .collect::<Option<Vec<_>>>()
    else {
        return Err(Interruption::Recheck);
    };

    let before = ctx.store.count_final_post(id, epoch)?;
    if before > 0 {
        tracing::warn!(
            id,
            "an earlier final POST's answer was lost; the server may hold a second copy"
        );
        reporter.send(WorkerEvent::Note(
            "an earlier attempt to join the parts got no answer: the server may hold a second copy of this file".into(),
        ));
    }
    crate::failpoint::hit(crate::failpoint::Point::FinalPosting);
    let metadata = upload_metadata(&rec)?;
    let created = match ctx
        .client
        .create_final(
            s.endpoint,
            s.grant,
            &urls,
            &metadata,
            ctx.settings.final_answer_timeout,
        )
        .await
    {
        Ok(c) => c,
        Err(e) if e.status() == Some(501) => {
            return fall_back(ctx, &rec, s, "the server refused to join the parts (501)").await
        }
        // A part is not complete or not partial after all: the HEADs say which.
        Err(e) if e.status() == Some(400) => {
            let all: Vec<&PartRow> = parts.iter().collect();
            check_parts(ctx, &rec, epoch, s, &all, final_posts).await?;
            return Err(Error::Protocol(format!(
                "the server refused to join the parts, which it says are complete: {e}"
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    crate::failpoint::hit(crate::failpoint::Point::FinalAnswered);
    check_location(s.grant, s.endpoint, &created.url)?;
    let exp = created.expires.and_then(unix_secs);
    ctx.store
        .set_final_url(id, epoch, Some(&created.url), exp)?;
    tracing::debug!(id, url = %crate::redact::strip_userinfo(&created.url), "final upload URL");
    reporter.send(WorkerEvent::Url {
        url: created.url.clone(),
        recreated: false,
    });
    // rustus answers the whole length as the offset: that is the check a HEAD would make.
    let head = if created.offset == rec.size {
        client::HeadInfo {
            offset: created.offset,
            length: Some(rec.size),
            length_deferred: false,
            expires: created.expires,
            concat: None,
        }
    } else {
        ctx.client.head(&created.url, s.grant).await?
    };
    finish(ctx, &rec, reporter, run, s, &created.url, head).await
}

/// Asks the server (HEAD, all at once) whether these parts are complete partial uploads.
/// A part not kept as partial means the server cannot join parts: one stream instead. A
/// part gone or short is sent again by the next pass.
async fn check_parts(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    epoch: i64,
    s: &Setup<'_>,
    parts: &[&PartRow],
    final_posts: u32,
) -> Result<(), Interruption> {
    let heads = futures_util::future::join_all(parts.iter().map(|p| async move {
        match &p.url {
            Some(url) => Some(ctx.client.head(url, s.grant).await),
            None => None,
        }
    }))
    .await;
    for (p, head) in parts.iter().zip(heads) {
        let Some(head) = head else {
            return Err(Interruption::Recheck);
        };
        match head {
            Ok(h) if h.offset == p.len && h.length.is_none_or(|l| l == p.len) => {
                if h.concat != Some(Concat::Partial) {
                    let why = format!(
                        "the server did not keep part {} as a partial upload (HEAD has no Upload-Concat: partial)",
                        p.idx + 1
                    );
                    fall_back(ctx, rec, s, &why).await?;
                }
            }
            Ok(h) => {
                tracing::warn!(
                    id = rec.id,
                    part = p.idx,
                    server = h.offset,
                    len = p.len,
                    "a complete part is no longer complete on the server"
                );
                return Err(Interruption::Recheck);
            }
            Err(e) if says_gone(&e) && final_posts > 0 => return Err(parts_taken().into()),
            Err(e) if says_gone(&e) => {
                ctx.store.set_part_url(rec.id, epoch, p, None)?;
                return Err(Interruption::Recheck);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The final holds the file: check it, journal the completion with the content hash the
/// parts' proofs give, then let the parts go.
async fn finish(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    reporter: &Reporter,
    run: &mut RunState<'_>,
    s: &Setup<'_>,
    url: &str,
    head: client::HeadInfo,
) -> Result<(), Interruption> {
    let id = rec.id;
    // rustus takes a part's id from the last segment of its URL: one it could not read
    // would be left out silently, giving a short final.
    if head.offset != rec.size || head.length.is_some_and(|l| l != rec.size) {
        return Err(Error::Protocol(format!(
            "the server's final upload holds {} of {:?} bytes, not the file's {}: a part was left out",
            head.offset, head.length, rec.size
        ))
        .into());
    }
    let proof = ctx.store.parts_proof(id, rec.size)?;
    if !proof.is_complete() {
        return Err(Error::Protocol(
            "internal: the journal does not prove every part of the file".into(),
        )
        .into());
    }
    let hash = proof::content_hash(&proof);
    ctx.store
        .complete_parts(id, reporter.epoch, &hash, head.expires.and_then(unix_secs))?;
    *run.acked = rec.size;
    reporter.send(WorkerEvent::Progress {
        acked: rec.size,
        in_flight: 0,
    });
    tracing::info!(id, "the parts are joined in the final upload");
    let _ = url;
    terminate_parts(ctx, rec, s).await;
    Ok(())
}

/// Parts are not needed once the final holds their bytes (servers keep them unless told
/// otherwise): DELETE each; one that fails is left to expire on the server.
async fn terminate_parts(ctx: &UploadCtx, rec: &UploadRecord, s: &Setup<'_>) {
    let Ok(parts) = ctx.store.parts(rec.id) else {
        return;
    };
    if s.caps.may_have("termination") {
        futures_util::future::join_all(parts.iter().filter_map(|p| {
            let url = p.url.as_ref()?;
            Some(async move {
                match ctx.client.delete(url, s.grant).await {
                    Ok(()) => {}
                    Err(e) if says_gone(&e) => {}
                    Err(e) => {
                        tracing::warn!(id = rec.id, part = p.idx, error = %e, "terminating a part failed; it is left to expire");
                    }
                }
            })
        }))
        .await;
    } else {
        tracing::info!(
            id = rec.id,
            "the server has no termination; the parts are left to expire"
        );
    }
    if let Err(e) = ctx.store.drop_parts(rec.id) {
        tracing::warn!(id = rec.id, error = %e, "journal write failed");
    }
}

/// The server cannot join parts after all: the parts are terminated and forgotten, the
/// endpoint is not asked for parts again in this run, and the next pass sends one stream.
async fn fall_back(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    s: &Setup<'_>,
    why: &str,
) -> Result<(), Interruption> {
    tracing::warn!(id = rec.id, reason = %why, "parallel parts are not possible here; sending one stream");
    ctx.caps.refuse_parts(&rec.endpoint);
    let urls = ctx.store.take_server_uploads(rec.id)?;
    if s.caps.may_have("termination") {
        for url in urls {
            let _ = ctx.client.delete(&url, s.grant).await;
        }
    }
    Err(Interruption::Recheck)
}

/// Parts that vanished after a final POST whose answer was lost: a server that removes parts
/// once it joined them did join them.
fn parts_taken() -> Error {
    Error::Protocol(
        "the server removed the parts after an attempt to join them whose answer was lost: the file is probably on the server already; Restart sends it again".into(),
    )
}

fn adopt(rec: &mut UploadRecord, stamp: &FileStamp, fingerprint: String) {
    rec.mtime_ns = stamp.mtime_ns;
    rec.ino = stamp.ino;
    rec.ctime_ns = stamp.ctime_ns;
    rec.fingerprint = fingerprint;
}

/// A moved stamp, part by part: a part whose sent bytes are no longer the file's starts
/// again, and so does one whose server upload holds bytes past what the journal proves
/// (they were read under the old stamp). With the final already made, any difference is a
/// changed file. Then the new stamp becomes the journal's.
async fn prove_parts(
    ctx: &UploadCtx,
    rec: &mut UploadRecord,
    epoch: i64,
    parts: &mut [PartRow],
    s: &Setup<'_>,
) -> Result<(), Interruption> {
    let path = std::path::PathBuf::from(&rec.path);
    let st = source::stamp(&rec.path).await?;
    if !st.moved_from(&rec.stamp()) {
        return Ok(());
    }
    no_link_on_the_way(rec, &st).await?;
    if st.size != rec.size {
        return Err(Error::FileChanged(format!(
            "{}: size is now {} bytes, was {}",
            rec.path, st.size, rec.size
        ))
        .into());
    }
    let mut journals = Vec::with_capacity(parts.len());
    for p in parts.iter() {
        journals.push((p.start, ctx.store.part_proof(rec.id, p)?));
    }
    let (fp, stamp, results, after) = source::blocking(move || {
        let (fp, stamp) = fingerprint::fingerprint(&path)?;
        let mut results = Vec::with_capacity(journals.len());
        for (start, j) in &journals {
            results.push(proof::rebuild_at(&path, *start, j, j.len, false)?.is_ok());
        }
        Ok((fp, stamp, results, fingerprint::stamp(&path)?))
    })
    .await?;
    if after != stamp {
        return Err(Error::FileChanged(format!(
            "{} changed while it was being verified",
            rec.path
        ))
        .into());
    }
    let joined = rec.upload_url.is_some();
    for (p, proven) in parts.iter_mut().zip(results) {
        let mut keep = proven;
        if !proven && joined {
            return Err(Error::FileChanged(format!(
                "{}: the bytes of part {} differ from those the server holds",
                rec.path,
                p.idx + 1
            ))
            .into());
        }
        if let (true, Some(url)) = (proven, p.url.clone()) {
            if !joined {
                match ctx.client.head(&url, s.grant).await {
                    Ok(h) if h.offset > p.acked => keep = false,
                    Ok(_) => {}
                    Err(e) if says_gone(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if !keep {
            tracing::info!(
                id = rec.id,
                part = p.idx,
                "this part's bytes on the server are not proven to be the file's; sending it again"
            );
            if let Some(url) = &p.url {
                abandon(ctx, s.caps, rec.id, url, s.grant).await;
            }
            ctx.store.set_part_url(rec.id, epoch, p, None)?;
            p.url = None;
            p.acked = 0;
        }
    }
    let proven: u64 = parts.iter().map(|p| p.acked).sum();
    let proven = if joined { rec.acked_offset } else { proven };
    ctx.store.adopt_stamp(rec.id, epoch, proven, &stamp, &fp)?;
    tracing::info!(
        id = rec.id,
        "file stamp moved; the parts the server holds are proven to be the file's"
    );
    adopt(rec, &stamp, fp);
    Ok(())
}

/// Brings a part's record of sent bytes to exactly `[0, target)` of the part (see [`align`]).
async fn align_part(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    part: &PartRow,
    sent: &Sent,
    target: u64,
) -> Result<()> {
    if source::lock(sent).hasher().len() == target {
        return Ok(());
    }
    let journal = ctx.store.part_proof(rec.id, part)?;
    let path = std::path::PathBuf::from(&rec.path);
    let start = part.start;
    let rebuilt =
        source::blocking(move || proof::rebuild_at(&path, start, &journal, target, true)).await?;
    unchanged(&rec.path, &rec.stamp()).await?;
    match rebuilt {
        Ok(h) => {
            source::lock(sent).reset(h);
            Ok(())
        }
        Err(m) => Err(Error::FileChanged(format!(
            "{}: the bytes at offset {} differ from those the server holds",
            rec.path,
            start + m.at
        ))),
    }
}

/// The server holds `offset` bytes of a part: journal it with the proof of those bytes.
#[allow(clippy::too_many_arguments)]
async fn take_part_offset(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    epoch: i64,
    part: &mut PartRow,
    sent: &Sent,
    offset: u64,
    tally: &Tally,
) -> Result<()> {
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
    align_part(ctx, rec, part, sent, offset).await?;
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
async fn create_part(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    epoch: i64,
    s: &Setup<'_>,
    part: &mut PartRow,
    sent: &Sent,
    tally: &Tally,
) -> Result<String, Interruption> {
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

/// Runs one part to completion on its own connection: resume it where the server has it
/// (or create it), then PATCH its range.
async fn run_part(
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
    let id = rec.id;
    let sent = SentLog::from(part.start, PrefixHasher::new());
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
                take_part_offset(ctx, rec, epoch, &mut part, &sent, h.offset, tally).await?;
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
    let mut url = match url {
        Some(u) => u,
        None => create_part(ctx, rec, epoch, s, &mut part, &sent, tally).await?,
    };
    let (mut conflicts, mut bad_answers, mut mismatches, mut moves, mut gone) = (0, 0, 0, 0, 0);
    // Bytes per second of the last PATCH.
    let mut rate: Option<f64> = None;
    // The next chunk's checksum, read while this chunk is sent: `(offset, len, digest)`.
    let mut next: Option<(u64, u64, tokio::task::JoinHandle<Result<String>>)> = None;
    let source = Source::new(&rec.path).expecting(rec.ino);
    while part.acked < part.len {
        ensure_file(ctx, rec).await?;
        align_part(ctx, rec, &part, &sent, part.acked).await?;
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
                let n = grown_chunk(tally.chunk(), s.chunk, s.chunk_limit, true, rate)
                    .min(part.len - at);
                let src = source.clone();
                let from = part.start + at;
                next = Some((
                    at,
                    n,
                    tokio::spawn(async move { src.checksum(alg, from, n).await }),
                ));
            }
        }
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
                take_part_offset(ctx, rec, epoch, &mut part, &sent, p.offset, tally).await?;
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
                        url = create_part(ctx, rec, epoch, s, &mut part, &sent, tally).await?;
                        false
                    }
                    _ => return Err(e.into()),
                };
                if ask {
                    match ctx.client.head(&url, s.grant).await {
                        Ok(h) if h.offset <= part.len => {
                            take_part_offset(ctx, rec, epoch, &mut part, &sent, h.offset, tally)
                                .await?;
                        }
                        Ok(h) => {
                            return Err(Error::BadOffset(format!(
                                "a part of {} bytes holds {} on the server",
                                part.len, h.offset
                            ))
                            .into())
                        }
                        Err(e) if says_gone(&e) => {
                            url = create_part(ctx, rec, epoch, s, &mut part, &sent, tally).await?;
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

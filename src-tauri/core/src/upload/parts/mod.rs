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

mod join;
mod part;
mod proofs;

use join::join;
use part::run_part;
use proofs::{check_parts, prove_parts};

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
    join(ctx, &rec, reporter, run, s, &parts, final_posts).await
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

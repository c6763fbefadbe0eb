//! The upload state machine: everything one upload does, from checking the file to the last
//! confirmed byte. It owns the protocol decisions (create or resume, what each status means,
//! when to retry); the HTTP layer, the journal and the file reader are injected.
//!
//! Cancellation is by dropping the future (the scheduler aborts the task). Every journal write
//! is synchronous and follows the server's answer with no `.await` in between, so an abort can
//! never separate a confirmed offset from its journal entry.

use reqwest::header::HeaderMap;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, OnceCell};

use crate::client::{self, SizedBody, TusClient};
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::model::{ServerCaps, UploadId, UploadRecord, UploadState};
use crate::protocol::{self, ChecksumAlgorithm};
use crate::ratelimit::RateLimiter;
use crate::retry::RetryPolicy;
use crate::source::{Source, Transfer};
use crate::store::Store;

/// The final bytes of a file are read into memory, checked against the file's stamp, and only
/// then sent: a file modified during the upload can never be completed as a mix of old and
/// new content. Files up to this size go in one request from memory.
pub const TAIL: u64 = 1024 * 1024;

/// Smallest chunk that 413 answers can halve down to.
pub const MIN_CHUNK: u64 = 64 * 1024;

/// Tunables of the upload loop.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UploadSettings {
    /// Bytes per PATCH; `None` = the whole remainder in one request.
    pub chunk_size: Option<u64>,
    /// Abort a request when no body bytes moved and no answer came for this long.
    pub stall_timeout: Duration,
    pub retry: RetryPolicy,
    /// Send the first bytes inside the POST when the server offers creation-with-upload.
    /// It saves one request per small file, but a crash between the server storing a whole
    /// small file and the journal recording its URL leaves a finished duplicate on the
    /// server, so it is off by default (exactly once).
    pub creation_with_upload: bool,
    /// Most bytes sent inside a POST (its URL is unknown until the POST answers, so a crash
    /// during it loses these bytes and leaves an unreachable server upload).
    pub post_body_cap: u64,
    /// Most bytes per PATCH when checksums are sent (the range is read twice).
    pub checksum_chunk_cap: u64,
    /// Use the checksum extension when the server offers it.
    pub checksums: bool,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            chunk_size: None,
            stall_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            creation_with_upload: false,
            post_body_cap: 4 * 1024 * 1024,
            checksum_chunk_cap: 16 * 1024 * 1024,
            checksums: true,
        }
    }
}

/// What a running upload tells the scheduler.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    /// Confirmed and in-flight bytes.
    Progress { acked: u64, in_flight: u64 },
    /// A new server upload is being created from byte 0: any URL and progress shown before
    /// (an upload that vanished, expired or was cancelled) no longer mean anything.
    StartingOver,
    /// A server upload URL was created (or re-created).
    Url { url: String, recreated: bool },
    /// Waiting before the next attempt.
    Waiting { until_ms: i64, reason: String },
    /// Working again after a wait.
    Uploading,
    /// The file was found under a new stamp (touched but same content).
    Restamped { mtime_ns: i64 },
    /// The run ended. Sent on the same channel as the events before it, so it never
    /// overtakes them.
    Finished(Outcome),
}

/// How a run of the state machine ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    Failed(String),
    FileMissing(String),
    FileChanged(String),
}

impl Outcome {
    /// The state and error text to record.
    pub fn state(&self) -> (UploadState, Option<&str>) {
        match self {
            Outcome::Completed => (UploadState::Completed, None),
            Outcome::Failed(e) => (UploadState::Failed, Some(e)),
            Outcome::FileMissing(e) => (UploadState::FileMissing, Some(e)),
            Outcome::FileChanged(e) => (UploadState::FileChanged, Some(e)),
        }
    }
}

/// OPTIONS answers, fetched once per endpoint per engine run.
#[derive(Debug, Default, Clone)]
pub struct CapsCache {
    cells: Arc<Mutex<HashMap<String, Arc<OnceCell<ServerCaps>>>>>,
}

impl CapsCache {
    /// The server's capabilities, asking it at most once (concurrent callers share one request).
    pub async fn get(
        &self,
        client: &TusClient,
        store: &Store,
        endpoint: &str,
        headers: &HeaderMap,
    ) -> Result<ServerCaps> {
        let cell = {
            let mut map = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(endpoint.to_string()).or_default().clone()
        };
        let caps = cell
            .get_or_try_init(|| async {
                let caps = client.options(endpoint, headers).await?;
                tracing::info!(endpoint = %crate::redact::strip_userinfo(endpoint), versions = ?caps.versions, extensions = ?caps.extensions, max_size = ?caps.max_size, "discovered server");
                store.save_caps(endpoint, &caps)?;
                Ok::<_, Error>(caps)
            })
            .await?;
        Ok(caps.clone())
    }

    /// Forgets an endpoint's answer (after the server changed under us).
    pub fn invalidate(&self, endpoint: &str) {
        self.cells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(endpoint);
    }
}

/// Everything an upload needs from its surroundings.
#[derive(Clone)]
pub struct UploadCtx {
    pub store: Store,
    pub client: TusClient,
    pub caps: CapsCache,
    pub limiter: Arc<RateLimiter>,
    pub settings: Arc<UploadSettings>,
}

/// Sends events for one upload to the scheduler, tagged with the run they belong to.
#[derive(Clone, Debug)]
pub struct Reporter {
    pub id: UploadId,
    /// The journal epoch of this run; also lets the scheduler drop a stopped run's events.
    pub epoch: i64,
    pub tx: mpsc::UnboundedSender<(UploadId, i64, WorkerEvent)>,
}

impl Reporter {
    fn send(&self, e: WorkerEvent) {
        let _ = self.tx.send((self.id, self.epoch, e));
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn unix_secs(t: SystemTime) -> Option<i64> {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

/// Why one pass of [`attempt`] stopped short of completion.
enum Interruption {
    /// The server lost the upload: start a new one right away.
    Gone,
    Err(Error),
}

impl From<Error> for Interruption {
    fn from(e: Error) -> Self {
        Interruption::Err(e)
    }
}

/// Runs one upload to an outcome, retrying transient failures.
/// `rec` is the record as the scheduler read it when it started this run.
pub async fn run(ctx: UploadCtx, id: UploadId, reporter: Reporter, rec: UploadRecord) -> Outcome {
    // Failures in a row (they grow the backoff), and those of them that count against the
    // attempt budget (with network patience, waiting for the network does not).
    let mut failures = 0u32;
    let mut spent = 0u32;
    let mut recreations = 0u32;
    let mut last_progress = std::time::Instant::now();
    // The server upload this run works on; `None` = create one on the next pass.
    let mut forget_url = false;
    // The journal's acknowledged offset as this run wrote it (only this run writes it).
    let mut acked = rec.acked_offset;
    let mut known = Some(rec);
    loop {
        let before = acked;
        let result = attempt(&ctx, id, &reporter, forget_url, known.take(), &mut acked).await;
        forget_url = false;
        let after = acked;
        if after > before {
            // Progress was made: the retry budgets start over.
            failures = 0;
            spent = 0;
            recreations = 0;
            last_progress = std::time::Instant::now();
        }
        let err = match result {
            Ok(()) => return Outcome::Completed,
            Err(Interruption::Gone) => {
                recreations += 1;
                if recreations > 3 {
                    return Outcome::Failed(
                        "the server keeps losing this upload (gone 4 times without progress)"
                            .into(),
                    );
                }
                forget_url = true;
                continue;
            }
            Err(Interruption::Err(e)) => e,
        };
        match err {
            Error::FileMissing(m) => return Outcome::FileMissing(m),
            Error::FileChanged(m) => return Outcome::FileChanged(m),
            Error::Interrupted => return Outcome::Failed("interrupted".into()),
            e if e.is_retryable() => {
                failures += 1;
                let patient = e.is_outage()
                    && ctx
                        .settings
                        .retry
                        .network_patience
                        .is_some_and(|p| last_progress.elapsed() < p);
                if !patient {
                    spent += 1;
                }
                if spent > ctx.settings.retry.max_attempts {
                    return Outcome::Failed(format!("{e} (gave up after {failures} attempts)"));
                }
                let delay = ctx.settings.retry.delay(failures, e.retry_after());
                tracing::warn!(id, attempt = failures, delay_ms = delay.as_millis() as u64, error = %e, "retrying");
                reporter.send(WorkerEvent::Waiting {
                    until_ms: now_ms() + delay.as_millis() as i64,
                    reason: e.to_string(),
                });
                tokio::time::sleep(delay).await;
                reporter.send(WorkerEvent::Uploading);
            }
            e => {
                tracing::error!(id, error = %e, "upload failed");
                return Outcome::Failed(e.to_string());
            }
        }
    }
}

/// Compares the file with the journal's stamp before (re)starting; true when the journal
/// took a new stamp (the record must be read again).
///
/// A moved stamp with the same size is re-fingerprinted only while the server holds nothing
/// of this content yet. Once bytes were sent, a modification anywhere (even in the middle,
/// which the head+tail fingerprint cannot see) could produce a mix, so it is `file changed`.
fn check_file(ctx: &UploadCtx, rec: &UploadRecord, reporter: &Reporter) -> Result<bool> {
    let path = Path::new(&rec.path);
    let st = fingerprint::stamp(path)?;
    if st.size == rec.size && st.mtime_ns == rec.mtime_ns {
        return Ok(false);
    }
    if st.size != rec.size {
        return Err(Error::FileChanged(format!(
            "{}: size is now {} bytes, was {}",
            rec.path, st.size, rec.size
        )));
    }
    let (fp, st) = fingerprint::fingerprint(path)?;
    if fp != rec.fingerprint {
        return Err(Error::FileChanged(format!("{}: content differs", rec.path)));
    }
    if rec.upload_url.is_some() {
        return Err(Error::FileChanged(format!(
            "{}: modified since the upload started",
            rec.path
        )));
    }
    // Touched before any byte left: keep going under the new stamp.
    ctx.store
        .set_path(rec.id, &rec.path, &rec.name, st.mtime_ns)?;
    reporter.send(WorkerEvent::Restamped {
        mtime_ns: st.mtime_ns,
    });
    Ok(true)
}

/// Verifies the stamp has not moved since the upload started (cheap stat, no hashing).
fn check_unchanged(rec: &UploadRecord) -> Result<()> {
    let st = fingerprint::stamp(Path::new(&rec.path))?;
    if st.size != rec.size || st.mtime_ns != rec.mtime_ns {
        return Err(Error::FileChanged(format!(
            "{} was modified during the upload",
            rec.path
        )));
    }
    Ok(())
}

/// HEAD answers that mean "this upload does not exist (any more)".
fn head_says_gone(e: &Error) -> bool {
    matches!(e.status(), Some(404 | 410 | 403))
}

/// PATCH answers that mean the upload is gone. 403 is not among them: on PATCH it usually
/// means credentials expired, and the upload may well still be there.
fn patch_says_gone(e: &Error) -> bool {
    matches!(e.status(), Some(404 | 410))
}

/// Plans the next request's body. Before the tail: a range streamed from disk, ending at the
/// tail at the latest. Inside the tail: the range is read into memory (at most [`TAIL`]
/// bytes) and the file's stamp is checked again after the read, so the request that
/// completes the upload only carries bytes of the same content as everything before it.
async fn next_body(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    source: &Source,
    offset: u64,
    max_len: u64,
    checksum: Option<ChecksumAlgorithm>,
    transfer: &Arc<Transfer>,
) -> Result<SizedBody> {
    let remaining = rec.size - offset;
    let tail_start = rec.size.saturating_sub(TAIL);
    if offset >= tail_start {
        let len = max_len.min(remaining);
        let bytes = source.read(offset, len).await?;
        check_unchanged(rec)?;
        let checksum = checksum.map(|alg| protocol::format_checksum(alg, &digest(alg, &bytes)));
        transfer.touch();
        return Ok(SizedBody {
            body: crate::source::memory_body(bytes, ctx.limiter.clone(), transfer.clone()),
            len,
            checksum,
        });
    }
    let len = max_len.min(tail_start - offset);
    let checksum = match checksum {
        Some(alg) => Some(source.checksum(alg, offset, len).await?),
        None => None,
    };
    let body = source
        .body(offset, len, ctx.limiter.clone(), transfer.clone())
        .await?;
    Ok(SizedBody {
        body,
        len,
        checksum,
    })
}

fn digest(alg: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    match alg {
        ChecksumAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
        ChecksumAlgorithm::Sha1 => sha1_smol::Sha1::from(data).digest().bytes().to_vec(),
    }
}

/// Drives a request future while reporting in-flight progress and watching for stalls.
async fn supervise<T>(
    fut: impl std::future::Future<Output = Result<T>>,
    transfer: &Arc<Transfer>,
    acked: u64,
    stall: Duration,
    reporter: &Reporter,
) -> Result<T> {
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = &mut fut => return r,
            _ = tick.tick() => {
                if transfer.idle() > stall {
                    return Err(Error::Stalled(stall));
                }
                reporter.send(WorkerEvent::Progress { acked, in_flight: transfer.sent() });
            }
        }
    }
}

/// Maps a failed request to the file's fault when the body stream broke because of the file.
fn blame_file(e: Error, transfer: &Transfer, rec: &UploadRecord) -> Error {
    if let Some(msg) = transfer.failure() {
        if !Path::new(&rec.path).exists() {
            return Error::FileMissing(rec.path.clone());
        }
        return Error::FileChanged(msg);
    }
    e
}

fn upload_metadata(rec: &UploadRecord) -> Result<String> {
    let mut meta: BTreeMap<String, String> = BTreeMap::new();
    meta.insert("filename".into(), rec.name.clone());
    let mime = mime_guess::from_path(&rec.name).first_or_octet_stream();
    meta.insert("filetype".into(), mime.essence_str().to_string());
    // User metadata wins over the defaults.
    for (k, v) in &rec.metadata {
        meta.insert(k.clone(), v.clone());
    }
    protocol::encode_metadata(&meta)
}

/// What a HEAD says about an upload that still matches the file.
struct ServerState {
    offset: u64,
    expires: Option<i64>,
    /// The length is still deferred (a PATCH must declare it). Only a server that says so
    /// explicitly; one that merely omits Upload-Length must not get it declared twice.
    length_deferred: bool,
}

/// Asks the server for its offset. `Ok(None)` = the upload is gone or does not match the
/// file (create a new one); errors are transient or final as classified.
async fn server_offset(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    url: &str,
    headers: &HeaderMap,
) -> Result<Option<ServerState>> {
    match ctx.client.head(url, headers).await {
        Ok(info) => {
            if info.length.is_some_and(|l| l != rec.size) || info.offset > rec.size {
                tracing::warn!(id = rec.id, server_length = ?info.length, server_offset = info.offset, "server upload does not match the file");
                Ok(None)
            } else {
                Ok(Some(ServerState {
                    offset: info.offset,
                    expires: info.expires.and_then(unix_secs),
                    length_deferred: info.length_deferred,
                }))
            }
        }
        Err(e) if head_says_gone(&e) => {
            tracing::info!(id = rec.id, status = ?e.status(), "server upload is gone");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Refuses an upload URL on another origin than the endpoint when secret headers
/// (Authorization and the like) are configured: following it would hand them to a host the
/// user never named.
fn check_location_origin(
    endpoint: &url::Url,
    location: &str,
    headers: &BTreeMap<String, String>,
) -> Result<()> {
    let Ok(loc) = url::Url::parse(location) else {
        return Err(Error::Protocol(format!(
            "Location {location:?} is not a URL"
        )));
    };
    let same = loc.scheme() == endpoint.scheme()
        && loc.host_str() == endpoint.host_str()
        && loc.port_or_known_default() == endpoint.port_or_known_default();
    if !same && headers.keys().any(|k| crate::redact::is_sensitive(k)) {
        return Err(Error::Protocol(format!(
            "the server put the upload on another host ({}); not sending credentials there",
            loc.host_str().unwrap_or("?")
        )));
    }
    Ok(())
}

/// One pass: check the file, find or create the server upload, send until done or failure.
async fn attempt(
    ctx: &UploadCtx,
    id: UploadId,
    reporter: &Reporter,
    forget_url: bool,
    known: Option<UploadRecord>,
    acked: &mut u64,
) -> Result<(), Interruption> {
    let epoch = reporter.epoch;
    let mut rec = match known {
        Some(r) => r,
        None => ctx.store.get(id)?,
    };
    if check_file(ctx, &rec, reporter)? {
        rec = ctx.store.get(id)?;
    }
    if forget_url {
        // Known gone: the journal keeps the old URL until a new one replaces it, so a failed
        // creation (say, expired credentials) loses nothing.
        rec.upload_url = None;
    }
    let had_url = rec.upload_url.is_some() || forget_url;
    let endpoint = client::parse_endpoint(&rec.endpoint)?;
    let headers = client::header_map(&rec.headers)?;
    let caps = ctx
        .caps
        .get(&ctx.client, &ctx.store, &rec.endpoint, &headers)
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
    let source = Source::new(&rec.path);
    let mut chunk = rec
        .chunk_size
        .or(ctx.settings.chunk_size)
        .unwrap_or(u64::MAX)
        .max(1);
    if checksum.is_some() {
        chunk = chunk.min(ctx.settings.checksum_chunk_cap);
    }

    // Resume what the server has, if it still has it.
    let mut resumed = None;
    if let Some(url) = rec.upload_url.clone() {
        let expired = rec
            .expires_at
            .is_some_and(|t| t <= unix_secs(SystemTime::now()).unwrap_or(0));
        if expired {
            tracing::info!(id, "server upload expired; creating a new one");
        } else if let Some(st) = server_offset(ctx, &rec, &url, &headers).await? {
            ctx.store.set_offset(id, epoch, st.offset, st.expires)?;
            *acked = st.offset;
            reporter.send(WorkerEvent::Progress {
                acked: st.offset,
                in_flight: 0,
            });
            resumed = Some((url, st.offset, st.length_deferred));
        }
    }

    // Exactly once: by default the request that completes a server upload is always a PATCH
    // to a URL the journal already holds. A POST that completes the upload by itself leaves a
    // finished duplicate behind whenever the process dies before its answer is journalled
    // (the torture test found this), so the POST carries no data unless the user opted into
    // creation-with-upload, and an empty file is created with a deferred length (when the
    // server offers it) that a PATCH then declares.
    let (url, mut offset, mut length_pending) = match resumed {
        Some(r) => r,
        None => {
            reporter.send(WorkerEvent::StartingOver);
            let metadata = upload_metadata(&rec)?;
            let defer = rec.size == 0 && caps.has("creation-defer-length");
            let mut use_cwu = ctx.settings.creation_with_upload
                && caps.has("creation-with-upload")
                && rec.size > 0;
            let created = loop {
                let transfer = Transfer::new();
                let first = if use_cwu {
                    let max = chunk.min(ctx.settings.post_body_cap);
                    Some(next_body(ctx, &rec, &source, 0, max, checksum, &transfer).await?)
                } else {
                    None
                };
                let r = supervise(
                    ctx.client.create(
                        &endpoint,
                        &headers,
                        (!defer).then_some(rec.size),
                        &metadata,
                        first,
                    ),
                    &transfer,
                    0,
                    ctx.settings.stall_timeout,
                    reporter,
                )
                .await
                .map_err(|e| blame_file(e, &transfer, &rec));
                match r {
                    // A proxy in front of the server may cap request bodies: create empty.
                    Err(e) if use_cwu && e.status() == Some(413) => {
                        tracing::info!(id, "413 on POST with data; creating without data");
                        use_cwu = false;
                    }
                    r => break r?,
                }
            };
            crate::failpoint::hit(crate::failpoint::Point::CreateAnswered);
            check_location_origin(&endpoint, &created.url, &rec.headers)?;
            let exp = created.expires.and_then(unix_secs);
            ctx.store.set_url(id, epoch, &created.url, exp, had_url)?;
            *acked = 0;
            if created.offset > 0 {
                ctx.store.set_offset(id, epoch, created.offset, exp)?;
                *acked = created.offset;
            }
            tracing::info!(id, url = %crate::redact::strip_userinfo(&created.url), offset = created.offset, recreated = had_url, "created server upload");
            reporter.send(WorkerEvent::Url {
                url: created.url.clone(),
                recreated: had_url,
            });
            reporter.send(WorkerEvent::Progress {
                acked: created.offset,
                in_flight: 0,
            });
            (created.url, created.offset, defer)
        }
    };

    let mut conflicts = 0u32;
    let mut checksum_mismatches = 0u32;
    let mut journalled_done = false;
    while offset < rec.size || length_pending {
        check_unchanged(&rec)?;
        let transfer = Transfer::new();
        let body = next_body(ctx, &rec, &source, offset, chunk, checksum, &transfer).await?;
        let sent_len = body.len;
        let result = supervise(
            ctx.client.patch(
                &url,
                &headers,
                offset,
                body,
                length_pending.then_some(rec.size),
            ),
            &transfer,
            offset,
            ctx.settings.stall_timeout,
            reporter,
        )
        .await;
        match result {
            Ok(p) => {
                let moved = p.offset > offset || (sent_len == 0 && p.offset == offset);
                if !moved || p.offset > offset + sent_len {
                    return Err(Error::Protocol(format!(
                        "PATCH at {offset} with {sent_len} bytes answered Upload-Offset {}",
                        p.offset
                    ))
                    .into());
                }
                crate::failpoint::hit(crate::failpoint::Point::PatchAcked);
                let exp = p.expires.and_then(unix_secs);
                if p.offset == rec.size {
                    // The last PATCH: offset and completion in one journal write.
                    ctx.store.set_completed(id, epoch, p.offset, exp)?;
                    journalled_done = true;
                } else {
                    ctx.store.set_offset(id, epoch, p.offset, exp)?;
                }
                *acked = p.offset;
                offset = p.offset;
                length_pending = false;
                conflicts = 0;
                checksum_mismatches = 0;
                reporter.send(WorkerEvent::Progress {
                    acked: offset,
                    in_flight: 0,
                });
            }
            Err(e) => {
                let e = blame_file(e, &transfer, &rec);
                match e.status() {
                    Some(409) if conflicts < 5 => {
                        conflicts += 1;
                        match server_offset(ctx, &rec, &url, &headers).await? {
                            None => return Err(Interruption::Gone),
                            Some(ServerState {
                                offset: server,
                                expires: exp,
                                ..
                            }) => {
                                tracing::info!(
                                    id,
                                    ours = offset,
                                    server,
                                    "offset conflict; continuing from the server's offset"
                                );
                                ctx.store.set_offset(id, epoch, server, exp)?;
                                *acked = server;
                                offset = server;
                                reporter.send(WorkerEvent::Progress {
                                    acked: offset,
                                    in_flight: 0,
                                });
                            }
                        }
                    }
                    Some(413) if sent_len > MIN_CHUNK => {
                        chunk = (sent_len / 2).max(MIN_CHUNK);
                        tracing::info!(id, chunk, "413: halving the chunk size");
                    }
                    Some(460) if checksum_mismatches < 3 => {
                        checksum_mismatches += 1;
                        tracing::warn!(id, offset, "checksum mismatch; sending the chunk again");
                    }
                    _ if patch_says_gone(&e) => {
                        tracing::info!(id, status = ?e.status(), "server upload vanished; creating a new one");
                        return Err(Interruption::Gone);
                    }
                    _ => return Err(e.into()),
                }
            }
        }
    }
    // Complete without a final PATCH (the server already had every byte, or a POST with
    // creation-with-upload carried them): the worker journals completion either way, so the
    // scheduler never has to (and a stopped worker's epoch keeps it from doing so).
    if !journalled_done {
        ctx.store.set_completed(id, epoch, offset, None)?;
    }
    Ok(())
}

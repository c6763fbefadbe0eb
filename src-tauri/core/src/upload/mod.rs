//! The upload state machine: everything one upload does, from checking the file to the last
//! confirmed byte. It owns the protocol decisions (create or resume, what each status means,
//! when to retry); the HTTP layer, the journal and the file reader are injected.
//!
//! Cancellation is by dropping the future (the scheduler aborts the task). Every journal write
//! is synchronous and follows the server's answer with no `.await` in between, so an abort can
//! never separate a confirmed offset from its journal entry.

mod parts;
pub mod ratelimit;
pub mod retry;
pub mod source;

use crate::error::explain::Said;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, OnceCell};

use crate::error::{Error, Result};
use crate::identity::fingerprint::{self, FileStamp};
use crate::identity::proof::{self, PrefixHasher};
use crate::journal::record::{UploadId, UploadRecord};
use crate::journal::Store;
use crate::tus::client::{self, SizedBody, TusClient};
use crate::tus::gate::{Grant, Reach};
use crate::tus::protocol::ServerCaps;
use crate::tus::protocol::{self, ChecksumAlgorithm};
use crate::upload::ratelimit::RateLimiter;
use crate::upload::retry::RetryPolicy;
use source::{Sent, SentLog, Source, Transfer};

/// The final bytes of a file are read into memory, checked against the file's stamp, and only
/// then sent: a file modified during the upload can never be completed as a mix of old and
/// new content. Files up to this size go in one request from memory.
pub const TAIL: u64 = 1024 * 1024;

/// Passes in a row, without progress, that found the file's stamp moved again.
const MAX_RECHECKS: u32 = 20;

/// PATCH answers in a row whose Upload-Offset makes no sense before the upload fails (each
/// one is followed by a HEAD).
const MAX_BAD_ANSWERS: u32 = 3;

/// Smallest chunk that 413 answers can halve down to.
pub const MIN_CHUNK: u64 = 64 * 1024;

/// Seconds sending a checksummed chunk should take at least, so that the round trip after
/// it costs little (on a 20 ms link, 40 ms of 2 s).
const CHUNK_SECS: f64 = 2.0;

/// How far a checksummed chunk may grow past the cap on a fast flow.
const CHUNK_GROWTH: u64 = 4;

/// The next PATCH's size. With checksums the chunk is capped (a range is read twice and a
/// failed request loses it whole), but on a long link each chunk costs a round trip: on a
/// fast flow it grows so that one takes at least [`CHUNK_SECS`], up to [`CHUNK_GROWTH`]
/// times the cap, never past `limit` (the user's chunk size, or what a 413 taught), and not
/// once a 413 shrank it below `base` in this run.
fn grown_chunk(chunk: u64, base: u64, limit: u64, checksums: bool, rate: Option<f64>) -> u64 {
    match rate {
        Some(rate) if checksums && chunk == base && chunk < limit => {
            let want = (rate * CHUNK_SECS) as u64;
            want.clamp(chunk, chunk.saturating_mul(CHUNK_GROWTH))
                .min(limit)
        }
        _ => chunk,
    }
}

/// Tunables of the upload loop.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UploadSettings {
    /// Bytes per PATCH; `None` = the whole remainder in one request.
    pub chunk_size: Option<u64>,
    /// Abort a request when no body bytes moved and no answer came for this long.
    pub stall_timeout: Duration,
    /// Once the whole body was sent, how long to wait for the answer: a server may take its
    /// time to store a large upload (tusd assembling S3 parts, say).
    pub final_answer_timeout: Duration,
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
    /// Parts a large file is split into, each on its own connection, where the server
    /// offers concatenation ("connections per file"; 1 = one stream).
    pub parts: usize,
    /// Files from this size on go as parts.
    pub parts_min_size: u64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            chunk_size: None,
            stall_timeout: Duration::from_secs(30),
            final_answer_timeout: Duration::from_secs(180),
            retry: RetryPolicy::default(),
            creation_with_upload: false,
            post_body_cap: 4 * 1024 * 1024,
            checksum_chunk_cap: 16 * 1024 * 1024,
            checksums: true,
            parts: 4,
            parts_min_size: 64 * 1024 * 1024,
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
    Waiting { until_ms: i64, reason: Said },
    /// Working again after a wait.
    Uploading,
    /// The server holds fewer bytes than it had confirmed: progress goes back to `to`, and
    /// the difference is sent again.
    Regressed { from: u64, to: u64 },
    /// Something the user should know about this upload (shown on its row).
    Note(String),
    /// The run ended. Sent on the same channel as the events before it, so it never
    /// overtakes them.
    Finished(Outcome),
}

/// How a run of the state machine ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    Failed(Said),
    FileMissing(Said),
    FileChanged(Said),
    /// The server refused the credentials, after a refresh when there is a way to refresh.
    NeedsSignIn(Said),
    /// The server sends the upload to a host the profile does not allow: the user is asked.
    AsksHost {
        host: String,
        reason: Said,
    },
}

/// OPTIONS answers, fetched once per endpoint per engine run.
#[derive(Debug, Default, Clone)]
pub struct CapsCache {
    cells: Arc<Mutex<HashMap<String, Arc<OnceCell<ServerCaps>>>>>,
    /// Endpoints that refused parts although OPTIONS listed concatenation.
    no_parts: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl CapsCache {
    /// The server's capabilities, asking it at most once (concurrent callers share one request).
    pub async fn get(
        &self,
        client: &TusClient,
        store: &Store,
        endpoint: &str,
        grant: &Grant,
    ) -> Result<ServerCaps> {
        let cell = {
            let mut map = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(endpoint.to_string()).or_default().clone()
        };
        let caps = cell
            .get_or_try_init(|| async {
                let caps = match client.options(endpoint, grant).await {
                    Ok(caps) => caps,
                    Err(Error::NotTusServer { reason, .. }) => {
                        tracing::info!(endpoint = %crate::redact::strip_userinfo(endpoint), %reason, "OPTIONS told nothing; going ahead with tus core");
                        ServerCaps::core_only(reason)
                    }
                    Err(e) => return Err(e),
                };
                tracing::info!(endpoint = %crate::redact::strip_userinfo(endpoint), versions = ?caps.versions, extensions = ?caps.extensions, max_size = ?caps.max_size, "discovered server");
                store.save_caps(endpoint, &caps)?;
                Ok::<_, Error>(caps)
            })
            .await?;
        Ok(caps.clone())
    }

    /// What OPTIONS said, if it was asked in this run (never waits).
    pub fn known(&self, endpoint: &str) -> Option<ServerCaps> {
        let map = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        map.get(endpoint).and_then(|c| c.get().cloned())
    }

    /// Whether uploads to this endpoint would go as parts by what is known now: `None`
    /// before OPTIONS was asked.
    pub fn offers_parts(&self, endpoint: &str) -> Option<bool> {
        let caps = self.known(endpoint)?;
        Some(caps.has("concatenation") && !self.refuses_parts(endpoint))
    }

    /// The endpoint refused parts (501 to a partial, no `Upload-Concat` kept): one stream
    /// from now on, in this run.
    pub fn refuse_parts(&self, endpoint: &str) {
        self.no_parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.to_string());
    }

    pub fn refuses_parts(&self, endpoint: &str) -> bool {
        self.no_parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(endpoint)
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
    /// Headers printed by profiles' header commands, shared by their uploads.
    pub command_headers: crate::profiles::profile::CommandHeaders,
    /// Where secret header values are kept (the journal holds references).
    pub secrets: crate::profiles::secrets::Secrets,
    /// Connections this run may open at once (the scheduler counts connections): more
    /// than one lets a large file go as parallel parts.
    pub connections: usize,
    /// Woken when the person says the network is back ("Try now"): uploads waiting out a
    /// network outage try at once instead of at the end of their backoff.
    pub try_now: Arc<tokio::sync::Notify>,
}

/// The headers for an upload's requests and where they may go, read now: its profile may
/// have been edited since it was queued. `refused` is the command fetch the server just
/// refused (fetch a newer one).
pub async fn credentials(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    refused: Option<u64>,
) -> Result<Grant> {
    let profile = profile_of(ctx, rec)?;
    credentials_from(ctx, rec, profile.as_ref(), refused).await
}

/// How requests for an upload talk to the server, from its profile as it is now (method
/// override): uploads and terminations alike.
pub fn client_for(ctx: &UploadCtx, rec: &UploadRecord) -> TusClient {
    let profile = profile_of(ctx, rec).ok().flatten().unwrap_or_default();
    ctx.client.for_profile(profile.method_override)
}

/// Why a DELETE of `url` for this upload may not be sent, judged before any secret is read:
/// a host the person refused, or one its credentials may not go to (a URL a service handed
/// over on a host never allowed; a profile that moved to another server). `None`: it may.
pub fn termination_blocked(ctx: &UploadCtx, rec: &UploadRecord, url: &str) -> Option<Error> {
    let Ok(target) = url::Url::parse(url) else {
        return Some(Error::Protocol("the upload URL is not a URL".into()));
    };
    let profile = match profile_of(ctx, rec) {
        Ok(p) => p,
        Err(e) => return Some(e),
    };
    let has_credentials = match &profile {
        Some(p) => p.has_credentials(),
        None => rec.headers.keys().any(|k| crate::redact::is_sensitive(k)),
    };
    reach_of(rec, profile.as_ref())
        .and_then(|reach| reach.check(&target, has_credentials))
        .err()
}

/// Where an upload's secrets may go: its own server, when its profile's credentials were
/// given for it (otherwise the reason), and the hosts the profile allows.
fn reach_of(
    rec: &UploadRecord,
    profile: Option<&crate::profiles::profile::Profile>,
) -> Result<Reach> {
    let here = crate::origin::origin_of(&rec.endpoint);
    Ok(match profile {
        Some(p) => {
            if let Some(origin) = &here {
                p.credentials_reach(origin)?;
            }
            Reach::new(here, &p.allowed_hosts, &p.refused_hosts)
        }
        None => Reach::new(here, &[], &[]),
    })
}

/// The upload's profile as the journal holds it now (`None`: none, or removed).
fn profile_of(
    ctx: &UploadCtx,
    rec: &UploadRecord,
) -> Result<Option<crate::profiles::profile::Profile>> {
    match rec.profile_id {
        Some(pid) => ctx.store.profile(pid),
        None => Ok(None),
    }
}

/// [`credentials`] from a profile already read. Its secrets go only to the upload's own
/// server, and only when they were given for it (or the person allowed its host): a profile
/// that moved to another server since never sends that server's credentials here.
async fn credentials_from(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    profile: Option<&crate::profiles::profile::Profile>,
    refused: Option<u64>,
) -> Result<Grant> {
    let reach = reach_of(rec, profile)?;
    match profile {
        Some(p) => {
            let mut opened = p.clone();
            opened.headers = ctx.secrets.open_headers(&p.headers)?;
            let creds = ctx.command_headers.credentials(&opened, refused).await?;
            // A command's headers are credentials, whatever their names.
            let is_secret = |k: &str| p.is_secret(k) || creds.fetched.iter().any(|f| f == k);
            Grant::new(&creds.headers, &is_secret, reach, creds.generation)
        }
        None => Grant::new(
            &ctx.secrets.open_headers(&rec.headers)?.0,
            &crate::redact::is_sensitive,
            reach,
            None,
        ),
    }
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

/// Milliseconds since the Unix epoch: the clock of `retry_at_ms`.
pub fn now_ms() -> i64 {
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
    /// The server cannot join parts after all: send one stream.
    NoParts(String),
    /// The server lost the upload: start a new one right away.
    Gone,
    /// The file's stamp moved while this run worked: a new pass proves the sent bytes
    /// against the journal and asks the server (HEAD) before anything more is appended.
    Recheck,
    Err(Error),
}

impl From<Error> for Interruption {
    fn from(e: Error) -> Self {
        match e {
            // Another file at the path: proven (or refused) by a new pass before anything
            // more is sent.
            Error::Replaced(_) => Interruption::Recheck,
            e => Interruption::Err(e),
        }
    }
}

/// What the row says when the server no longer has the upload (404/410) and it starts over.
const LOST_NOTE: &str =
    "the server had lost this upload (expired or removed): sent again from the start";

/// Runs one upload to an outcome, retrying transient failures.
/// `rec` is the record as the scheduler read it when it started this run.
pub async fn run(ctx: UploadCtx, id: UploadId, reporter: Reporter, rec: UploadRecord) -> Outcome {
    let ctx = UploadCtx {
        client: client_for(&ctx, &rec).own_connections(),
        ..ctx
    };
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
    // What this run has sent, hashed; and a proof of a moved file already made in this run.
    let sent = SentLog::new(PrefixHasher::new());
    let mut proven = None;
    let mut rechecks = 0u32;
    let mut refused = None;
    let mut refreshed = false;
    loop {
        let before = acked;
        let mut generation = None;
        let mut run = RunState {
            forget_url,
            acked: &mut acked,
            sent: &sent,
            proven: &mut proven,
            refused,
            generation: &mut generation,
        };
        let result = attempt(&ctx, id, &reporter, known.take(), &mut run).await;
        forget_url = false;
        let after = acked;
        if after > before {
            // Progress was made: the retry budgets start over.
            failures = 0;
            spent = 0;
            recreations = 0;
            refreshed = false;
            last_progress = std::time::Instant::now();
        }
        let err = match result {
            Ok(()) => return Outcome::Completed,
            Err(Interruption::Recheck | Interruption::NoParts(_)) => {
                rechecks = if after > before { 1 } else { rechecks + 1 };
                if rechecks > MAX_RECHECKS {
                    return Outcome::FileChanged("the file keeps changing while it uploads".into());
                }
                continue;
            }
            Err(Interruption::Gone) => {
                recreations += 1;
                reporter.send(WorkerEvent::Note(LOST_NOTE.into()));
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
            e @ Error::FileMissing(_) => return Outcome::FileMissing(Said::of(&e)),
            e @ Error::FileChanged(_) => return Outcome::FileChanged(Said::of(&e)),
            Error::Interrupted => return Outcome::Failed("interrupted".into()),
            // Fetched credentials that were refused: fetch new ones and try once more.
            e if e.is_auth() && generation.is_some() && !refreshed => {
                tracing::info!(id, "credentials refused; running the header command again");
                refreshed = true;
                refused = generation;
                continue;
            }
            // Never retried into the ground, never a new upload: it waits for credentials.
            e if e.is_auth() => return Outcome::NeedsSignIn(Said::of(&e)),
            e @ (Error::HeaderCommand(_)
            | Error::Secrets(_)
            | Error::CredentialsElsewhere { .. }) => return Outcome::NeedsSignIn(Said::of(&e)),
            Error::HostNotAllowed(host) => {
                let reason = Said::of(&Error::HostNotAllowed(host.clone()));
                return Outcome::AsksHost { host, reason };
            }
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
                    return Outcome::Failed(
                        Said::of(&e).then(&format!("gave up after {failures} attempts")),
                    );
                }
                let delay = ctx.settings.retry.delay(failures, e.retry_after());
                tracing::warn!(id, attempt = failures, delay_ms = delay.as_millis() as u64, error = %e, "retrying");
                reporter.send(WorkerEvent::Waiting {
                    until_ms: now_ms() + delay.as_millis() as i64,
                    reason: Said::of(&e),
                });
                // Registered before the wait, so a "Try now" during it is never lost.
                let asked = ctx.try_now.notified();
                if e.is_outage() {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = asked => tracing::info!(id, "trying now, as asked"),
                    }
                } else {
                    // A busy server's Retry-After is kept.
                    tokio::time::sleep(delay).await;
                }
                reporter.send(WorkerEvent::Uploading);
            }
            e => {
                tracing::error!(id, error = %e, "upload failed");
                return Outcome::Failed(Said::of(&e));
            }
        }
    }
}

/// A moved stamp whose proof passed: the server's prefix `[0, acked)` is the file's bytes
/// now (touched, renamed, or edited only past what was sent). It becomes the journal's once HEAD shows the server
/// holds no byte past the proven prefix (bytes past it were read under the old stamp, and
/// nothing can prove them).
#[derive(Clone)]
struct Moved {
    stamp: FileStamp,
    fingerprint: String,
    hasher: PrefixHasher,
}

/// What one run carries from attempt to attempt.
struct RunState<'a> {
    /// The server upload is known gone: create one on this attempt.
    forget_url: bool,
    /// The journal's acknowledged offset as this run wrote it.
    acked: &'a mut u64,
    sent: &'a Sent,
    /// A proof made in this run, reused while the stamp and the offset stay as they were.
    proven: &'a mut Option<Moved>,
    /// The header-command fetch the server refused last (fetch a newer one).
    refused: Option<u64>,
    /// The fetch this attempt's headers came from.
    generation: &'a mut Option<u64>,
}

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
async fn check_file(
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
async fn unchanged(path: &str, stamp: &FileStamp) -> Result<()> {
    let (p, stamp) = (path.to_string(), *stamp);
    source::blocking_file(path, move || check_unchanged(&p, &stamp)).await
}

/// Verifies the stamp has not moved since the upload started (cheap stat, no hashing). On
/// the blocking pool only (inside a read).
fn check_unchanged(path: &str, stamp: &FileStamp) -> Result<()> {
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
async fn ensure_file(ctx: &UploadCtx, rec: &UploadRecord) -> Result<(), Interruption> {
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
async fn align(ctx: &UploadCtx, rec: &UploadRecord, sent: &Sent, target: u64) -> Result<()> {
    if source::lock(sent).hasher().len() == target {
        return Ok(());
    }
    let journal = ctx.store.proof(rec.id)?;
    let path = std::path::PathBuf::from(&rec.path);
    let rebuilt = source::blocking(move || proof::rebuild(&path, &journal, target, true)).await?;
    unchanged(&rec.path, &rec.stamp()).await?;
    match rebuilt {
        Ok(h) => {
            source::lock(sent).reset(h);
            Ok(())
        }
        Err(m) => Err(Error::FileChanged(format!(
            "{}: the bytes at offset {} differ from those the server holds",
            rec.path, m.at
        ))),
    }
}

/// Answers (to HEAD or PATCH) that mean "this upload does not exist (any more)". 401 and
/// 403 are not among them: behind a gateway they mean the credentials expired, and the upload
/// is still there ([`Error::is_auth`]).
fn says_gone(e: &Error) -> bool {
    matches!(e.status(), Some(404 | 410))
}

/// Plans the next request's body. Before the tail: a range streamed from disk, ending at the
/// tail at the latest. Inside the tail: the range is read into memory (at most [`TAIL`]
/// bytes) and the file's stamp is checked again after the read, so the request that
/// completes the upload only carries bytes of the same content as everything before it.
#[allow(clippy::too_many_arguments)]
async fn next_body(
    ctx: &UploadCtx,
    rec: &UploadRecord,
    offset: u64,
    max_len: u64,
    tail_start: u64,
    checksum: Option<ChecksumAlgorithm>,
    transfer: &Arc<Transfer>,
    sent: &Sent,
) -> Result<SizedBody> {
    let source = Source::new(&rec.path).expecting(rec.ino);
    let remaining = rec.size - offset;
    if offset >= tail_start {
        let len = max_len.min(remaining);
        // Read, checked and recorded in one place: off the event loop unless small (with
        // 100,000 small files, hashing them there made it the bottleneck).
        let (path, stamp, sent) = (rec.path.clone(), rec.stamp(), sent.clone());
        let (bytes, checksum) = source
            .read_then(offset, len, move |bytes| {
                check_unchanged(&path, &stamp)?;
                source::record_memory(&sent, offset, &bytes);
                let checksum =
                    checksum.map(|alg| protocol::format_checksum(alg, &digest(alg, &bytes)));
                Ok((bytes, checksum))
            })
            .await?;
        transfer.touch();
        return Ok(SizedBody {
            body: crate::upload::source::memory_body(bytes, ctx.limiter.clone(), transfer.clone()),
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
        .body(
            offset,
            len,
            ctx.limiter.clone(),
            transfer.clone(),
            sent.clone(),
        )
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

/// Drives a request future while reporting in-flight progress and watching for stalls. The
/// stall watchdog counts while body bytes should be moving; once all `body_len` bytes are
/// handed over, the answer gets the (longer) final-answer timeout instead.
async fn supervise<T>(
    fut: impl std::future::Future<Output = Result<T>>,
    transfer: &Arc<Transfer>,
    acked: u64,
    body_len: u64,
    settings: &UploadSettings,
    reporter: &Reporter,
) -> Result<T> {
    supervise_with(fut, transfer, body_len, settings, |in_flight| {
        reporter.send(WorkerEvent::Progress { acked, in_flight })
    })
    .await
}

/// [`supervise`], reporting the bytes in flight to `report`.
async fn supervise_with<T>(
    fut: impl std::future::Future<Output = Result<T>>,
    transfer: &Arc<Transfer>,
    body_len: u64,
    settings: &UploadSettings,
    report: impl Fn(u64),
) -> Result<T> {
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = &mut fut => return r,
            _ = tick.tick() => {
                let idle = transfer.idle();
                if transfer.sent() >= body_len {
                    if idle > settings.final_answer_timeout {
                        return Err(Error::NoAnswer(settings.final_answer_timeout));
                    }
                } else if idle > settings.stall_timeout {
                    return Err(Error::Stalled(settings.stall_timeout));
                }
                report(transfer.sent());
            }
        }
    }
}

/// A 2xx PATCH answer whose Upload-Offset is missing, malformed, shows no progress or claims
/// more than was sent is not believed: it becomes [`Error::BadOffset`] (then HEAD decides).
fn believed(
    result: Result<client::Patched>,
    offset: u64,
    sent_len: u64,
) -> Result<client::Patched> {
    match result {
        Ok(p)
            if !(p.offset > offset || (sent_len == 0 && p.offset == offset))
                || p.offset > offset + sent_len =>
        {
            Err(Error::BadOffset(format!(
                "PATCH at {offset} with {sent_len} bytes answered Upload-Offset {}",
                p.offset
            )))
        }
        r => r,
    }
}

/// Maps a failed request to the file's fault when the body stream broke because of the file.
async fn blame_file(e: Error, transfer: &Transfer, rec: &UploadRecord) -> Error {
    if let Some(msg) = transfer.failure() {
        if let Err(Error::FileMissing(_)) = source::stamp(&rec.path).await {
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

/// What a HEAD says about the journal's server upload.
enum Head {
    Holds(ServerState),
    /// 404, 410 (or 403 on HEAD): it no longer exists; expiry ends up here too, as the
    /// server judges it (the local clock never abandons an upload without asking).
    Gone,
    /// It exists but cannot be this file's: another length, or an offset past the file's end.
    Mismatch,
}

/// Asks the server what it holds; errors are transient or final as classified.
async fn server_offset(
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

fn given_url_gone() -> Error {
    Error::UploadUrl(
        "the server no longer has it (404/410): ask the service for a new upload URL".into(),
    )
}

async fn server_offset_any(
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
async fn abandon(ctx: &UploadCtx, caps: &ServerCaps, id: UploadId, url: &str, grant: &Grant) {
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
fn regressed(ctx: &UploadCtx, reporter: &Reporter, from: u64, to: u64) -> Result<()> {
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
async fn take_offset(
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
async fn journal_offset(
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

/// A POST refused for good by a server that told nothing in OPTIONS either: most likely not
/// a tus server at all, and the message says both answers.
fn not_tus(e: Error, caps: &ServerCaps, endpoint: &str) -> Error {
    match (&caps.undiscovered, e.status()) {
        (Some(why), Some(status))
            if !e.is_retryable() && !e.is_auth() && status != 413 && status != 412 =>
        {
            Error::NotTusServer {
                url: crate::redact::strip_userinfo(endpoint),
                reason: format!("{why}, and POST answered {status}"),
            }
        }
        _ => e,
    }
}

/// An upload on another host than the endpoint's (Cloudflare Stream does that) gets the
/// credentials too only when the profile allows that host; without secrets it may go
/// anywhere the person did not refuse. Checked before its URL is journalled.
fn check_location(grant: &Grant, endpoint: &url::Url, location: &str) -> Result<()> {
    let loc = url::Url::parse(location).map_err(|e| {
        Error::Protocol(format!("the Location of the new upload is not a URL ({e})"))
    })?;
    if endpoint.scheme() == "https" && loc.scheme() != "https" {
        return Err(Error::Protocol(format!(
            "refusing to send the file from https to {}",
            crate::origin::origin(&loc).unwrap_or_default()
        )));
    }
    grant.check(&loc)
}

/// One pass: check the file, find or create the server upload, send until done or failure.
async fn attempt(
    ctx: &UploadCtx,
    id: UploadId,
    reporter: &Reporter,
    known: Option<UploadRecord>,
    run: &mut RunState<'_>,
) -> Result<(), Interruption> {
    let epoch = reporter.epoch;
    let mut rec = match known {
        Some(r) => r,
        None => ctx.store.get(id)?,
    };
    // An upload that goes as parts has its proofs per part (checked by the parts' pass).
    // (Only files over one block are ever split: small ones skip the query.)
    let has_parts = rec.size > proof::BLOCK && ctx.store.has_parts(id)?;
    let mut moved = if has_parts {
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
    let mut chunk = match exact {
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
    if has_parts || parts::wanted(ctx, &rec, &caps, exact.is_some()) {
        let setup = parts::Setup {
            endpoint: &endpoint,
            grant: &grant,
            caps: &caps,
            checksum,
            chunk,
            chunk_limit,
        };
        return parts::attempt(ctx, rec, reporter, run, moved, &setup).await;
    }
    let tail_start = match exact {
        Some(n) => rec.size.saturating_sub(1) / n * n,
        None => rec.size.saturating_sub(TAIL),
    };
    let sent = run.sent;

    // Resume what the server has, if it still has it and it is provably this file's.
    let mut resumed = None;
    let mut journalled_done = false;
    if let Some(url) = rec.upload_url.clone() {
        match server_offset(ctx, &rec, &url, &grant).await? {
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
                abandon(ctx, &caps, id, &url, &grant).await;
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
                journalled_done = take_offset(
                    ctx,
                    &rec,
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
                resumed = Some((url, st.offset, st.length_deferred));
            }
            Head::Mismatch => abandon(ctx, &caps, id, &url, &grant).await,
            Head::Gone => reporter.send(WorkerEvent::Note(LOST_NOTE.into())),
        }
    }

    // Exactly once: by default the request that completes a server upload is always a PATCH
    // to a URL the journal already holds. A POST that completes the upload by itself leaves a
    // finished duplicate behind whenever the process dies before its answer is journalled
    // (the torture test found this), so the POST carries no data unless the user opted into
    // creation-with-upload, and an empty file is created with a deferred length (when the
    // server offers it) that a PATCH then declares.
    let (mut url, mut offset, mut length_pending) = match resumed {
        Some(r) => r,
        None if rec.given_url => return Err(given_url_gone().into()),
        None => {
            reporter.send(WorkerEvent::StartingOver);
            source::lock(sent).reset(PrefixHasher::new());
            if let Some(m) = &moved {
                // The new server upload gets the file as it is now (a POST with data reads it
                // under this stamp); the journal takes the stamp once the URL is recorded.
                rec.mtime_ns = m.stamp.mtime_ns;
                rec.ino = m.stamp.ino;
                rec.ctime_ns = m.stamp.ctime_ns;
            }
            let metadata = upload_metadata(&rec)?;
            let defer = rec.size == 0 && caps.has("creation-defer-length");
            let mut use_cwu = ctx.settings.creation_with_upload
                && caps.has("creation-with-upload")
                && rec.size > 0
                && exact.is_none();
            let created = loop {
                let transfer = Transfer::new();
                let first = if use_cwu {
                    let max = chunk.min(ctx.settings.post_body_cap);
                    Some(next_body(ctx, &rec, 0, max, tail_start, checksum, &transfer, sent).await?)
                } else {
                    None
                };
                let first_len = first.as_ref().map_or(0, |b| b.len);
                let r = supervise(
                    ctx.client.create(
                        &endpoint,
                        &grant,
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
                    Err(e) => Err(blame_file(e, &transfer, &rec).await),
                    ok => ok,
                };
                match r {
                    // A proxy in front of the server may cap request bodies: create empty.
                    Err(e) if use_cwu && e.status() == Some(413) => {
                        tracing::info!(id, "413 on POST with data; creating without data");
                        use_cwu = false;
                    }
                    r => break r.map_err(|e| not_tus(e, &caps, &rec.endpoint))?,
                }
            };
            crate::failpoint::hit(crate::failpoint::Point::CreateAnswered);
            check_location(&grant, &endpoint, &created.url)?;
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
                journalled_done =
                    take_offset(ctx, &rec, run, reporter, created.offset, exp, defer).await?;
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
            (created.url, created.offset, defer)
        }
    };

    let mut conflicts = 0u32;
    let base_chunk = chunk;
    // Bytes per second of the last PATCH.
    let mut rate: Option<f64> = None;
    let mut bad_answers = 0u32;
    let mut checksum_mismatches = 0u32;
    let mut moves = 0u32;
    while offset < rec.size || length_pending {
        ensure_file(ctx, &rec).await?;
        align(ctx, &rec, sent, offset).await?;
        let transfer = Transfer::new();
        // Exact chunks stay on their boundaries even after a server kept part of one.
        let want = match exact {
            Some(n) => n - offset % n,
            None => grown_chunk(chunk, base_chunk, chunk_limit, checksum.is_some(), rate),
        };
        let began = std::time::Instant::now();
        let body = next_body(
            ctx, &rec, offset, want, tail_start, checksum, &transfer, sent,
        )
        .await?;
        let sent_len = body.len;
        let result = supervise(
            ctx.client.patch(
                &url,
                &grant,
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
                journalled_done =
                    take_offset(ctx, &rec, run, reporter, p.offset, exp, false).await?;
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
                match server_offset(ctx, &rec, &url, &grant).await? {
                    Head::Gone => return Err(Interruption::Gone),
                    Head::Mismatch => {
                        abandon(ctx, &caps, id, &url, &grant).await;
                        return Err(Interruption::Gone);
                    }
                    Head::Holds(st) => {
                        journalled_done = take_offset(
                            ctx,
                            &rec,
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
                }
            }
            Err(e) => {
                let e = blame_file(e, &transfer, &rec).await;
                match e.status() {
                    Some(409) if conflicts < 5 => {
                        conflicts += 1;
                        match server_offset(ctx, &rec, &url, &grant).await? {
                            Head::Gone => return Err(Interruption::Gone),
                            Head::Mismatch => {
                                abandon(ctx, &caps, id, &url, &grant).await;
                                return Err(Interruption::Gone);
                            }
                            Head::Holds(ServerState {
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
                                journalled_done = take_offset(
                                    ctx,
                                    &rec,
                                    run,
                                    reporter,
                                    server,
                                    exp,
                                    length_pending,
                                )
                                .await?;
                                offset = server;
                            }
                        }
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
    // Complete without a final PATCH (an empty file, or a POST with creation-with-upload
    // carried every byte): the worker journals completion either way, so the scheduler never
    // has to (and a stopped worker's epoch keeps it from doing so).
    if !journalled_done {
        align(ctx, &rec, sent, offset).await?;
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

#[cfg(test)]
mod tests;

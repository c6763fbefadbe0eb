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

mod caps;
mod create;
mod file_checks;
mod headers;
mod offsets;
mod pass;
mod request;
mod resume;
mod send;

pub use caps::CapsCache;
pub(crate) use file_checks::no_link_on_the_way;
pub use headers::{client_for, credentials, termination_blocked};
use {create::*, file_checks::*, headers::*, offsets::*, pass::*, request::*, resume::*, send::*};

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

#[cfg(test)]
mod tests;

//! The engine: a handle that front ends (CLI, desktop shell) clone and call, and one task that
//! owns the queue. All queue state lives in that task; handles talk to it over channels, so no
//! lock is ever shared across an `.await`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::explain::Said;
use crate::error::{Error, Result};
use crate::identity::changes::{FileWatcher, FsChange};
use crate::identity::files::{self, PreparedFile};
use crate::journal::lock::DirLock;
use crate::journal::record::{UploadId, UploadRecord, UploadState, UploadView};
use crate::journal::{NewUpload, Store};
use crate::queue::lifecycle::{self, Event};
use crate::queue::row::{Interner, Row};
use crate::tus::client::{self, TusClient};
use crate::tus::protocol;
use crate::upload::ratelimit::RateLimiter;
use crate::upload::{self, CapsCache, Outcome, Reporter, UploadCtx, UploadSettings, WorkerEvent};

mod actor;
mod commands;
mod fs_events;
mod hosts;
mod intake;
mod schedule;

use actor::{Actor, Entry, JOURNAL_BUSY_PAUSE};
use fs_events::{look_at_changes, Looked};
use intake::Decision;

/// How often batched events go out (at most ten per second).
pub const EVENT_INTERVAL: Duration = Duration::from_millis(100);

/// How an engine is opened.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Holds the journal and the lock; shared by the CLI and the desktop app.
    pub data_dir: PathBuf,
    /// Connections at once: an upload takes one, a file sent as parts one per part.
    pub concurrency: usize,
    /// Global limit in bytes per second (0 = none).
    pub bandwidth: u64,
    /// Start unfinished uploads from the journal right away. When false they stay dormant
    /// until resumed (or re-added), e.g. for `tusker-cli upload`, which runs only its own files.
    pub auto_resume: bool,
    pub upload: UploadSettings,
}

impl EngineConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.into(),
            concurrency: 4,
            bandwidth: 0,
            auto_resume: true,
            upload: UploadSettings::default(),
        }
    }
}

/// The platform data directory the CLI and the desktop app share.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("dev.tusker.app")
}

/// Files to enqueue and how to send them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AddRequest {
    pub paths: Vec<PathBuf>,
    pub endpoint: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Headers frozen into the uploads; used only without a profile.
    #[serde(default)]
    pub headers: crate::redact::Headers,
    /// The profile whose credentials the uploads' requests carry, read at request time.
    #[serde(default)]
    pub profile_id: Option<crate::profiles::profile::ProfileId>,
    /// Upload the one file into this existing upload (created by a service's API): HEAD,
    /// then PATCH from the server's offset, never a POST.
    #[serde(default)]
    pub upload_url: Option<String>,
    #[serde(default)]
    pub chunk_size: Option<u64>,
    /// Upload content again even if it already completed at this destination.
    #[serde(default)]
    pub again: bool,
    /// Files a watched folder examined, with the identity each had then: they are opened
    /// without following links and must still be that file (a swap is refused by name).
    /// With any, no handed-over path is followed either.
    #[serde(default)]
    pub examined: BTreeMap<PathBuf, crate::platform::FileId>,
    /// Where identity looks for this request's files ([`crate::identity::destination`]); the engine
    /// sets it when it takes the request in.
    #[serde(skip)]
    pub destination: String,
}

impl AddRequest {
    /// A request (no paths yet) whose uploads go where `profile` says, with its metadata and
    /// chunk size; the credentials are read from the profile at request time.
    pub fn to_profile(profile: &crate::profiles::profile::Profile) -> AddRequest {
        AddRequest {
            endpoint: profile.endpoint.clone(),
            metadata: profile.metadata.clone(),
            profile_id: Some(profile.id),
            chunk_size: profile.chunk_size,
            ..Default::default()
        }
    }
}

/// What happened to one path of an [`AddRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AddResult {
    /// A new upload.
    Added { id: UploadId, path: String },
    /// The same content was already being uploaded to this endpoint (maybe from another path):
    /// that upload continues from the server's offset.
    Resumed { id: UploadId, path: String },
    /// The same content already completed on this endpoint (its full hash equals the hash of
    /// what was sent); it is not sent twice unless the request says `again`.
    AlreadyUploaded { id: UploadId, path: String },
    /// This file had an unfinished upload, but changed inside the bytes the server holds:
    /// that server upload is terminated and the current content is uploaded from the start.
    Restarted { id: UploadId, path: String },
    /// This entry cannot be uploaded; the others went ahead.
    Rejected { path: String, error: String },
}

/// One batch of changes for UIs: rows whose data changed since the last batch, and rows gone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ts_rs::TS)]
pub struct EventBatch {
    pub changed: Vec<UploadView>,
    pub removed: Vec<UploadId>,
    /// `changed` is the whole queue: replace, don't merge (sent after a subscriber lagged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[ts(optional = nullable)]
    pub reset: bool,
}

/// Moves secrets that a journal from before the keyring kept in plain text (settings,
/// profiles, upload rows) to `secrets`, leaving references.
fn seal_stored_secrets(store: &Store, secrets: &crate::profiles::secrets::Secrets) -> Result<()> {
    let legacy_settings = store
        .setting("app")?
        .is_some_and(|raw| raw.contains("\"endpoint\""));
    crate::journal::settings::AppSettings::migrate_legacy(store, secrets)?;
    let mut moved = legacy_settings;
    for p in store.profiles()? {
        let unbound = p
            .headers
            .keys()
            .any(|k| p.is_secret(k) && !p.bound.contains_key(&k.to_ascii_lowercase()))
            || (p.command().is_some() && p.command_bound.is_empty());
        let plain =
            crate::profiles::secrets::Secrets::any_unsealed(&p.headers, &|k| p.is_secret(k));
        moved |= plain;
        if unbound || plain {
            // Also binds the secrets of a profile saved before they were bound to the
            // origin they have always gone to.
            store.save_profile_sealed(secrets, &p)?;
        }
    }
    for (id, headers) in store.row_headers()? {
        if crate::profiles::secrets::Secrets::any_unsealed(&headers, &crate::redact::is_sensitive) {
            let sealed = secrets.seal(
                &format!("upload:{id}"),
                &headers,
                &crate::redact::is_sensitive,
            )?;
            store.set_row_headers(id, &sealed)?;
            moved = true;
        }
    }
    if moved {
        // The plain values are gone from the rows; no copy may stay in the journal's free
        // space or its write-ahead log either.
        store.scrub()?;
    }
    Ok(())
}

enum Cmd {
    Add(
        Vec<(PreparedFile, Decision)>,
        AddRequest,
        crate::redact::Headers,
        oneshot::Sender<Result<Vec<AddResult>>>,
    ),
    Pause(Option<UploadId>, oneshot::Sender<Result<()>>),
    Resume {
        id: Option<UploadId>,
        include_failed: bool,
        reply: oneshot::Sender<Result<()>>,
    },
    Cancel(UploadId, oneshot::Sender<Result<()>>),
    Retry(UploadId, oneshot::Sender<Result<()>>),
    Restart(UploadId, Option<PreparedFile>, oneshot::Sender<Result<()>>),
    Remove(UploadId, oneshot::Sender<Result<()>>),
    Reorder(UploadId, usize, oneshot::Sender<Result<()>>),
    Prune(i64, oneshot::Sender<Result<usize>>),
    /// Clears one completed upload, or all of them, from the queue (kept as history).
    Clear(Option<UploadId>, oneshot::Sender<Result<usize>>),
    SetConcurrency(usize),
    SetParts {
        parts: usize,
        min_size: u64,
    },
    SetBandwidth(u64),
    ProfileChanged(crate::profiles::profile::ProfileId),
    Snapshot(oneshot::Sender<Vec<UploadView>>),
    Shutdown(oneshot::Sender<()>),
}

/// Handle to a running engine; clone freely.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::UnboundedSender<Cmd>,
    events: broadcast::Sender<Arc<EventBatch>>,
    store: Store,
    secrets: crate::profiles::secrets::Secrets,
    data_dir: PathBuf,
    try_now: Arc<tokio::sync::Notify>,
    _lock: Arc<DirLock>,
}

impl Engine {
    /// Locks the data directory, opens the journal and restores the queue. Must be called
    /// inside a tokio runtime.
    pub async fn open(config: EngineConfig) -> Result<Engine> {
        crate::failpoint::arm();
        let lock = DirLock::acquire(&config.data_dir)?;
        let store = Store::open(&config.data_dir.join("journal.sqlite"))?;
        let secrets = crate::profiles::secrets::Secrets::open(&config.data_dir);
        seal_stored_secrets(&store, &secrets)?;
        let (events, _) = broadcast::channel(256);
        let (tx, rx) = mpsc::unbounded_channel();
        let (wtx, wrx) = mpsc::unbounded_channel();
        let (ftx, raw_changes) = mpsc::unbounded_channel();
        let (looked_tx, frx) = mpsc::unbounded_channel();
        tokio::spawn(look_at_changes(raw_changes, looked_tx));
        let try_now = Arc::new(tokio::sync::Notify::new());
        let watcher = match FileWatcher::new(ftx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "no file watcher; changes are caught by the stamp checks only");
                None
            }
        };
        let ctx = UploadCtx {
            store: store.clone(),
            client: TusClient::with_timeout(config.upload.stall_timeout),
            caps: CapsCache::default(),
            limiter: Arc::new(RateLimiter::new(config.bandwidth)),
            settings: Arc::new(config.upload.clone()),
            command_headers: crate::profiles::profile::CommandHeaders::default(),
            secrets: secrets.clone(),
            connections: 1,
            try_now: try_now.clone(),
        };
        let mut actor = Actor {
            ctx,
            concurrency: config.concurrency.max(1),
            entries: HashMap::new(),
            shared: Interner::default(),
            order: Vec::new(),
            dirty: HashSet::new(),
            removed: Vec::new(),
            events: events.clone(),
            worker_tx: wtx,
            watcher,
            watched: HashSet::new(),
            paths_seen: HashSet::new(),
            schedule_soon: false,
            running: 0,
            unjournalled: HashSet::new(),
            journal_busy_until: None,
            sched_hint: 0,
            background: tokio::task::JoinSet::new(),
            profile_versions: HashMap::new(),
            profiles_checked: Instant::now(),
        };
        actor.profile_versions = actor.ctx.store.profile_versions()?;
        actor.restore(config.auto_resume)?;
        actor.clean_leftover_parts()?;
        tokio::spawn(actor.run(rx, wrx, frx));
        Ok(Engine {
            tx,
            events,
            store,
            secrets,
            data_dir: config.data_dir,
            try_now,
            _lock: Arc::new(lock),
        })
    }

    /// The data directory this engine owns.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Where secret header values are kept.
    pub fn secrets(&self) -> &crate::profiles::secrets::Secrets {
        &self.secrets
    }

    /// The journal (read access for listings; the engine writes through it too).
    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| Error::EngineStopped)?;
        rx.await.map_err(|_| Error::EngineStopped)
    }

    /// Pauses one upload (aborting its request; the server keeps what it received).
    pub async fn pause(&self, id: UploadId) -> Result<()> {
        self.call(|tx| Cmd::Pause(Some(id), tx)).await?
    }

    /// Uploads waiting out a network outage try again now, instead of at the end of their
    /// backoff (the window's "Try now"). Those waiting for a busy server keep its Retry-After.
    pub fn try_now(&self) {
        self.try_now.notify_waiters();
    }

    /// Pauses everything that is queued or running.
    pub async fn pause_all(&self) -> Result<()> {
        self.call(|tx| Cmd::Pause(None, tx)).await?
    }

    /// Resumes a paused (or dormant) upload.
    pub async fn resume(&self, id: UploadId) -> Result<()> {
        self.call(|tx| Cmd::Resume {
            id: Some(id),
            include_failed: false,
            reply: tx,
        })
        .await?
    }

    /// Resumes every paused or dormant upload; with `include_failed`, failed and missing-file
    /// uploads are tried again too.
    pub async fn resume_all(&self, include_failed: bool) -> Result<()> {
        self.call(|tx| Cmd::Resume {
            id: None,
            include_failed,
            reply: tx,
        })
        .await?
    }

    /// Stops an upload for good and terminates it on the server (when supported).
    pub async fn cancel(&self, id: UploadId) -> Result<()> {
        self.call(|tx| Cmd::Cancel(id, tx)).await?
    }

    /// Tries a failed, missing-file or cancelled upload again.
    pub async fn retry(&self, id: UploadId) -> Result<()> {
        self.call(|tx| Cmd::Retry(id, tx)).await?
    }

    /// Uploads the file's current content from scratch (the answer to `file changed`).
    pub async fn restart(&self, id: UploadId) -> Result<()> {
        let rec = self.store.get(id)?;
        let path = PathBuf::from(&rec.path);
        // The row's own file: never through a link (its path was recorded without one).
        let prepared = tokio::task::spawn_blocking(move || {
            let mut found = None;
            files::prepare_each(&[path], &files::Walk::default(), &mut |p| {
                found = Some(p);
                false
            });
            found
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let file = match prepared {
            Some(Ok(f)) => Some(f),
            Some(Err((_, e))) => return Err(e),
            None => None,
        };
        self.call(|tx| Cmd::Restart(id, file, tx)).await?
    }

    /// Forgets an upload; an unfinished one is terminated on the server first.
    pub async fn remove(&self, id: UploadId) -> Result<()> {
        self.call(|tx| Cmd::Remove(id, tx)).await?
    }

    /// Moves an upload to `index` in the queue (0 = first).
    pub async fn reorder(&self, id: UploadId, index: usize) -> Result<()> {
        self.call(|tx| Cmd::Reorder(id, index, tx)).await?
    }

    /// Takes completed uploads that finished before `cutoff` (unix seconds) out of the queue,
    /// as Clear completed does; the journal keeps them (a watched folder would otherwise send
    /// their files again). Returns how many.
    pub async fn prune_completed(&self, cutoff: i64) -> Result<usize> {
        self.call(|tx| Cmd::Prune(cutoff, tx)).await?
    }

    /// Changes how many uploads run at once.
    /// Parts a large file is split into ("connections per file"; 1 = one stream) and the
    /// size from which files are split. Uploads already split keep their parts.
    /// Takes every completed upload out of the queue; the journal keeps them as history
    /// (and as the proof that their files were uploaded). Returns how many.
    pub async fn clear_completed(&self) -> Result<usize> {
        self.call(|tx| Cmd::Clear(None, tx)).await?
    }

    /// Takes one completed upload out of the queue, keeping it as history.
    pub async fn clear(&self, id: UploadId) -> Result<()> {
        match self.call(|tx| Cmd::Clear(Some(id), tx)).await?? {
            0 => Err(Error::NotCompleted(id)),
            _ => Ok(()),
        }
    }

    pub fn set_parts(&self, parts: usize, min_size: u64) -> Result<()> {
        self.tx
            .send(Cmd::SetParts {
                parts: parts.max(1),
                min_size,
            })
            .map_err(|_| Error::EngineStopped)
    }

    pub fn set_concurrency(&self, n: usize) -> Result<()> {
        self.tx
            .send(Cmd::SetConcurrency(n.max(1)))
            .map_err(|_| Error::EngineStopped)
    }

    /// Creates or replaces a profile (by name). Uploads that wait for sign-in with it go
    /// on, and its next requests carry the new credentials.
    pub fn save_profile(
        &self,
        profile: &crate::profiles::profile::Profile,
    ) -> Result<crate::profiles::profile::ProfileId> {
        let id = self.store.save_profile_sealed(&self.secrets, profile)?;
        self.tx
            .send(Cmd::ProfileChanged(id))
            .map_err(|_| Error::EngineStopped)?;
        Ok(id)
    }

    /// The user's answer to "upload to this host for this profile?", asked by an upload the
    /// server sent elsewhere: remembered in the profile, so it is asked once. Allowed, every
    /// upload of the profile that asked goes again.
    pub fn answer_host(&self, id: UploadId, allow: bool) -> Result<()> {
        let rec = self.store.get(id)?;
        let (Some(profile_id), Some(host)) = (rec.profile_id, rec.asks_host) else {
            return Err(Error::Protocol(
                "this upload is not waiting for an answer about a host".into(),
            ));
        };
        let mut p = self
            .store
            .profile(profile_id)?
            .ok_or_else(|| Error::Protocol("the upload's profile was removed".into()))?;
        p.answer_host(&host, allow);
        tracing::info!(profile = %p.name, %host, allow, "answer about another host saved");
        // Stored as read: header values are references already.
        self.store.save_profile(&p)?;
        self.tx
            .send(Cmd::ProfileChanged(profile_id))
            .map_err(|_| Error::EngineStopped)
    }

    /// Changes the global bandwidth limit (bytes per second, 0 = none).
    pub fn set_bandwidth(&self, bytes_per_sec: u64) -> Result<()> {
        self.tx
            .send(Cmd::SetBandwidth(bytes_per_sec))
            .map_err(|_| Error::EngineStopped)
    }

    /// Every upload in queue order with live numbers.
    pub async fn snapshot(&self) -> Result<Vec<UploadView>> {
        self.call(Cmd::Snapshot).await
    }

    /// Batched changes, at most ten per second. A receiver that lags gets `Lagged` and
    /// should take a fresh [`snapshot`](Self::snapshot).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventBatch>> {
        self.events.subscribe()
    }

    /// Stops every request; running uploads are journalled as queued so the next start
    /// resumes them. Nothing confirmed is lost.
    pub async fn shutdown(&self) -> Result<()> {
        self.call(Cmd::Shutdown).await
    }
}

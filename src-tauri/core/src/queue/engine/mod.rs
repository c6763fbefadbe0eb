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

/// How often batched events go out (at most ten per second).
pub const EVENT_INTERVAL: Duration = Duration::from_millis(100);

/// A batch of dropped files goes to the queue at least this often while a walk goes on.
const ADD_BATCH_TIME: Duration = Duration::from_millis(50);

/// Most files per batch (one journal transaction each, once batched inserts exist).
const ADD_BATCH_MAX: usize = 1024;

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

/// What to do with one added file, decided by proof before the queue sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    New,
    /// An unfinished upload whose server bytes are this file's (its worker proves them again
    /// if the stamp moved before it appends).
    Resume(UploadId),
    /// An unfinished upload of this file whose server bytes are not the file's any more.
    Restart(UploadId),
    AlreadyUploaded(UploadId),
}

/// Finds what an added file is to the journal. Candidates come from the sampled fingerprint
/// or the path; only hashes decide. Runs on the blocking pool: it may read whole files.
fn decide(store: &Store, destination: &str, again: bool, f: &PreparedFile) -> Result<Decision> {
    let path = f.path.display().to_string();
    for cand in store.unfinished_candidates(&f.fingerprint, destination, f.stamp.size, &path)? {
        // The candidate's own file: the same path, or it left its path (renamed or moved). A
        // file still at another path is another file (a copy), with its own upload.
        let same_file = cand.path == path || !std::path::Path::new(&cand.path).exists();
        if !same_file {
            continue;
        }
        let proven = if cand.size != f.stamp.size {
            false
        } else if !f.stamp.moved_from(&cand.stamp()) {
            true
        } else {
            let journal = store.proof(cand.id)?;
            crate::identity::proof::rebuild(&f.path, &journal, journal.len, false)?.is_ok()
        };
        return Ok(if proven {
            Decision::Resume(cand.id)
        } else {
            Decision::Restart(cand.id)
        });
    }
    if again {
        return Ok(Decision::New);
    }
    let done = store.completed_candidates(&f.fingerprint, destination, f.stamp.size)?;
    if done.is_empty() {
        return Ok(Decision::New);
    }
    let (hash, _) = crate::identity::proof::hash_file(&f.path)?;
    Ok(done
        .iter()
        .find(|c| c.content_hash.as_deref() == Some(hash.as_str()))
        .map_or(Decision::New, |c| Decision::AlreadyUploaded(c.id)))
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

    /// Enqueues files and folders. Invalid endpoint, metadata or headers reject the whole
    /// request; a bad file only rejects itself.
    pub async fn add(&self, mut req: AddRequest) -> Result<Vec<AddResult>> {
        req.endpoint = client::parse_endpoint(&req.endpoint)?.to_string();
        for k in req.metadata.keys() {
            protocol::validate_metadata_key(k)?;
        }
        client::header_map(&req.headers)?;
        if req.chunk_size == Some(0) {
            return Err(Error::Protocol("chunk size must be at least 1 byte".into()));
        }
        if let Some(url) = &req.upload_url {
            client::parse_endpoint(url).map_err(|e| Error::UploadUrl(e.to_string()))?;
        }
        // Headers of uploads without a profile are kept per row: their secrets go to the
        // keyring now, once for the whole request.
        let row_headers = if req.profile_id.is_some() {
            Default::default()
        } else {
            let owner = format!("request:{:016x}", rand::random::<u64>());
            self.secrets
                .seal(&owner, &req.headers, &crate::redact::is_sensitive)?
        };
        // The drop is journalled until every file of it is in the queue: a crash during a
        // long walk loses nothing (the next start takes it in again).
        let intake = match req.upload_url {
            Some(_) => None,
            None => {
                let kept = AddRequest {
                    headers: row_headers.clone(),
                    ..req.clone()
                };
                // A path the journal cannot hold as text (not UTF-8) only costs the replay
                // after a crash: the files go ahead all the same.
                match serde_json::to_string(&kept) {
                    Ok(json) => Some(self.store.begin_intake(&json)?),
                    Err(e) => {
                        tracing::warn!(error = %e, "this drop cannot be journalled for a replay after a crash");
                        None
                    }
                }
            }
        };
        let results = self.take_in(req, row_headers).await?;
        if let Some(id) = intake {
            self.store.end_intake(id)?;
        }
        Ok(results)
    }

    /// Takes in again the drops a crash interrupted while they were walked (files already
    /// in the queue are recognised and not added twice). The app calls it at start, the
    /// CLI's `resume` too.
    /// A drop whose walk began this often without ending (the process stopped each time,
    /// a crash perhaps) is not walked again: it is named instead.
    pub async fn resume_intake(&self) -> Result<Vec<AddResult>> {
        let mut results = Vec::new();
        for (id, json, tries) in self.store.pending_intake()? {
            match serde_json::from_str::<AddRequest>(&json) {
                Ok(req) if tries >= INTAKE_TRIES => {
                    tracing::warn!(
                        tries,
                        paths = req.paths.len(),
                        "a drop whose walk never ended is given up"
                    );
                    let shown = match req.paths.as_slice() {
                        [one] => one.display().to_string(),
                        [first, ..] => {
                            format!("{} (and {} more)", first.display(), req.paths.len() - 1)
                        }
                        [] => "a drop".into(),
                    };
                    results.push(AddResult::Rejected {
                        path: shown,
                        error: format!(
                            "Tusker stopped {tries} times while taking this in (it may have crashed on it): not taken in again. Files already in the queue stay; add the rest again"
                        ),
                    });
                }
                Ok(req) => {
                    tracing::info!(
                        paths = req.paths.len(),
                        tries,
                        "taking in a drop a crash interrupted"
                    );
                    self.store.count_intake_try(id)?;
                    let headers = req.headers.clone();
                    results.extend(self.take_in(req, headers).await?);
                }
                Err(e) => tracing::warn!(error = %e, "an interrupted drop cannot be read; dropped"),
            }
            self.store.end_intake(id)?;
        }
        Ok(results)
    }

    /// Walks a request's paths and enqueues the files, batch by batch.
    async fn take_in(
        &self,
        mut req: AddRequest,
        row_headers: crate::redact::Headers,
    ) -> Result<Vec<AddResult>> {
        let paths = req.paths.clone();
        let store = self.store.clone();
        req.destination =
            store.destination(&req.endpoint, &req.metadata, req.profile_id, &row_headers)?;
        // Into a given upload URL the file goes as it is: no resume or skip elsewhere.
        let (destination, again) = (
            req.destination.clone(),
            req.again || req.upload_url.is_some(),
        );
        let one_url = req.upload_url.is_some();
        let walk = files::Walk {
            follow_top: req.examined.is_empty(),
            examined: std::mem::take(&mut req.examined),
        };
        // The walk and the fingerprints run on a blocking thread and reach the queue in
        // batches as they are made: the first files of a folder of 100,000 upload while the
        // rest is still being read. The first batch is small (a fast first byte), later
        // ones grow (fewer journal transactions).
        type Decided = std::result::Result<(PreparedFile, Decision), (PathBuf, Error)>;
        let (batch_tx, mut batches) = mpsc::channel::<Vec<Decided>>(4);
        let walker = tokio::task::spawn_blocking(move || {
            let mut batch = Vec::new();
            let mut limit = if one_url { usize::MAX } else { 16 };
            let mut since = Instant::now();
            files::prepare_each(&paths, &walk, &mut |p| {
                batch.push(
                    p.and_then(|f| match decide(&store, &destination, again, &f) {
                        Ok(d) => Ok((f, d)),
                        Err(e) => Err((f.path, e)),
                    }),
                );
                if batch.len() >= limit || (!one_url && since.elapsed() >= ADD_BATCH_TIME) {
                    limit = (limit * 4).min(ADD_BATCH_MAX);
                    since = Instant::now();
                    return batch_tx.blocking_send(std::mem::take(&mut batch)).is_ok();
                }
                true
            });
            if !batch.is_empty() {
                let _ = batch_tx.blocking_send(batch);
            }
        });
        let mut results = Vec::new();
        let mut files = 0usize;
        while let Some(batch) = batches.recv().await {
            files += batch.len();
            if one_url && files != 1 {
                return Err(Error::UploadUrl(format!(
                    "one upload URL takes one file, not {files}"
                )));
            }
            let mut rejected = Vec::new();
            let mut ok = Vec::new();
            for p in batch {
                match p {
                    Ok(f) => ok.push(f),
                    Err((path, e)) => {
                        tracing::warn!(path = %path.display(), error = %e, "not enqueued");
                        rejected.push(AddResult::Rejected {
                            path: path.display().to_string(),
                            error: e.to_string(),
                        })
                    }
                }
            }
            if !ok.is_empty() {
                let (req, headers) = (req.clone(), row_headers.clone());
                results.extend(self.call(|tx| Cmd::Add(ok, req, headers, tx)).await??);
            }
            results.extend(rejected);
        }
        walker
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        if one_url && files != 1 {
            return Err(Error::UploadUrl(format!(
                "one upload URL takes one file, not {files}"
            )));
        }
        Ok(results)
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

struct Entry {
    row: Row,
    /// The running worker and its journal epoch.
    task: Option<(i64, JoinHandle<()>)>,
    /// Connections the running worker may open (parts of a large file).
    slots: usize,
    /// Restored from the journal but not to be started until resumed.
    dormant: bool,
    /// The path the running worker was started with (a rename after it is followed).
    run_path: Option<Box<str>>,
}

struct Actor {
    ctx: UploadCtx,
    concurrency: usize,
    /// Boxed: the map's power-of-two table then holds pointers, not whole entries (it has
    /// room for up to twice as many as it holds).
    entries: HashMap<UploadId, Box<Entry>>,
    /// The folders, endpoints and profile names of the rows, each kept once.
    shared: Interner,
    order: Vec<UploadId>,
    dirty: HashSet<UploadId>,
    removed: Vec<UploadId>,
    events: broadcast::Sender<Arc<EventBatch>>,
    worker_tx: mpsc::UnboundedSender<(UploadId, i64, WorkerEvent)>,
    watcher: Option<FileWatcher>,
    /// Uploads whose folder is watched (every unfinished one).
    watched: HashSet<UploadId>,
    /// A worker finished: schedule once the reports already waiting are read.
    schedule_soon: bool,
    /// Hashes of every path an entry ever had: a path not here is in no entry, so adding it
    /// needs no journal lookup for an upload of the same path (100,000 dropped files).
    paths_seen: HashSet<u64>,
    /// Connections the running workers may open (a large file sent as parts takes one per
    /// part): the concurrency limit counts these.
    running: usize,
    /// No startable upload sits before this index of `order`, so scheduling does not rescan
    /// a long finished head of the queue after every completion (10,000 small files made
    /// that quadratic). Reset to 0 whenever something may have become startable.
    sched_hint: usize,
    /// Uploads whose latest state the journal refused because another program held its
    /// lock; written again on a later tick, so the journal catches up with the queue.
    unjournalled: HashSet<UploadId>,
    /// While another program holds the journal's lock: no new worker starts before this
    /// (starting one needs a journal write), and unjournalled states wait until then too.
    journal_busy_until: Option<Instant>,
    /// Requests the queue sends on its own (terminations): tracked so that shutdown waits
    /// for them instead of cutting them off.
    background: tokio::task::JoinSet<()>,
    /// When each profile was last saved, to notice edits by another process (the CLI
    /// beside the app).
    profile_versions: HashMap<crate::profiles::profile::ProfileId, i64>,
    profiles_checked: Instant,
}

fn path_hash(path: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(path)
}

/// How often the journal's profiles are compared with what the queue last saw.
const PROFILE_POLL: Duration = Duration::from_secs(1);

/// A change the watcher saw, with what the disk says of it now, looked at off the engine's
/// thread (a stat on a hung network mount must not hold the queue).
enum Looked {
    Renamed {
        from: PathBuf,
        to: PathBuf,
    },
    Modified {
        path: PathBuf,
        size: SizeNow,
    },
    /// Something stands at the path again (or the disk did not say).
    Removed {
        path: PathBuf,
        still_there: bool,
    },
}

/// What a written file's size is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SizeNow {
    Bytes(u64),
    /// Gone, or not a regular file any more (a link, say).
    NotAFile,
    /// The disk did not answer in time.
    Unknown,
}

impl Looked {
    /// What the disk says of `change` now (a stat each).
    fn look(change: FsChange) -> Looked {
        match change {
            FsChange::Renamed { from, to } => Looked::Renamed { from, to },
            FsChange::Modified(path) => Looked::Modified {
                size: match crate::identity::fingerprint::stamp(&path) {
                    Ok(s) => SizeNow::Bytes(s.size),
                    Err(_) => SizeNow::NotAFile,
                },
                path,
            },
            FsChange::Removed(path) => Looked::Removed {
                still_there: std::fs::symlink_metadata(&path).is_ok(),
                path,
            },
        }
    }

    /// `change` when the disk did not answer: nothing is decided on it (a rename is still
    /// followed, a write is proven by the worker, a delete waits for the worker to see it).
    fn unknown(change: FsChange) -> Looked {
        match change {
            FsChange::Renamed { from, to } => Looked::Renamed { from, to },
            FsChange::Modified(path) => Looked::Modified {
                path,
                size: SizeNow::Unknown,
            },
            FsChange::Removed(path) => Looked::Removed {
                path,
                still_there: true,
            },
        }
    }
}

/// Looks at the watcher's changes in order, on the blocking pool with a time limit, and hands
/// them to the queue.
async fn look_at_changes(
    mut changes: mpsc::UnboundedReceiver<Vec<FsChange>>,
    looked: mpsc::UnboundedSender<Vec<Looked>>,
) {
    while let Some(batch) = changes.recv().await {
        let kept = batch.clone();
        let seen = crate::upload::source::blocking_file("the watched files", move || {
            Ok(batch.into_iter().map(Looked::look).collect::<Vec<_>>())
        })
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "changes to watched files could not be looked at");
            kept.into_iter().map(Looked::unknown).collect()
        });
        if looked.send(seen).is_err() {
            return;
        }
    }
}

/// Walks a drop may begin (the first and two after interruptions) before it is given up.
const INTAKE_TRIES: u32 = 3;

/// How long shutdown waits for terminations still on their way to the server.
const BACKGROUND_GRACE: Duration = Duration::from_secs(5);

/// How long to leave a journal held by another program alone before writing again: the
/// journal's own pause, after which its writes wait for the lock again.
const JOURNAL_BUSY_PAUSE: Duration = crate::journal::BUSY_PAUSE;

impl Actor {
    /// Parts of completed uploads that a crash left on the server (between the completion
    /// and their termination) are terminated now.
    fn clean_leftover_parts(&mut self) -> Result<()> {
        let mut by_upload: HashMap<UploadId, Vec<String>> = HashMap::new();
        for (id, url) in self.ctx.store.leftover_parts()? {
            by_upload.entry(id).or_default().push(url);
        }
        for (id, urls) in by_upload {
            let rec = self.ctx.store.get(id)?;
            self.ctx.store.drop_parts(id)?;
            tracing::info!(
                id,
                parts = urls.len(),
                "terminating the parts of a completed upload"
            );
            self.delete_in_background(rec, urls);
        }
        Ok(())
    }

    fn restore(&mut self, auto_resume: bool) -> Result<()> {
        for rec in self.ctx.store.list_queue()? {
            let mut state = rec.state;
            // A worker that journalled the final offset and content hash completed its upload
            // even if the process died before the state was written. Any other run a crash
            // or kill left mid-flight is simply queued again.
            let event = if rec.content_hash.is_some() {
                Event::Completed
            } else {
                Event::Interrupted
            };
            if let Some(to) = lifecycle::transition(state, event).filter(|to| *to != state) {
                state = self.ctx.store.set_state(rec.id, to, None)?;
            }
            let mut row = Row::from_record(&rec, &mut self.shared);
            row.state = state;
            if state == UploadState::Completed {
                row.acked = row.size;
                row.set_upload_url(None);
            }
            self.order.push(rec.id);
            self.saw_path(&rec.path);
            if state.is_unfinished() {
                self.watch(rec.id, &rec.path);
            }
            self.entries.insert(
                rec.id,
                Box::new(Entry {
                    row,
                    task: None,
                    slots: 0,
                    dormant: !auto_resume && state == UploadState::Queued,
                    run_path: None,
                }),
            );
        }
        Ok(())
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Cmd>,
        mut wrx: mpsc::UnboundedReceiver<(UploadId, i64, WorkerEvent)>,
        mut frx: mpsc::UnboundedReceiver<Vec<Looked>>,
    ) {
        let mut tick = tokio::time::interval(EVENT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.schedule();
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Shutdown(reply)) => {
                        self.shutdown();
                        self.finish_background().await;
                        self.flush();
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                    None => {
                        // Every handle is gone: stop like a quit.
                        self.shutdown();
                        self.finish_background().await;
                        return;
                    }
                },
                Some(_) = self.background.join_next(), if !self.background.is_empty() => {}
                Some((id, epoch, ev)) = wrx.recv() => {
                    self.worker_event(id, epoch, ev);
                    // Reports that came together are taken together, so that the uploads the
                    // finished ones make room for start in one journal transaction.
                    for _ in 0..64 {
                        let Ok((id, epoch, ev)) = wrx.try_recv() else { break };
                        self.worker_event(id, epoch, ev);
                    }
                    if std::mem::take(&mut self.schedule_soon) {
                        self.schedule();
                    }
                }
                Some(changes) = frx.recv() => self.fs_changes(changes),
                _ = tick.tick() => {
                    self.poll_profiles();
                    self.journal_catch_up();
                    self.sample_speeds();
                    self.flush();
                }
            }
        }
    }

    /// Notices profiles saved by another process.
    fn poll_profiles(&mut self) {
        if self.profiles_checked.elapsed() < PROFILE_POLL {
            return;
        }
        self.profiles_checked = Instant::now();
        let Ok(now) = self.ctx.store.profile_versions() else {
            return;
        };
        let changed: Vec<_> = now
            .iter()
            .filter(|(id, v)| self.profile_versions.get(id) != Some(v))
            .map(|(id, _)| *id)
            .collect();
        if now != self.profile_versions {
            self.ctx.store.forget_profiles();
        }
        self.profile_versions = now;
        for id in changed {
            self.profile_changed(id);
        }
    }

    /// New credentials: fetched headers are forgotten and uploads waiting for sign-in go on.
    fn profile_changed(&mut self, profile: crate::profiles::profile::ProfileId) {
        tracing::info!(profile, "profile saved; uploads waiting for sign-in go on");
        self.ctx.command_headers.forget(profile);
        // Read once: its name for renamed rows, its host lists for rows that asked.
        let saved = self.ctx.store.profile(profile).ok().flatten();
        let name = saved.as_ref().map(|p| p.name.clone());
        let mut renamed = Vec::new();
        for (id, e) in self.entries.iter_mut() {
            if e.row.profile_id() == Some(profile)
                && name.is_some()
                && e.row.profile() != name.as_deref()
            {
                e.row.set_profile_name(name.as_deref(), &mut self.shared);
                renamed.push(*id);
            }
        }
        for id in renamed {
            self.mark(id);
        }
        let waiting: Vec<UploadId> = self
            .order
            .iter()
            .copied()
            .filter(|id| {
                self.entries.get(id).is_some_and(|e| {
                    e.row.profile_id() == Some(profile) && e.row.state == UploadState::NeedsSignIn
                })
            })
            .collect();
        for id in waiting {
            self.apply(id, Event::CredentialsChanged, None);
        }
        if let Some(p) = &saved {
            self.answer_hosts(p);
        }
        self.sched_hint = 0;
        self.schedule();
    }

    /// The server sends an upload to a host its profile does not allow: it fails, and
    /// unless the user already said no to that host, the row asks (the app shows the
    /// question; the CLI's message names the command).
    fn host_not_allowed(&mut self, id: UploadId, host: String, reason: Said) {
        let Some(profile_id) = self.entries.get(&id).map(|e| e.row.profile_id()) else {
            return;
        };
        let profile = profile_id.and_then(|p| self.ctx.store.profile(p).ok().flatten());
        let refused = profile.as_ref().is_some_and(|p| {
            p.refused_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&host))
        });
        let message = match &profile {
            Some(p) if refused => Said {
                text: format!(
                    "The server sends this upload to {host}, where you chose not to upload with profile {:?}",
                    p.name
                ),
                ..reason
            },
            Some(p) => {
                let allow = format!("allow it: tusker-cli profile allow-host {:?} {host}", p.name);
                Said {
                    text: format!("{} ({allow})", reason.text),
                    detail: format!("{} ({allow})", reason.detail),
                    ..reason
                }
            }
            None => reason,
        };
        tracing::warn!(id, %host, "the server sends the upload to a host the profile does not allow");
        self.apply(id, Event::Failed, Some(message));
        if profile.is_none() || refused {
            return;
        }
        if let Err(e) = self.ctx.store.set_asks_host(id, Some(&host)) {
            tracing::error!(id, error = %e, "journal write failed");
        }
        if let Some(e) = self.entries.get_mut(&id) {
            e.row.set_asks_host(Some(host));
        }
        self.mark(id);
    }

    /// After a profile changed: uploads that asked about a host it now allows go again;
    /// those asking about a host it now refuses stop asking.
    fn answer_hosts(&mut self, p: &crate::profiles::profile::Profile) {
        let profile = p.id;
        let listed =
            |list: &[String], host: &str| list.iter().any(|h| h.eq_ignore_ascii_case(host));
        let asking: Vec<(UploadId, String)> = self
            .order
            .iter()
            .filter_map(|id| {
                let e = self.entries.get(id)?;
                (e.row.profile_id() == Some(profile) && e.row.state == UploadState::Failed)
                    .then(|| Some((*id, e.row.asks_host()?.to_string())))
                    .flatten()
            })
            .collect();
        for (id, host) in asking {
            if listed(&p.allowed_hosts, &host) {
                tracing::info!(id, %host, "host allowed; the upload goes again");
                let _ = self.retry(id);
            } else if listed(&p.refused_hosts, &host) {
                let _ = self.ctx.store.set_asks_host(id, None);
                if let Some(e) = self.entries.get_mut(&id) {
                    e.row.set_asks_host(None);
                }
                self.mark(id);
            }
        }
    }

    /// Lets terminations on their way finish (bounded: a server that does not answer must
    /// not hold a quit).
    async fn finish_background(&mut self) {
        let all = async { while self.background.join_next().await.is_some() {} };
        if tokio::time::timeout(BACKGROUND_GRACE, all).await.is_err() {
            tracing::warn!(
                left = self.background.len(),
                "terminations still unanswered at shutdown; those uploads are left to expire"
            );
            self.background.abort_all();
        }
    }

    fn mark(&mut self, id: UploadId) {
        self.dirty.insert(id);
    }

    fn flush(&mut self) {
        if self.dirty.is_empty() && self.removed.is_empty() {
            return;
        }
        let mut changed: Vec<UploadView> = self
            .dirty
            .drain()
            .filter_map(|id| self.entries.get(&id).map(|e| e.row.view()))
            .collect();
        changed.sort_by_key(|v| v.position);
        self.dirty.shrink_to(1024);
        let batch = EventBatch {
            changed,
            removed: std::mem::take(&mut self.removed),
            reset: false,
        };
        let _ = self.events.send(Arc::new(batch));
    }

    fn sample_speeds(&mut self) {
        let now = Instant::now();
        let mut touched = Vec::new();
        for (id, e) in self.entries.iter_mut() {
            if e.row.state == UploadState::Uploading && e.row.sample_speed(now) {
                touched.push(*id);
            }
        }
        for id in touched {
            self.mark(id);
        }
    }

    fn watch(&mut self, id: UploadId, path: &str) {
        if let Some(w) = self.watcher.as_mut() {
            if self.watched.insert(id) {
                w.watch(std::path::Path::new(path));
            }
        }
    }

    fn unwatch(&mut self, id: UploadId, path: &str) {
        if let Some(w) = self.watcher.as_mut() {
            if self.watched.remove(&id) {
                w.unwatch(std::path::Path::new(path));
                if self.watched.is_empty() {
                    // A finished drop of 100,000 files leaves a table for 131,072.
                    self.watched.shrink_to_fit();
                }
            }
        }
    }

    /// Unfinished uploads at `path`.
    fn ids_at(&self, path: &std::path::Path) -> Vec<UploadId> {
        let p = path.display().to_string();
        self.order
            .iter()
            .copied()
            .filter(|id| {
                self.entries
                    .get(id)
                    .is_some_and(|e| e.row.is_at(&p) && e.row.state.is_unfinished())
            })
            .collect()
    }

    /// Reacts to files changing under the queue while it runs.
    fn fs_changes(&mut self, changes: Vec<Looked>) {
        for change in changes {
            match change {
                Looked::Renamed { from, to } => {
                    for id in self.ids_at(&from) {
                        self.follow_rename(id, &to);
                    }
                }
                Looked::Modified { path: p, size } => {
                    for id in self.ids_at(&p) {
                        self.file_modified(id, size);
                    }
                }
                Looked::Removed {
                    path: p,
                    still_there,
                } => {
                    if still_there {
                        continue;
                    }
                    for id in self.ids_at(&p) {
                        tracing::info!(id, path = %p.display(), "file deleted or moved away");
                        self.stop(id);
                        self.apply(
                            id,
                            Event::FileGone,
                            Some(Said::of(&Error::FileMissing(format!(
                                "{} was deleted or moved away",
                                p.display()
                            )))),
                        );
                    }
                }
            }
        }
        self.schedule();
    }

    fn follow_rename(&mut self, id: UploadId, to: &std::path::Path) {
        let Some(old) = self.entries.get(&id).map(|e| e.row.path()) else {
            return;
        };
        let new = to.display().to_string();
        let name = to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| new.clone());
        // The stamp stays the journal's: the next run proves the content before it appends
        // (a rename may come with an edit).
        if let Err(e) = self.ctx.store.set_path(id, &new, &name) {
            tracing::error!(id, error = %e, "journal write failed");
            return;
        }
        tracing::info!(id, from = %old, to = %new, "file renamed; the upload follows it");
        self.unwatch(id, &old);
        self.watch(id, &new);
        self.saw_path(&new);
        if let Some(e) = self.entries.get_mut(&id) {
            e.row.set_path(&new, &name, &mut self.shared);
        }
        self.mark(id);
        // A running worker goes on: its request reads through the open file, and before the
        // next one it finds the new path in the journal and proves the moved stamp (a
        // stopped request could leave bytes on the server that nothing proves). If the
        // upload already stopped because the old name vanished (the worker can beat the
        // watcher), it is found again.
        self.apply(id, Event::FileFound, None);
    }

    /// A write to a queued file. A new size cannot be this upload's content any more: the
    /// upload stops at once. The same size may be a touch or an edit past what the server
    /// holds: a running worker proves the sent bytes before its next request (`file
    /// changed` if they differ), a waiting upload when it starts.
    fn file_modified(&mut self, id: UploadId, size: SizeNow) {
        let Ok(rec) = self.ctx.store.get(id) else {
            return;
        };
        // Unknown (the disk did not answer in time): the worker proves before it goes on.
        let same_size = match size {
            SizeNow::Bytes(s) => s == rec.size,
            SizeNow::NotAFile => false,
            SizeNow::Unknown => true,
        };
        if same_size {
            tracing::info!(id, path = %rec.path, "file written to; the upload proves what the server holds before it goes on");
            return;
        }
        let was_running = self.stop(id);
        if rec.upload_url.is_some() {
            tracing::info!(id, path = %rec.path, "file modified after bytes were sent");
            self.apply(
                id,
                Event::FileChanged,
                Some(Said::of(&Error::FileChanged(format!(
                    "{} was modified during the upload",
                    rec.path
                )))),
            );
        } else if was_running {
            // Nothing sent yet: the next run finds the new size and says `file changed`;
            // Restart (or adding the file again) takes the new content.
            self.apply(id, Event::Interrupted, None);
        }
    }

    /// The state `event` would move `id` to, if it applies (see [`lifecycle::transition`]).
    fn would(&self, id: UploadId, event: Event) -> Option<UploadState> {
        let from = self.entries.get(&id)?.row.state;
        lifecycle::transition(from, event)
    }

    /// The one way an upload's state changes: the lifecycle decides, the journal records,
    /// the view shows. Returns the state after, or `None` when the event does not apply
    /// (nothing changes then).
    fn apply(&mut self, id: UploadId, event: Event, error: Option<Said>) -> Option<UploadState> {
        let (from, shown_error) = self
            .entries
            .get(&id)
            .map(|e| (e.row.state, e.row.error().map(str::to_string)))?;
        let Some(to) = lifecycle::transition(from, event) else {
            tracing::debug!(id, ?from, ?event, "event does not apply");
            return None;
        };
        let text = error.as_ref().map(|e| e.text.clone());
        if to == from && text == shown_error {
            self.mark(id);
            return Some(to);
        }
        match self.journal_state(id, to, error.as_ref()) {
            // The worker journalled completion a moment ago (its report still queued).
            Some(UploadState::Completed) if to != UploadState::Completed => {
                return self.apply(id, Event::Completed, None);
            }
            _ => {
                self.show_state(id, to, text);
                if let (Some(e), Some(entry)) = (&error, self.entries.get_mut(&id)) {
                    entry
                        .row
                        .set_error_code(Some(e.code), Some(e.detail.clone()));
                }
            }
        }
        Some(to)
    }

    /// A worker finished: its last journal write recorded the completion (with the content
    /// hash), so only the queue's side is left.
    fn completed(&mut self, id: UploadId) {
        let Some(from) = self.entries.get(&id).map(|e| e.row.state) else {
            return;
        };
        if lifecycle::transition(from, Event::Completed).is_none() {
            tracing::debug!(id, ?from, "completion does not apply");
            return;
        }
        self.show_state(id, UploadState::Completed, None);
    }

    /// The queue's side of a state change (view, watches, scheduling hint), for a state the
    /// journal already holds.
    fn show_state(&mut self, id: UploadId, state: UploadState, error: Option<String>) {
        if state == UploadState::Queued {
            self.sched_hint = 0;
        }
        if let Some(path) = self.entries.get(&id).map(|e| e.row.path()) {
            if state.is_unfinished() {
                self.watch(id, &path);
            } else {
                self.unwatch(id, &path);
            }
        }
        if let Some(e) = self.entries.get_mut(&id) {
            e.row.show_state(state, error);
        }
        self.mark(id);
    }

    /// Records a state in the journal. A journal locked by another program is not an
    /// error of the upload: the state is written again once the lock is gone.
    /// Returns the state the journal holds now, if the write went through.
    fn journal_state(
        &mut self,
        id: UploadId,
        state: UploadState,
        error: Option<&Said>,
    ) -> Option<UploadState> {
        match self.ctx.store.set_state_said(id, state, error) {
            Ok(held) => {
                self.unjournalled.remove(&id);
                Some(held)
            }
            Err(Error::JournalBusy(e)) => {
                tracing::warn!(id, error = %e, "journal locked by another program; state kept for later");
                self.unjournalled.insert(id);
                self.journal_busy_until = Some(Instant::now() + JOURNAL_BUSY_PAUSE);
                None
            }
            Err(e) => {
                tracing::error!(id, error = %e, "journal write failed");
                None
            }
        }
    }

    /// After a pause for a journal held by another program: writes the states it refused,
    /// then starts what could not start.
    fn journal_catch_up(&mut self) {
        match self.journal_busy_until {
            Some(t) if Instant::now() >= t => self.journal_busy_until = None,
            _ => return,
        }
        if !self.journal_pending() {
            return;
        }
        self.sched_hint = 0;
        self.schedule();
    }

    /// Writes the states the journal refused; false when it is still locked (what is left
    /// stays pending for the next round).
    fn journal_pending(&mut self) -> bool {
        let ids: Vec<UploadId> = self.unjournalled.iter().copied().collect();
        for id in ids {
            let Some((state, error)) = self.entries.get(&id).map(|e| (e.row.state, e.row.said()))
            else {
                self.unjournalled.remove(&id);
                continue;
            };
            self.journal_state(id, state, error.as_ref());
            if self.unjournalled.contains(&id) {
                return false;
            }
        }
        true
    }

    /// Starts queued uploads in queue order up to the concurrency limit, which counts
    /// connections: a file sent as 4 parts takes 4. An upload that needs more connections
    /// than are free waits for them, and so does the queue behind it (order is kept).
    fn schedule(&mut self) {
        let mut free = self.concurrency.saturating_sub(self.running);
        if free == 0 || self.journal_busy_until.is_some() {
            return;
        }
        let mut i = self.sched_hint.min(self.order.len());
        let mut candidates = Vec::new();
        while i < self.order.len() && free > 0 {
            let id = self.order[i];
            if self.entries.get(&id).is_some_and(|e| {
                e.row.state == UploadState::Queued && !e.dormant && e.task.is_none()
            }) {
                let slots = self.slots_for(id);
                if slots > free {
                    break;
                }
                free -= slots;
                candidates.push((id, slots));
            }
            i += 1;
        }
        // Every startable upload before `i` is started below.
        self.sched_hint = i;
        let starts: Vec<(UploadId, usize, UploadState)> = candidates
            .into_iter()
            .filter_map(|(id, slots)| Some((id, slots, self.would(id, Event::Start)?)))
            .collect();
        if starts.is_empty() {
            return;
        }
        // One journal transaction for all of them: a new epoch, the state, the record.
        let begun = self.ctx.store.begin_runs(
            &starts
                .iter()
                .map(|&(id, _, state)| (id, state))
                .collect::<Vec<_>>(),
        );
        let begun: Vec<std::result::Result<(i64, UploadRecord), Said>> = match begun {
            Ok(each) => each
                .into_iter()
                .map(|r| r.map_err(|e| Said::of(&e)))
                .collect(),
            Err(Error::JournalBusy(e)) => {
                tracing::warn!(error = %e, "journal locked by another program; not starting yet");
                self.journal_busy_until = Some(Instant::now() + JOURNAL_BUSY_PAUSE);
                // These stay queued for later.
                self.sched_hint = 0;
                return;
            }
            Err(e) => starts.iter().map(|_| Err(Said::of(&e))).collect(),
        };
        let mut refused = false;
        for ((id, slots, state), begun) in starts.into_iter().zip(begun) {
            match begun {
                Ok((epoch, rec)) => self.start(id, slots, state, epoch, rec),
                // It failed without taking its slot (a full disk under the journal): the
                // next ones get the slot now, or nothing would ever start them.
                Err(e) => {
                    tracing::error!(id, error = %e, "journal write failed; not starting");
                    self.apply(id, Event::Failed, Some(e));
                    refused = true;
                }
            }
        }
        if refused {
            self.schedule();
        }
    }

    /// Connections an upload's next run takes: one, or one per part for a file that goes
    /// (or went) as parts, within the concurrency limit.
    fn slots_for(&self, id: UploadId) -> usize {
        let settings = &self.ctx.settings;
        let Some(e) = self.entries.get(&id) else {
            return 1;
        };
        if e.row.size
            < settings
                .parts_min_size
                .max(crate::identity::proof::BLOCK + 1)
        {
            return 1;
        }
        let want = match self.ctx.store.parts(id) {
            Ok(parts) if !parts.is_empty() => parts.len(),
            _ if settings.parts <= 1 || e.row.has_upload_url() => 1,
            // Before OPTIONS was asked, assume the server offers concatenation.
            _ => match self.ctx.caps.offers_parts(&e.row.endpoint) {
                Some(false) => 1,
                _ => settings.parts,
            },
        };
        want.min(self.concurrency).max(1)
    }

    /// Spawns the worker of an upload whose run the journal has begun ([`Actor::schedule`]
    /// begins them together).
    fn start(
        &mut self,
        id: UploadId,
        slots: usize,
        state: UploadState,
        epoch: i64,
        rec: UploadRecord,
    ) {
        // The journal is the truth about the server upload. A stopped worker may have
        // journalled a new URL (or progress) whose event then arrived too late and was
        // dropped as stale; a worker that resumes it sends no new URL event, so take the
        // journal's word now (the model test found completed uploads without a URL).
        self.unjournalled.remove(&id);
        if let Some(e) = self.entries.get_mut(&id) {
            e.row.set_upload_url(rec.upload_url.clone());
            e.row.set_recreated(rec.recreated);
            e.row.acked = rec.acked_offset;
        }
        self.show_state(id, state, None);
        let gen = epoch;
        let ctx = UploadCtx {
            connections: slots,
            ..self.ctx.clone()
        };
        let reporter = Reporter {
            id,
            epoch,
            tx: self.worker_tx.clone(),
        };
        let done = self.worker_tx.clone();
        let run_path = rec.path.clone();
        let handle = tokio::spawn(async move {
            // A bug that panics inside one upload must not leave it "uploading" forever and
            // hold its slot: it ends as failed, the rest of the queue goes on.
            use futures_util::FutureExt;
            let run = std::panic::AssertUnwindSafe(upload::run(ctx, id, reporter, rec));
            let outcome = run.catch_unwind().await.unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(id, panic = %msg, "upload worker panicked");
                upload::Outcome::Failed(Said::from(format!("internal error: {msg}")))
            });
            let _ = done.send((id, gen, WorkerEvent::Finished(outcome)));
        });
        if let Some(e) = self.entries.get_mut(&id) {
            e.task = Some((gen, handle));
            e.slots = slots;
            e.run_path = Some(run_path.into());
            self.running += slots;
        }
    }

    /// Aborts a running worker, if any, and closes its epoch so that a write it may still be
    /// making on another thread is refused. Returns whether one ran.
    fn stop(&mut self, id: UploadId) -> bool {
        match self.entries.get_mut(&id).and_then(|e| e.task.take()) {
            Some((_, h)) => {
                self.running -= self.entries.get(&id).map_or(1, |e| e.slots);
                h.abort();
                if let Err(e) = self.ctx.store.bump_epoch(id) {
                    tracing::error!(id, error = %e, "journal write failed");
                }
                true
            }
            None => false,
        }
    }

    fn finished(&mut self, id: UploadId, gen: i64, outcome: Outcome) {
        let current = self
            .entries
            .get(&id)
            .and_then(|e| e.task.as_ref())
            .is_some_and(|(g, _)| *g == gen);
        if !current {
            return;
        }
        if let Some(e) = self.entries.get_mut(&id) {
            if e.task.take().is_some() {
                self.running -= e.slots;
            }
        }
        // Known without a look at the disk: the watcher moved the row to a new path after
        // the worker took the old one.
        let moved_on = matches!(outcome, Outcome::FileMissing(_))
            && self.entries.get_mut(&id).is_some_and(|e| {
                e.run_path
                    .take()
                    .is_some_and(|started| *started != *e.row.path())
            });
        match outcome {
            Outcome::Completed => {
                tracing::info!(id, "upload completed");
                self.completed(id);
            }
            // The file vanished from the path the worker had, but the watcher followed it to
            // a new one (the rename raced the worker): go on from there.
            Outcome::FileMissing(_) if moved_on => {
                self.apply(id, Event::Interrupted, None);
            }
            Outcome::FileMissing(e) => {
                self.apply(id, Event::FileGone, Some(e));
            }
            Outcome::FileChanged(e) => {
                self.apply(id, Event::FileChanged, Some(e));
            }
            Outcome::Failed(e) => {
                self.apply(id, Event::Failed, Some(e));
            }
            Outcome::NeedsSignIn(e) => {
                tracing::warn!(id, reason = %e, "upload waits for new credentials");
                self.apply(id, Event::SignInNeeded, Some(e));
            }
            Outcome::AsksHost { host, reason } => self.host_not_allowed(id, host, reason),
        }
        self.schedule_soon = true;
    }

    fn worker_event(&mut self, id: UploadId, epoch: i64, ev: WorkerEvent) {
        let live = self
            .entries
            .get(&id)
            .and_then(|e| e.task.as_ref())
            .is_some_and(|(g, _)| *g == epoch);
        if !live {
            return;
        }
        match ev {
            WorkerEvent::Finished(outcome) => self.finished(id, epoch, outcome),
            WorkerEvent::Progress { acked, in_flight } => {
                if let Some(e) = self.entries.get_mut(&id) {
                    if e.row.set_progress(acked, in_flight) {
                        self.dirty.insert(id);
                    }
                }
            }
            WorkerEvent::Regressed { from, to } => {
                if let Some(e) = self.entries.get_mut(&id) {
                    e.row.count_resent(from.saturating_sub(to));
                    e.row.restart_at(to);
                }
                self.mark(id);
            }
            WorkerEvent::StartingOver => self.forget_server_upload(id),
            WorkerEvent::Url { url, recreated } => {
                if let Some(e) = self.entries.get_mut(&id) {
                    e.row.set_upload_url(Some(url));
                    if recreated {
                        e.row.count_recreated();
                    }
                    e.row.restart_at(0);
                }
                self.mark(id);
            }
            WorkerEvent::Waiting { until_ms, reason } => {
                if self.apply(id, Event::Waiting, Some(reason)).is_some() {
                    if let Some(e) = self.entries.get_mut(&id) {
                        e.row.set_retry_at(until_ms);
                    }
                }
            }
            WorkerEvent::Uploading => {
                self.apply(id, Event::Working, None);
            }
            WorkerEvent::Note(note) => {
                if let Some(e) = self.entries.get_mut(&id) {
                    e.row.set_note(Some(note));
                }
                self.mark(id);
            }
        }
    }

    /// One method per command; those that can make uploads startable schedule after.
    fn command(&mut self, cmd: Cmd) {
        // Commands can make uploads startable anywhere in the queue (resume, reorder, ...).
        self.sched_hint = 0;
        match cmd {
            Cmd::Add(files, req, headers, reply) => {
                let _ = reply.send(self.add(files, req, headers));
            }
            Cmd::Pause(id, reply) => {
                let r = self.pause(id);
                self.schedule();
                let _ = reply.send(r);
            }
            Cmd::Resume {
                id,
                include_failed,
                reply,
            } => {
                let r = self.resume(id, include_failed);
                self.schedule();
                let _ = reply.send(r);
            }
            Cmd::Retry(id, reply) => {
                let r = self.retry(id);
                self.schedule();
                let _ = reply.send(r);
            }
            Cmd::Restart(id, file, reply) => {
                let r = self.restart(id, file, Event::Restart);
                self.schedule();
                let _ = reply.send(r);
            }
            Cmd::Cancel(id, reply) => {
                let r = self.cancel(id);
                self.schedule();
                let _ = reply.send(r);
            }
            Cmd::Remove(id, reply) => {
                let r = self.remove(id);
                self.schedule();
                let _ = reply.send(r);
            }
            Cmd::Reorder(id, index, reply) => {
                let _ = reply.send(self.reorder(id, index));
            }
            Cmd::Prune(cutoff, reply) => {
                let _ = reply.send(self.prune(cutoff));
            }
            Cmd::Clear(which, reply) => {
                let _ = reply.send(self.clear(which));
            }
            Cmd::SetConcurrency(n) => {
                self.concurrency = n;
                self.schedule();
            }
            Cmd::SetBandwidth(b) => self.ctx.limiter.set_rate(b),
            Cmd::SetParts { parts, min_size } => {
                let mut settings = (*self.ctx.settings).clone();
                settings.parts = parts;
                settings.parts_min_size = min_size;
                self.ctx.settings = Arc::new(settings);
            }
            Cmd::ProfileChanged(id) => {
                if let Ok(v) = self.ctx.store.profile_versions() {
                    self.profile_versions = v;
                }
                self.profile_changed(id);
            }
            Cmd::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Cmd::Shutdown(_) => unreachable!("handled in run"),
        }
    }

    /// One upload, or every one (`None`).
    fn ids(&self, id: Option<UploadId>) -> Vec<UploadId> {
        match id {
            Some(id) => vec![id],
            None => self.order.clone(),
        }
    }

    fn pause(&mut self, id: Option<UploadId>) -> Result<()> {
        let mut r = Ok(());
        for id in self.ids(id) {
            let Ok(from) = self.state_of(id) else {
                r = Err(Error::UnknownUpload(id));
                continue;
            };
            if self.would(id, Event::Pause).is_some_and(|to| to != from) {
                self.stop(id);
                self.apply(id, Event::Pause, None);
            }
        }
        r
    }

    fn resume(&mut self, id: Option<UploadId>, include_failed: bool) -> Result<()> {
        let mut r = Ok(());
        for id in self.ids(id) {
            let Some(e) = self.entries.get_mut(&id) else {
                r = Err(Error::UnknownUpload(id));
                continue;
            };
            e.dormant = false;
            self.apply(
                id,
                Event::Resume {
                    failed_too: include_failed,
                },
                None,
            );
        }
        r
    }

    fn retry(&mut self, id: UploadId) -> Result<()> {
        let e = self.entries.get_mut(&id).ok_or(Error::UnknownUpload(id))?;
        e.dormant = false;
        self.apply(id, Event::Retry, None);
        Ok(())
    }

    /// The state the queue shows for `id`.
    fn state_of(&self, id: UploadId) -> Result<UploadState> {
        self.entries
            .get(&id)
            .map(|e| e.row.state)
            .ok_or(Error::UnknownUpload(id))
    }

    fn cancel(&mut self, id: UploadId) -> Result<()> {
        let state = self.state_of(id)?;
        // A worker that finished a moment ago (its report still queued) left a complete
        // upload in the journal: that one is not cancelled. (The worker journals the
        // completion itself, empty files included.)
        if lifecycle::transition(state, Event::Cancel).is_some() && !self.journal_completed(id) {
            self.stop(id);
            let kept = self.terminate(id);
            self.apply(id, Event::Cancel, kept);
        }
        Ok(())
    }

    fn remove(&mut self, id: UploadId) -> Result<()> {
        let state = self.state_of(id)?;
        self.stop(id);
        if state.is_unfinished() {
            if let Some(kept) = self.terminate(id) {
                tracing::warn!(id, reason = %kept.text, "removed; its server upload was not terminated");
            }
        }
        let path = self.entries[&id].row.path();
        self.unwatch(id, &path);
        self.entries.remove(&id);
        self.order.retain(|x| *x != id);
        self.dirty.remove(&id);
        self.removed.push(id);
        self.ctx.store.delete(id)
    }

    fn reorder(&mut self, id: UploadId, index: usize) -> Result<()> {
        let pos = self
            .order
            .iter()
            .position(|x| *x == id)
            .ok_or(Error::UnknownUpload(id))?;
        self.order.remove(pos);
        let index = index.min(self.order.len());
        self.order.insert(index, id);
        self.renumber()
    }

    fn snapshot(&self) -> Vec<UploadView> {
        self.order
            .iter()
            .filter_map(|id| self.entries.get(id).map(|e| e.row.view()))
            .collect()
    }

    fn prune(&mut self, cutoff: i64) -> Result<usize> {
        let old: Vec<UploadId> = self
            .ctx
            .store
            .list_queue()?
            .into_iter()
            .filter(|r| {
                r.state == UploadState::Completed && r.completed_at.is_some_and(|t| t < cutoff)
            })
            .map(|r| r.id)
            .collect();
        self.clear_ids(old)
    }

    fn clear(&mut self, which: Option<UploadId>) -> Result<usize> {
        let ids: Vec<UploadId> = match which {
            Some(id) => {
                let e = self.entries.get(&id).ok_or(Error::UnknownUpload(id))?;
                if e.row.state == UploadState::Completed {
                    vec![id]
                } else {
                    vec![]
                }
            }
            None => self
                .order
                .iter()
                .copied()
                .filter(|id| {
                    self.entries
                        .get(id)
                        .is_some_and(|e| e.row.state == UploadState::Completed)
                })
                .collect(),
        };
        self.clear_ids(ids)
    }

    fn clear_ids(&mut self, ids: Vec<UploadId>) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.ctx.store.clear_completed(&ids)?;
        for id in &ids {
            self.entries.remove(id);
            self.dirty.remove(id);
            self.removed.push(*id);
        }
        self.order.retain(|id| self.entries.contains_key(id));
        Ok(ids.len())
    }

    fn renumber(&mut self) -> Result<()> {
        self.ctx.store.set_positions(&self.order)?;
        for (i, id) in self.order.clone().into_iter().enumerate() {
            if let Some(e) = self.entries.get_mut(&id) {
                if e.row.position != i as i64 + 1 {
                    e.row.position = i as i64 + 1;
                    self.dirty.insert(id);
                }
            }
        }
        Ok(())
    }

    fn add(
        &mut self,
        files: Vec<(PreparedFile, Decision)>,
        req: AddRequest,
        row_headers: crate::redact::Headers,
    ) -> Result<Vec<AddResult>> {
        // Results in the order of `files`; new uploads are journalled together, in one
        // transaction per batch, and their results filled in then.
        let mut out: Vec<Option<AddResult>> = Vec::with_capacity(files.len());
        let mut fresh: Vec<(usize, NewUpload)> = Vec::new();
        let mut fresh_paths: HashSet<String> = HashSet::new();
        for (f, decision) in files {
            let path = f.path.display().to_string();
            // The same path twice in one drop: the first must be in the queue before the
            // second is decided.
            if fresh_paths.contains(&path) {
                self.insert_fresh(&mut out, std::mem::take(&mut fresh))?;
                fresh_paths.clear();
            }
            // The queue may have moved on since the decision, made outside it: the upload
            // was removed, completed or cancelled meanwhile (a completed one is never
            // restarted: that would delete it on the server), or the same path was added
            // just before (twice in one drop).
            let decision = match decision {
                Decision::Resume(id) | Decision::Restart(id)
                    if !self
                        .entries
                        .get(&id)
                        .is_some_and(|e| e.row.state.is_unfinished())
                        || self.journal_completed(id) =>
                {
                    Decision::New
                }
                Decision::New if req.upload_url.is_some() => Decision::New,
                Decision::New => match self.unfinished_at(&req.destination, &f) {
                    Some(id) => Decision::Resume(id),
                    None => Decision::New,
                },
                d => d,
            };
            match decision {
                Decision::Resume(id) => {
                    self.readd(id, &f);
                    tracing::info!(id, path = %path, "re-added content resumes the previous upload");
                    out.push(Some(AddResult::Resumed { id, path }));
                }
                Decision::Restart(id) => {
                    tracing::info!(id, path = %path, "re-added file changed inside what the server holds; uploading it from the start");
                    // A URL a service created cannot start over: this file is named, the rest go on.
                    match self.restart(id, Some(f), Event::ReAddChanged) {
                        Ok(()) => out.push(Some(AddResult::Restarted { id, path })),
                        Err(e @ Error::UploadUrl(_)) => {
                            tracing::warn!(id, path = %path, error = %e, "not enqueued");
                            out.push(Some(AddResult::Rejected {
                                path,
                                error: e.to_string(),
                            }))
                        }
                        Err(e) => return Err(e),
                    }
                }
                Decision::AlreadyUploaded(id) => {
                    tracing::info!(id, path = %path, "content already uploaded (same hash); not sending it twice");
                    out.push(Some(AddResult::AlreadyUploaded { id, path }));
                }
                Decision::New => {
                    fresh_paths.insert(path.clone());
                    fresh.push((
                        out.len(),
                        NewUpload {
                            path,
                            name: f.name.clone(),
                            stamp: f.stamp,
                            fingerprint: f.fingerprint.clone(),
                            endpoint: req.endpoint.clone(),
                            metadata: req.metadata.clone(),
                            headers: row_headers.clone(),
                            profile_id: req.profile_id,
                            upload_url: req.upload_url.clone(),
                            chunk_size: req.chunk_size,
                            state: UploadState::Queued,
                        },
                    ));
                    out.push(None);
                }
            }
        }
        self.insert_fresh(&mut out, fresh)?;
        self.schedule();
        Ok(out.into_iter().flatten().collect())
    }

    /// Journals new uploads in one transaction and puts them in the queue.
    fn insert_fresh(
        &mut self,
        out: &mut [Option<AddResult>],
        fresh: Vec<(usize, NewUpload)>,
    ) -> Result<()> {
        if fresh.is_empty() {
            return Ok(());
        }
        let news: Vec<NewUpload> = fresh.iter().map(|(_, n)| n.clone()).collect();
        let recs = self.ctx.store.insert_many(&news)?;
        for ((slot, _), rec) in fresh.into_iter().zip(recs) {
            self.insert_entry(&rec);
            out[slot] = Some(AddResult::Added {
                id: rec.id,
                path: rec.path.clone(),
            });
        }
        Ok(())
    }

    /// Whether the journal holds the upload as completed (its worker may have finished a
    /// moment ago, its report still on the way).
    fn journal_completed(&self, id: UploadId) -> bool {
        self.ctx
            .store
            .get(id)
            .is_ok_and(|r| r.state == UploadState::Completed || r.content_hash.is_some())
    }

    fn saw_path(&mut self, path: &str) {
        self.paths_seen.insert(path_hash(path));
    }

    /// An unfinished upload of this very path to `destination` that the queue holds, if any.
    fn unfinished_at(&self, destination: &str, f: &PreparedFile) -> Option<UploadId> {
        let path = f.path.display().to_string();
        if !self.paths_seen.contains(&path_hash(&path)) {
            return None;
        }
        self.ctx
            .store
            .unfinished_candidates(&f.fingerprint, destination, f.stamp.size, &path)
            .ok()?
            .into_iter()
            .find(|c| {
                c.path == path
                    && c.state != UploadState::FileChanged
                    && self.entries.contains_key(&c.id)
            })
            .map(|c| c.id)
    }

    /// A re-added file continues its unfinished upload, from its new path if it moved.
    fn readd(&mut self, id: UploadId, f: &PreparedFile) {
        let path = f.path.display().to_string();
        let old = self.entries[&id].row.path();
        if old != path {
            if let Err(e) = self.ctx.store.set_path(id, &path, &f.name) {
                tracing::error!(id, error = %e, "journal write failed");
            }
            self.unwatch(id, &old);
            self.watch(id, &path);
        }
        self.saw_path(&path);
        if let Some(e) = self.entries.get_mut(&id) {
            e.row.set_path(&path, &f.name, &mut self.shared);
            e.dormant = false;
        }
        self.apply(id, Event::ReAdd, None);
    }

    fn insert_entry(&mut self, rec: &UploadRecord) {
        self.order.push(rec.id);
        self.saw_path(&rec.path);
        self.watch(rec.id, &rec.path);
        self.entries.insert(
            rec.id,
            Box::new(Entry {
                row: Row::from_record(rec, &mut self.shared),
                task: None,
                slots: 0,
                dormant: false,
                run_path: None,
            }),
        );
        self.mark(rec.id);
    }

    /// `event` is the user's Restart or a re-add of changed content (allowed in more states).
    fn restart(&mut self, id: UploadId, file: Option<PreparedFile>, event: Event) -> Result<()> {
        if !self.entries.contains_key(&id) {
            return Err(Error::UnknownUpload(id));
        }
        if self.ctx.store.get(id).is_ok_and(|r| r.given_url) {
            return Err(Error::UploadUrl(
                "an upload into a URL a service created cannot start over: ask the service for a new URL and add the file with it".into(),
            ));
        }
        if self.would(id, event).is_none() || self.journal_completed(id) {
            // Its worker completed it a moment ago: nothing to restart, and terminating it
            // would delete a finished upload.
            return Ok(());
        }
        let Some(f) = file else {
            return Err(Error::FileMissing(self.entries[&id].row.path()));
        };
        self.stop(id);
        self.terminate(id);
        let path = f.path.display().to_string();
        self.ctx
            .store
            .reset_identity(id, &path, &f.name, &f.stamp, &f.fingerprint)?;
        let old = self.entries[&id].row.path();
        if old != path {
            self.unwatch(id, &old);
        }
        self.saw_path(&path);
        if let Some(e) = self.entries.get_mut(&id) {
            e.row.set_path(&path, &f.name, &mut self.shared);
            e.row.size = f.stamp.size;
            e.row.restart_at(0);
            e.row.set_upload_url(None);
            e.row.set_resent(0);
            e.row.set_note(None);
            e.dormant = false;
        }
        self.apply(id, event, None);
        Ok(())
    }

    /// Shows an upload as having no server upload and no progress: it was abandoned
    /// (terminated) or a new one is being created from byte 0.
    fn forget_server_upload(&mut self, id: UploadId) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.row.set_upload_url(None);
            e.row.restart_at(0);
        }
        self.mark(id);
    }

    /// Abandons the upload's server URL at once (journal and view) and sends DELETE for it in
    /// the background (termination extension), so the server frees the space; failure only
    /// costs server space. A DELETE that would carry the profile's credentials where they may
    /// not go (a host the person refused or never allowed) is not sent: the returned sentence
    /// says so, for the row.
    fn terminate(&mut self, id: UploadId) -> Option<Said> {
        let rec = self.ctx.store.get(id).ok()?;
        // Forget the URLs now, not when the DELETE answers: a retry started meanwhile must
        // create a new upload rather than resume one that is about to be deleted (the model
        // test found a completed upload whose bytes the late DELETE then removed). A file
        // sent as parts has one per part and maybe a final.
        let urls = match self.ctx.store.take_server_uploads(id) {
            Ok(urls) => urls,
            Err(e) => {
                tracing::error!(id, error = %e, "journal write failed");
                return None;
            }
        };
        if urls.is_empty() {
            return None;
        }
        self.forget_server_upload(id);
        let mut sendable = Vec::with_capacity(urls.len());
        let mut why = None;
        for url in urls {
            match upload::termination_blocked(&self.ctx, &rec, &url) {
                None => sendable.push(url),
                Some(e) => {
                    why.get_or_insert(e);
                }
            }
        }
        if !sendable.is_empty() {
            self.delete_in_background(rec, sendable);
        }
        let why = why?;
        tracing::warn!(id, reason = %why, "termination not sent: the credentials may not go there");
        Some(Said::not_terminated(&why))
    }

    /// DELETEs server uploads the journal already forgot (termination extension), tracked
    /// so that shutdown waits for them; failure only costs server space.
    fn delete_in_background(
        &mut self,
        rec: crate::journal::record::UploadRecord,
        urls: Vec<String>,
    ) {
        let id = rec.id;
        let ctx = self.ctx.clone();
        self.background.spawn(async move {
            // Sent like the upload's own requests (a proxy that blocks DELETE, say), through
            // the same gate.
            let client = upload::client_for(&ctx, &rec);
            let grant = match upload::credentials(&ctx, &rec, None).await {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(id, error = %e, "termination skipped: no credentials");
                    return;
                }
            };
            match ctx
                .caps
                .get(&client, &ctx.store, &rec.endpoint, &grant)
                .await
            {
                Ok(caps) if caps.may_have("termination") => {
                    for url in urls {
                        match client.delete(&url, &grant).await {
                            Ok(()) => tracing::info!(id, "terminated server upload"),
                            Err(e) => tracing::warn!(id, error = %e, "termination failed"),
                        }
                    }
                }
                Ok(_) => tracing::info!(
                    id,
                    "server has no termination extension; upload left to expire"
                ),
                Err(e) => tracing::warn!(id, error = %e, "termination skipped"),
            }
        });
    }

    fn shutdown(&mut self) {
        let ids: Vec<UploadId> = self.order.clone();
        for id in ids {
            if self.stop(id) {
                // Queued again in the journal: the next start resumes it.
                self.apply(id, Event::Interrupted, None);
            }
        }
        // One last try for states a lock held by another program refused.
        if !self.unjournalled.is_empty() && !self.journal_pending() {
            tracing::warn!(
                pending = self.unjournalled.len(),
                "journal still locked by another program at shutdown; those states were not recorded"
            );
        }
    }
}

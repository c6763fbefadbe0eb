//! Taking files in: what an added file is to the journal (decided by proof), walking a drop
//! in batches, and adding, re-adding or restarting its uploads in the queue.

use super::*;

/// A batch of dropped files goes to the queue at least this often while a walk goes on.
pub(super) const ADD_BATCH_TIME: Duration = Duration::from_millis(50);

/// Most files per batch (one journal transaction each, once batched inserts exist).
pub(super) const ADD_BATCH_MAX: usize = 1024;

/// Walks a drop may begin (the first and two after interruptions) before it is given up.
pub(super) const INTAKE_TRIES: u32 = 3;

/// What to do with one added file, decided by proof before the queue sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
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
pub(super) fn decide(
    store: &Store,
    destination: &str,
    again: bool,
    f: &PreparedFile,
) -> Result<Decision> {
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

pub(super) fn path_hash(path: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(path)
}

impl Engine {
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
    pub(super) async fn take_in(
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
}

impl Actor {
    pub(super) fn add(
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
    pub(super) fn insert_fresh(
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
    pub(super) fn journal_completed(&self, id: UploadId) -> bool {
        self.ctx
            .store
            .get(id)
            .is_ok_and(|r| r.state == UploadState::Completed || r.content_hash.is_some())
    }

    pub(super) fn saw_path(&mut self, path: &str) {
        self.paths_seen.insert(path_hash(path));
    }

    /// An unfinished upload of this very path to `destination` that the queue holds, if any.
    pub(super) fn unfinished_at(&self, destination: &str, f: &PreparedFile) -> Option<UploadId> {
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
    pub(super) fn readd(&mut self, id: UploadId, f: &PreparedFile) {
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

    pub(super) fn insert_entry(&mut self, rec: &UploadRecord) {
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
    pub(super) fn restart(
        &mut self,
        id: UploadId,
        file: Option<PreparedFile>,
        event: Event,
    ) -> Result<()> {
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
}

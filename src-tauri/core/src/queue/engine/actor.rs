//! The one task that owns the queue: its state, its loop, restoring from the journal, the
//! batched events and the shutdown.

use super::*;

pub(super) struct Entry {
    pub(super) row: Row,
    /// The running worker and its journal epoch.
    pub(super) task: Option<(i64, JoinHandle<()>)>,
    /// Connections the running worker may open (parts of a large file).
    pub(super) slots: usize,
    /// Restored from the journal but not to be started until resumed.
    pub(super) dormant: bool,
    /// The path the running worker was started with (a rename after it is followed).
    pub(super) run_path: Option<Box<str>>,
}

pub(super) struct Actor {
    pub(super) ctx: UploadCtx,
    pub(super) concurrency: usize,
    /// Boxed: the map's power-of-two table then holds pointers, not whole entries (it has
    /// room for up to twice as many as it holds).
    pub(super) entries: HashMap<UploadId, Box<Entry>>,
    /// The folders, endpoints and profile names of the rows, each kept once.
    pub(super) shared: Interner,
    pub(super) order: Vec<UploadId>,
    pub(super) dirty: HashSet<UploadId>,
    pub(super) removed: Vec<UploadId>,
    pub(super) events: broadcast::Sender<Arc<EventBatch>>,
    pub(super) worker_tx: mpsc::UnboundedSender<(UploadId, i64, WorkerEvent)>,
    pub(super) watcher: Option<FileWatcher>,
    /// Uploads whose folder is watched (every unfinished one).
    pub(super) watched: HashSet<UploadId>,
    /// A worker finished: schedule once the reports already waiting are read.
    pub(super) schedule_soon: bool,
    /// Hashes of every path an entry ever had: a path not here is in no entry, so adding it
    /// needs no journal lookup for an upload of the same path (100,000 dropped files).
    pub(super) paths_seen: HashSet<u64>,
    /// Connections the running workers may open (a large file sent as parts takes one per
    /// part): the concurrency limit counts these.
    pub(super) running: usize,
    /// No startable upload sits before this index of `order`, so scheduling does not rescan
    /// a long finished head of the queue after every completion (10,000 small files made
    /// that quadratic). Reset to 0 whenever something may have become startable.
    pub(super) sched_hint: usize,
    /// Uploads whose latest state the journal refused because another program held its
    /// lock; written again on a later tick, so the journal catches up with the queue.
    pub(super) unjournalled: HashSet<UploadId>,
    /// While another program holds the journal's lock: no new worker starts before this
    /// (starting one needs a journal write), and unjournalled states wait until then too.
    pub(super) journal_busy_until: Option<Instant>,
    /// Requests the queue sends on its own (terminations): tracked so that shutdown waits
    /// for them instead of cutting them off.
    pub(super) background: tokio::task::JoinSet<()>,
    /// When each profile was last saved, to notice edits by another process (the CLI
    /// beside the app).
    pub(super) profile_versions: HashMap<crate::profiles::profile::ProfileId, i64>,
    pub(super) profiles_checked: Instant,
}

/// How long shutdown waits for terminations still on their way to the server.
pub(super) const BACKGROUND_GRACE: Duration = Duration::from_secs(5);

/// How long to leave a journal held by another program alone before writing again: the
/// journal's own pause, after which its writes wait for the lock again.
pub(super) const JOURNAL_BUSY_PAUSE: Duration = crate::journal::BUSY_PAUSE;

impl Actor {
    /// Parts of completed uploads that a crash left on the server (between the completion
    /// and their termination) are terminated now.
    pub(super) fn clean_leftover_parts(&mut self) -> Result<()> {
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

    pub(super) fn restore(&mut self, auto_resume: bool) -> Result<()> {
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

    pub(super) async fn run(
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

    /// Lets terminations on their way finish (bounded: a server that does not answer must
    /// not hold a quit).
    pub(super) async fn finish_background(&mut self) {
        let all = async { while self.background.join_next().await.is_some() {} };
        if tokio::time::timeout(BACKGROUND_GRACE, all).await.is_err() {
            tracing::warn!(
                left = self.background.len(),
                "terminations still unanswered at shutdown; those uploads are left to expire"
            );
            self.background.abort_all();
        }
    }

    pub(super) fn mark(&mut self, id: UploadId) {
        self.dirty.insert(id);
    }

    pub(super) fn flush(&mut self) {
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

    pub(super) fn sample_speeds(&mut self) {
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

    /// One method per command; those that can make uploads startable schedule after.
    pub(super) fn command(&mut self, cmd: Cmd) {
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

    pub(super) fn shutdown(&mut self) {
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

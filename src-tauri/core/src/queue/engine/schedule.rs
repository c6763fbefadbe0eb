//! Scheduling: every state change goes through the pure lifecycle, is journalled and shown;
//! workers are started within the connection limit and their reports and outcomes read.

use super::*;

impl Actor {
    /// The state `event` would move `id` to, if it applies (see [`lifecycle::transition`]).
    pub(super) fn would(&self, id: UploadId, event: Event) -> Option<UploadState> {
        let from = self.entries.get(&id)?.row.state;
        lifecycle::transition(from, event)
    }

    /// The one way an upload's state changes: the lifecycle decides, the journal records,
    /// the view shows. Returns the state after, or `None` when the event does not apply
    /// (nothing changes then).
    pub(super) fn apply(
        &mut self,
        id: UploadId,
        event: Event,
        error: Option<Said>,
    ) -> Option<UploadState> {
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
    pub(super) fn completed(&mut self, id: UploadId) {
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
    pub(super) fn show_state(&mut self, id: UploadId, state: UploadState, error: Option<String>) {
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
    pub(super) fn journal_state(
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
    pub(super) fn journal_catch_up(&mut self) {
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
    pub(super) fn journal_pending(&mut self) -> bool {
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
    pub(super) fn schedule(&mut self) {
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
    pub(super) fn slots_for(&self, id: UploadId) -> usize {
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
    pub(super) fn start(
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
    pub(super) fn stop(&mut self, id: UploadId) -> bool {
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

    pub(super) fn finished(&mut self, id: UploadId, gen: i64, outcome: Outcome) {
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

    pub(super) fn worker_event(&mut self, id: UploadId, epoch: i64, ev: WorkerEvent) {
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
}

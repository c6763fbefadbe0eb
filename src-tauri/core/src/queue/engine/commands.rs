//! What the handle's commands do to the queue: pause, resume, retry, cancel, remove, reorder,
//! clear, and the terminations they send in the background.

use super::*;

impl Actor {
    /// One upload, or every one (`None`).
    pub(super) fn ids(&self, id: Option<UploadId>) -> Vec<UploadId> {
        match id {
            Some(id) => vec![id],
            None => self.order.clone(),
        }
    }

    pub(super) fn pause(&mut self, id: Option<UploadId>) -> Result<()> {
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

    pub(super) fn resume(&mut self, id: Option<UploadId>, include_failed: bool) -> Result<()> {
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

    pub(super) fn retry(&mut self, id: UploadId) -> Result<()> {
        let e = self.entries.get_mut(&id).ok_or(Error::UnknownUpload(id))?;
        e.dormant = false;
        self.apply(id, Event::Retry, None);
        Ok(())
    }

    /// The state the queue shows for `id`.
    pub(super) fn state_of(&self, id: UploadId) -> Result<UploadState> {
        self.entries
            .get(&id)
            .map(|e| e.row.state)
            .ok_or(Error::UnknownUpload(id))
    }

    pub(super) fn cancel(&mut self, id: UploadId) -> Result<()> {
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

    pub(super) fn remove(&mut self, id: UploadId) -> Result<()> {
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

    pub(super) fn reorder(&mut self, id: UploadId, index: usize) -> Result<()> {
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

    pub(super) fn snapshot(&self) -> Vec<UploadView> {
        self.order
            .iter()
            .filter_map(|id| self.entries.get(id).map(|e| e.row.view()))
            .collect()
    }

    pub(super) fn prune(&mut self, cutoff: i64) -> Result<usize> {
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

    pub(super) fn clear(&mut self, which: Option<UploadId>) -> Result<usize> {
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

    pub(super) fn clear_ids(&mut self, ids: Vec<UploadId>) -> Result<usize> {
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

    pub(super) fn renumber(&mut self) -> Result<()> {
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

    /// Shows an upload as having no server upload and no progress: it was abandoned
    /// (terminated) or a new one is being created from byte 0.
    pub(super) fn forget_server_upload(&mut self, id: UploadId) {
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
    pub(super) fn terminate(&mut self, id: UploadId) -> Option<Said> {
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
    pub(super) fn delete_in_background(
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
}

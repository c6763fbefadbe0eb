//! Profiles and hosts: an edit by another process is noticed, and an upload the server sends
//! to a host its profile does not allow waits for the person's answer.

use super::*;

/// How often the journal's profiles are compared with what the queue last saw.
pub(super) const PROFILE_POLL: Duration = Duration::from_secs(1);

impl Actor {
    /// Notices profiles saved by another process.
    pub(super) fn poll_profiles(&mut self) {
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
    pub(super) fn profile_changed(&mut self, profile: crate::profiles::profile::ProfileId) {
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
    pub(super) fn host_not_allowed(&mut self, id: UploadId, host: String, reason: Said) {
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
    pub(super) fn answer_hosts(&mut self, p: &crate::profiles::profile::Profile) {
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
}

//! The desktop app's own settings (how many at once, bandwidth, which profile the window's
//! uploads go to), kept in the journal's settings table so the data directory holds
//! everything. Where uploads go and with which credentials lives in profiles.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::Result;
use crate::journal::Store;
use crate::profiles::profile::{Profile, ProfileId};
use crate::profiles::secrets::Secrets;

const KEY: &str = "app";

/// The profile a first run, or settings from before profiles, make for the window.
pub const APP_PROFILE: &str = "Desktop";

/// What a user configures for the app as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    /// The profile that drops, the file dialogs and command lines upload with.
    pub drop_profile: Option<String>,
    /// Connections at once: each upload takes one, a file sent as parts one per part.
    pub parallel: usize,
    /// "Connections per file": parts a large file is split into (1 = one stream).
    pub parts: usize,
    /// Files from this many MiB on go as parts, where the server can join them.
    pub parts_min_mib: u64,
    /// Bytes per second, 0 = unlimited.
    pub bandwidth: u64,
    /// The alternative limit (Transmission's turtle), bytes per second, 0 = unlimited.
    pub alt_bandwidth: u64,
    /// The alternative limit is on.
    pub alt_speed: bool,
    pub auto_resume: bool,
    pub remove_completed_after_days: Option<u32>,
    /// Closing the window while uploads are active keeps them going in the tray.
    pub keep_in_tray: bool,
    /// The first close into the tray was explained (once is enough).
    pub tray_explained: bool,
    /// Start at login, in the tray (an XDG autostart entry the shell writes).
    pub start_at_login: bool,
    /// Folders whose new files are uploaded once they stop changing.
    pub watched_folders: Vec<WatchedFolder>,
    /// Seconds a watched file's size and mtime must stay the same before it is taken.
    pub watch_settle_secs: u32,
    /// Where the person confirmed files go ([`crate::identity::destination`] keys): `drop` for drops,
    /// the file dialogs and command lines, a watched folder's path for its files. Only the
    /// shell writes them, after a system dialog (or on first use); a profile renamed, made
    /// anew under an old name, or switched for another account no longer matches.
    pub confirmed: BTreeMap<String, String>,
}

/// What [`AppSettings::admit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// The destination the person confirmed.
    Confirmed,
    /// None was confirmed yet: this one is recorded now.
    FirstUse,
    /// Another destination than the person confirmed: not without a dialog.
    Elsewhere,
}

/// The key of [`AppSettings::confirmed`] for drops.
pub const DROPS: &str = "drop";

/// A watched folder: where its files go and which names are skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct WatchedFolder {
    pub path: String,
    /// The profile its uploads use; None = the one drops go to.
    pub profile: Option<String>,
    /// Name patterns (`*`, `?`) not uploaded; new folders start with
    /// [`crate::watch::folder::DEFAULT_IGNORE`].
    pub ignore: Vec<String>,
    /// Where the folder really was when the person picked it (no link on the way): a
    /// folder since replaced by a link to elsewhere is not watched. Set by the shell.
    #[serde(default)]
    #[ts(skip)]
    pub real: Option<String>,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            drop_profile: None,
            parallel: 4,
            parts: 4,
            parts_min_mib: 64,
            bandwidth: 0,
            alt_bandwidth: 1 << 20,
            alt_speed: false,
            auto_resume: true,
            remove_completed_after_days: None,
            keep_in_tray: true,
            tray_explained: false,
            start_at_login: false,
            watched_folders: Vec::new(),
            watch_settle_secs: 2,
            confirmed: BTreeMap::new(),
        }
    }
}

/// What settings held before profiles: one server, its headers and metadata.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Legacy {
    endpoint: String,
    headers: BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
    chunk_size: Option<u64>,
}

impl AppSettings {
    /// The limit in force: the alternative one while it is on.
    pub fn effective_bandwidth(&self) -> u64 {
        if self.alt_speed {
            self.alt_bandwidth
        } else {
            self.bandwidth
        }
    }

    /// The stored settings, or defaults on first run.
    pub fn load(store: &Store) -> Result<AppSettings> {
        Ok(store
            .setting(KEY)?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default())
    }

    pub fn save(&self, store: &Store) -> Result<()> {
        store.set_setting(
            KEY,
            &serde_json::to_string(self).expect("settings serialise"),
        )
    }

    /// The profile a watched folder's files go to (its own, or the drops').
    pub fn folder_profile<'a>(&'a self, folder: &'a WatchedFolder) -> Option<&'a str> {
        folder.profile.as_deref().or(self.drop_profile.as_deref())
    }

    /// Where files uploaded with the profile named `name` go, as a destination key, and the
    /// profile (`None`: no such profile).
    pub fn destination_of(store: &Store, name: &str) -> Result<Option<(String, Profile)>> {
        Ok(store
            .profile_by_name(name)?
            .map(|p| (crate::identity::destination::of_profile(&p), p)))
    }

    /// Whether files for `what` (drops, a watched folder's path) may go to destination `key`:
    /// the one the person confirmed, or, with none confirmed yet (an older build's settings),
    /// this one, recorded now (save the settings then).
    pub fn admit(&mut self, what: &str, key: &str) -> Admitted {
        match self.confirmed.get(what) {
            Some(confirmed) if confirmed == key => Admitted::Confirmed,
            Some(_) => Admitted::Elsewhere,
            None => {
                self.confirmed.insert(what.to_string(), key.to_string());
                Admitted::FirstUse
            }
        }
    }

    /// The profile the window's uploads use, if one is chosen and still exists.
    pub fn drop_target(&self, store: &Store) -> Result<Option<Profile>> {
        match &self.drop_profile {
            Some(name) => store.profile_by_name(name),
            None => Ok(None),
        }
    }

    /// Saves `profile` and makes it the one the window's uploads go to (first-run setup,
    /// tests). Returns its id.
    pub fn use_profile(store: &Store, secrets: &Secrets, profile: &Profile) -> Result<ProfileId> {
        let id = store.save_profile_sealed(secrets, profile)?;
        let mut s = Self::load(store)?;
        s.drop_profile = Some(profile.name.clone());
        s.save(store)?;
        Ok(id)
    }

    /// Settings from before profiles held the server and its credentials (their secrets in
    /// plain text, or under the settings' own keyring entries): those become the
    /// [`APP_PROFILE`] profile, which drops then go to.
    pub fn migrate_legacy(store: &Store, secrets: &Secrets) -> Result<()> {
        let Some(raw) = store.setting(KEY)? else {
            return Ok(());
        };
        let legacy: Legacy = serde_json::from_str(&raw).unwrap_or_default();
        let has_legacy = serde_json::from_str::<serde_json::Value>(&raw)
            .ok()
            .and_then(|v| v.as_object().map(|o| o.contains_key("endpoint")))
            .unwrap_or(false);
        if !has_legacy {
            return Ok(());
        }
        let mut s = Self::load(store)?;
        if !legacy.endpoint.trim().is_empty() {
            // A build between profiles and this one kept both, in step: the profile wins.
            if store.profile_by_name(APP_PROFILE)?.is_none() {
                let profile = Profile {
                    name: APP_PROFILE.into(),
                    endpoint: legacy.endpoint.clone(),
                    headers: secrets.open_headers_lossy(&legacy.headers),
                    metadata: legacy.metadata.clone(),
                    chunk_size: legacy.chunk_size,
                    ..Default::default()
                };
                store.save_profile_sealed(secrets, &profile)?;
            }
            s.drop_profile.get_or_insert_with(|| APP_PROFILE.into());
        }
        s.save(store)?;
        // The profile holds its own copies; the settings' entries go.
        if let Err(e) = secrets.forget(&legacy.headers) {
            tracing::warn!(error = %e, "could not remove the old settings' secrets from the keyring");
        }
        tracing::info!("settings from before profiles moved into the {APP_PROFILE} profile");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_roundtrip() {
        let s = Store::open_in_memory().unwrap();
        let mut a = AppSettings::load(&s).unwrap();
        assert_eq!(a, AppSettings::default());
        a.drop_profile = Some("Work".into());
        a.parallel = 5;
        a.save(&s).unwrap();
        assert_eq!(AppSettings::load(&s).unwrap(), a);
    }

    #[test]
    fn files_go_only_where_the_person_confirmed_and_an_older_builds_settings_take_today_s() {
        let mut s = AppSettings::default();
        assert_eq!(s.admit(DROPS, "d1:a"), Admitted::FirstUse);
        assert_eq!(s.admit(DROPS, "d1:a"), Admitted::Confirmed);
        assert_eq!(s.admit(DROPS, "d1:b"), Admitted::Elsewhere);
        assert_eq!(s.confirmed[DROPS], "d1:a", "not overwritten by a refusal");
        assert_eq!(s.admit("/home/u/watched", "d1:b"), Admitted::FirstUse);
    }

    #[test]
    fn settings_from_before_profiles_become_the_desktop_profile() {
        let s = Store::open_in_memory().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::open_in_file(dir.path());
        s.set_setting(
            KEY,
            r#"{"endpoint":"http://x/files","headers":{"Authorization":"Bearer old","X-Tenant":"acme"},"metadata":{"k":"v"},"chunk_size":1024,"parallel":7}"#,
        )
        .unwrap();
        AppSettings::migrate_legacy(&s, &secrets).unwrap();
        let a = AppSettings::load(&s).unwrap();
        assert_eq!(
            (a.drop_profile.as_deref(), a.parallel),
            (Some(APP_PROFILE), 7)
        );
        let raw = s.setting(KEY).unwrap().unwrap();
        assert!(
            !raw.contains("endpoint") && !raw.contains("Bearer"),
            "{raw}"
        );
        let p = s.profile_by_name(APP_PROFILE).unwrap().unwrap();
        assert_eq!(
            (p.endpoint.as_str(), p.chunk_size, p.metadata["k"].as_str()),
            ("http://x/files", Some(1024), "v")
        );
        assert!(
            p.headers["Authorization"].starts_with("secret-ref:"),
            "sealed"
        );
        let open = secrets.open_headers(&p.headers).unwrap();
        assert_eq!(open["Authorization"], "Bearer old");
        // Once only: a second launch changes nothing.
        AppSettings::migrate_legacy(&s, &secrets).unwrap();
        assert_eq!(AppSettings::load(&s).unwrap(), a);
    }
}

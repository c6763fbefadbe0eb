//! The desktop app's settings, kept in the journal's settings table so the engine's data
//! directory holds everything (and the CLI could read the same defaults).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::Result;
use crate::secrets::Secrets;
use crate::store::Store;

const KEY: &str = "app";

/// The name of the desktop app's profile (the CLI can use it with `--profile Desktop`).
pub const APP_PROFILE: &str = "Desktop";

/// What a user configures. Header values may be secrets: the shell never returns them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    pub endpoint: String,
    pub headers: crate::redact::Headers,
    pub metadata: BTreeMap<String, String>,
    pub chunk_size: Option<u64>,
    pub parallel: usize,
    /// Bytes per second, 0 = unlimited.
    pub bandwidth: u64,
    pub auto_resume: bool,
    pub remove_completed_after_days: Option<u32>,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            endpoint: String::new(),
            headers: Default::default(),
            metadata: BTreeMap::new(),
            chunk_size: None,
            parallel: 3,
            bandwidth: 0,
            auto_resume: true,
            remove_completed_after_days: None,
        }
    }
}

impl AppSettings {
    /// The stored settings, or defaults on first run, with their secret header values
    /// taken from `secrets`.
    pub fn load(store: &Store, secrets: &Secrets) -> Result<AppSettings> {
        let mut s = Self::load_sealed(store)?;
        s.headers = secrets.open_headers_lossy(&s.headers);
        Ok(s)
    }

    /// As stored: secret header values are references.
    fn load_sealed(store: &Store) -> Result<AppSettings> {
        Ok(store
            .setting(KEY)?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default())
    }

    /// Moves secrets that settings from before the keyring kept in plain text.
    pub fn seal_stored(store: &Store, secrets: &Secrets) -> Result<()> {
        let s = Self::load_sealed(store)?;
        if Secrets::any_unsealed(&s.headers) {
            s.save(store, secrets)?;
            tracing::info!("moved the settings' secret header values to the keyring");
        }
        Ok(())
    }

    /// The profile the window's uploads use: its endpoint, credentials and metadata, kept in
    /// step with these settings so that an edited token reaches queued uploads.
    pub fn profile(&self) -> crate::profile::Profile {
        crate::profile::Profile {
            name: APP_PROFILE.into(),
            endpoint: self.endpoint.clone(),
            headers: self.headers.clone(),
            metadata: self.metadata.clone(),
            chunk_size: self.chunk_size,
            ..Default::default()
        }
    }

    /// Persists the settings; secret header values go to `secrets`, references to the
    /// journal.
    pub fn save(&self, store: &Store, secrets: &Secrets) -> Result<()> {
        let mut sealed = self.clone();
        sealed.headers = secrets.seal("settings", &self.headers)?;
        store.set_setting(
            KEY,
            &serde_json::to_string(&sealed).expect("settings serialise"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_roundtrip() {
        let s = Store::open_in_memory().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("TUSKER_SECRETS", "file");
        let secrets = Secrets::open(dir.path());
        let mut a = AppSettings::load(&s, &secrets).unwrap();
        assert_eq!(a, AppSettings::default());
        a.endpoint = "http://x/files".into();
        a.headers.insert("Authorization".into(), "Bearer t".into());
        a.headers.insert("X-Tenant".into(), "acme".into());
        a.save(&s, &secrets).unwrap();
        assert_eq!(AppSettings::load(&s, &secrets).unwrap(), a);
        // The journal holds a reference, the 0600 file the value.
        let stored = s.setting(KEY).unwrap().unwrap();
        assert!(
            !stored.contains("Bearer t") && stored.contains("acme"),
            "{stored}"
        );
        let file = dir.path().join("secrets.json");
        assert!(std::fs::read_to_string(&file).unwrap().contains("Bearer t"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

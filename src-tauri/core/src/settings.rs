//! The desktop app's settings, kept in the journal's settings table so the engine's data
//! directory holds everything (and the CLI could read the same defaults).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::Result;
use crate::store::Store;

const KEY: &str = "app";

/// The name of the desktop app's profile (the CLI can use it with `--profile Desktop`).
pub const APP_PROFILE: &str = "Desktop";

/// What a user configures. Header values may be secrets: the shell never returns them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSettings {
    pub endpoint: String,
    pub headers: BTreeMap<String, String>,
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
            headers: BTreeMap::new(),
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
    /// The stored settings, or defaults on first run.
    pub fn load(store: &Store) -> Result<AppSettings> {
        Ok(store
            .setting(KEY)?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default())
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

    /// Persists the settings.
    pub fn save(&self, store: &Store) -> Result<()> {
        store.set_setting(
            KEY,
            &serde_json::to_string(self).expect("settings serialise"),
        )
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
        a.endpoint = "http://x/files".into();
        a.headers.insert("Authorization".into(), "Bearer t".into());
        a.save(&s).unwrap();
        assert_eq!(AppSettings::load(&s).unwrap(), a);
    }
}

//! Settings: read with secrets withheld, saved with secrets kept unless replaced, and applied
//! to the running engine.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tauri::State;
use tusker_core::redact::is_sensitive;
use tusker_core::AppSettings;

use super::{text, CmdError, CmdResult};
use crate::state::AppState;

/// A header as the UI sees it: a secret's value never goes back (`None`).
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct HeaderSetting {
    pub name: String,
    pub value: Option<String>,
    pub secret: bool,
}

/// Settings as the UI sees them.
#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
#[ts(rename = "Settings")]
pub struct SettingsView {
    pub endpoint: String,
    pub headers: Vec<HeaderSetting>,
    #[ts(type = "Record<string, string>")]
    pub metadata: BTreeMap<String, String>,
    pub chunk_size: Option<u64>,
    pub parallel: usize,
    pub bandwidth: u64,
    pub auto_resume: bool,
    pub remove_completed_after_days: Option<u32>,
}

fn view(s: &AppSettings) -> SettingsView {
    SettingsView {
        endpoint: s.endpoint.clone(),
        headers: s
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = is_sensitive(k);
                HeaderSetting {
                    name: k.clone(),
                    value: (!secret).then(|| v.clone()),
                    secret,
                }
            })
            .collect(),
        metadata: s.metadata.clone(),
        chunk_size: s.chunk_size,
        parallel: s.parallel,
        bandwidth: s.bandwidth,
        auto_resume: s.auto_resume,
        remove_completed_after_days: s.remove_completed_after_days,
    }
}

fn origin(url: &str) -> Option<(String, String, Option<u16>)> {
    let u = url::Url::parse(url.trim()).ok()?;
    Some((
        u.scheme().to_string(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default(),
    ))
}

/// Header values from the UI, with withheld secrets (value `None`) taken from the stored
/// settings. A stored secret is only ever sent to the origin it was saved for: for another
/// server the user has to enter it again.
pub fn merge_headers(
    incoming: &[HeaderSetting],
    stored: &AppSettings,
    endpoint: &str,
) -> Result<BTreeMap<String, String>, String> {
    let same_origin = origin(endpoint).is_some() && origin(endpoint) == origin(&stored.endpoint);
    let mut out = BTreeMap::new();
    for h in incoming.iter().filter(|h| !h.name.trim().is_empty()) {
        let name = h.name.trim().to_string();
        match &h.value {
            Some(v) => {
                out.insert(name, v.clone());
            }
            None if !same_origin => {
                return Err(format!(
                    "enter the value of the {name} header again: saved secrets are only sent to the server they were saved for"
                ))
            }
            None => {
                if let Some(v) = stored.headers.get(&name) {
                    out.insert(name, v.clone());
                }
            }
        }
    }
    Ok(out)
}

#[tauri::command]
pub async fn get_settings(state: State<'_, AppState>) -> CmdResult<SettingsView> {
    AppSettings::load(state.engine.store(), state.engine.secrets())
        .map(|s| view(&s))
        .map_err(text)
}

#[tauri::command]
pub async fn save_settings(
    state: State<'_, AppState>,
    settings: SettingsView,
) -> CmdResult<SettingsView> {
    let store = state.engine.store();
    let old = AppSettings::load(store, state.engine.secrets()).map_err(text)?;
    let endpoint = settings.endpoint.trim().to_string();
    if !endpoint.is_empty() {
        tusker_core::client::parse_endpoint(&endpoint).map_err(text)?;
    }
    let headers = merge_headers(&settings.headers, &old, &endpoint)?;
    tusker_core::client::header_map(&headers).map_err(text)?;
    for k in settings.metadata.keys() {
        tusker_core::protocol::validate_metadata_key(k).map_err(text)?;
    }
    if settings.chunk_size == Some(0) {
        return Err(CmdError::invalid(
            "the chunk size must be at least one byte",
        ));
    }
    let new = AppSettings {
        endpoint,
        headers: headers.into(),
        metadata: settings.metadata,
        chunk_size: settings.chunk_size,
        parallel: settings.parallel.clamp(1, 64),
        bandwidth: settings.bandwidth,
        auto_resume: settings.auto_resume,
        remove_completed_after_days: settings.remove_completed_after_days.filter(|d| *d > 0),
    };
    new.save(store, state.engine.secrets()).map_err(text)?;
    if !new.endpoint.is_empty() {
        // Uploads waiting for sign-in with the old credentials go on with these.
        state.engine.save_profile(&new.profile()).map_err(text)?;
    }
    state.engine.set_concurrency(new.parallel).map_err(text)?;
    state.engine.set_bandwidth(new.bandwidth).map_err(text)?;
    tracing::info!(parallel = new.parallel, bandwidth = new.bandwidth, headers = ?new.headers.keys().collect::<Vec<_>>(), "settings saved");
    Ok(view(&new))
}

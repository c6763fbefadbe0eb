//! Checking an endpoint: OPTIONS, so the profile editor can show the server's tus version and
//! extensions, or why it is not a tus server.

use tauri::State;
use tusker_core::origin::origin;
use tusker_core::tus::client::{parse_endpoint, TusClient};
use tusker_core::tus::gate::{Grant, Reach};
use tusker_core::ServerCaps;

use super::profiles::{merge_headers, HeaderSetting};
use super::{text, CmdError, CmdResult};
use crate::state::AppState;

/// `profile`: the saved profile being edited, whose withheld secrets the check may use, but
/// only on a server they were given for (or a host the profile allows): the window cannot
/// make a check carry them anywhere else. Values typed in the window are its own.
#[tauri::command]
pub async fn check_endpoint(
    state: State<'_, AppState>,
    endpoint: String,
    headers: Vec<HeaderSetting>,
    profile: Option<String>,
) -> CmdResult<ServerCaps> {
    let url = parse_endpoint(&endpoint).map_err(text)?;
    let stored = match &profile {
        Some(name) => state.engine.store().profile_by_name(name).map_err(text)?,
        None => None,
    };
    let (merged, kept) = merge_headers(&headers, stored.as_ref())?;
    if let Some(stored) = &stored {
        for name in kept.iter().filter(|k| stored.is_secret(k)) {
            let reach = Reach {
                origins: stored.binding(name),
                hosts: stored.allowed_hosts.clone(),
                refused: Vec::new(),
            };
            if !reach.admits(&url) {
                return Err(CmdError::invalid(format!(
                    "enter the value of the {name} header again: its saved value is only sent to the server it was given for"
                )));
            }
        }
    }
    let secret = |name: &str| {
        headers.iter().any(|h| h.secret && h.name.trim() == name)
            || stored.as_ref().is_some_and(|s| s.is_secret(name))
            || tusker_core::redact::is_sensitive(name)
    };
    let opened = state.engine.secrets().open_headers(&merged).map_err(text)?;
    // Bound to the checked server alone: a redirect elsewhere does not take them along.
    let grant =
        Grant::new(&opened, &secret, Reach::new(origin(&url), &[], &[]), None).map_err(text)?;
    TusClient::with_timeout(std::time::Duration::from_secs(10))
        .options(url.as_str(), &grant)
        .await
        .map_err(text)
}

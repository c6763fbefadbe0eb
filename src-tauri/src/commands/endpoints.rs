//! Checking an endpoint: OPTIONS, so the profile editor can show the server's tus version and
//! extensions, or why it is not a tus server.

use tauri::State;
use tusker_core::client::{header_map, parse_endpoint, TusClient};
use tusker_core::ServerCaps;

use super::profiles::{merge_headers, HeaderSetting};
use super::{text, CmdResult};
use crate::state::AppState;

/// `profile`: the saved profile being edited, whose withheld secrets the check may use.
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
    let merged = merge_headers(&headers, stored.as_ref(), url.as_str())?;
    let headers = state.engine.secrets().open_headers(&merged).map_err(text)?;
    let headers = header_map(&headers).map_err(text)?;
    TusClient::with_timeout(std::time::Duration::from_secs(10))
        .options(url.as_str(), &headers)
        .await
        .map_err(text)
}

//! Checking an endpoint: OPTIONS, so the settings page can show the server's tus version and
//! extensions, or why it is not a tus server.

use tauri::State;
use tusker_core::client::{header_map, parse_endpoint, TusClient};
use tusker_core::{AppSettings, ServerCaps};

use super::settings::{merge_headers, HeaderSetting};
use super::{text, CmdResult};
use crate::state::AppState;

#[tauri::command]
pub async fn check_endpoint(
    state: State<'_, AppState>,
    endpoint: String,
    headers: Vec<HeaderSetting>,
) -> CmdResult<ServerCaps> {
    let url = parse_endpoint(&endpoint).map_err(text)?;
    let stored = AppSettings::load(state.engine.store(), state.engine.secrets()).map_err(text)?;
    let headers = header_map(&merge_headers(&headers, &stored, url.as_str())?).map_err(text)?;
    TusClient::with_timeout(std::time::Duration::from_secs(10))
        .options(url.as_str(), &headers)
        .await
        .map_err(text)
}

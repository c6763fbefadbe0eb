//! Checking an endpoint: OPTIONS, so the profile editor can show the server's tus version and
//! extensions, or why it is not a tus server.

use tauri::State;
use tusker_core::ServerCaps;

use super::CmdResult;
use crate::editing::profiles::{self as edit, HeaderSetting};
use crate::state::AppState;

/// `profile`: the saved profile being edited, whose withheld secrets the check may use, but
/// only on a server they were given for (or a host the profile allows).
#[tauri::command]
pub async fn check_endpoint(
    state: State<'_, AppState>,
    endpoint: String,
    headers: Vec<HeaderSetting>,
    profile: Option<String>,
) -> CmdResult<ServerCaps> {
    edit::check_endpoint(&state, endpoint, headers, profile).await
}

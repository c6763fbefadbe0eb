//! The window's commands on profiles: each a call into [`crate::editing::profiles`].

use tauri::State;

use super::CmdResult;
use crate::editing::profiles::{self as edit, ProfileView};
use crate::state::AppState;

#[tauri::command]
pub async fn list_profiles(state: State<'_, AppState>) -> CmdResult<Vec<ProfileView>> {
    edit::list(&state).await
}

/// Saves a profile (renamed from `previous` when given). Its queued and waiting uploads use
/// it from their next request. The first profile becomes the one drops go to.
#[tauri::command]
pub async fn save_profile(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    previous: Option<String>,
    profile: ProfileView,
) -> CmdResult<ProfileView> {
    edit::save(&app, &state, previous, profile).await
}

/// Forgets a profile and its secrets. Its uploads keep their place and go on without its
/// credentials; drops go nowhere until another profile is chosen.
#[tauri::command]
pub async fn remove_profile(state: State<'_, AppState>, name: String) -> CmdResult<()> {
    edit::remove(&state, name).await
}

/// The answer to "upload to this host for this profile?" that a row asks. A yes is the
/// person's only in a system dialog (the window cannot give it); a no needs none.
#[tauri::command]
pub async fn answer_host(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    id: tusker_core::UploadId,
    allow: bool,
) -> CmdResult<()> {
    edit::answer_host(&app, &state, id, allow).await
}

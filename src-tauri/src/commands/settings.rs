//! The window's commands on the app's settings: each a call into [`crate::editing::settings`].

use tauri::{AppHandle, State};
use tusker_core::journal::settings::WatchedFolder;

use super::CmdResult;
use crate::editing::settings::{self as edit, SettingsView};
use crate::state::AppState;

/// Opens the system's folder dialog; the folder picked may then be saved as a watched one
/// (with the default ignore patterns), and only such a folder: the window never names paths.
#[tauri::command]
pub async fn pick_watched_folder(
    app: AppHandle,
    state: State<'_, AppState>,
) -> CmdResult<Option<WatchedFolder>> {
    edit::pick_watched_folder(&app, &state).await
}

/// The status bar's turtle: the alternative speed limit on or off, at once.
#[tauri::command]
pub async fn set_alt_speed(state: State<'_, AppState>, on: bool) -> CmdResult<SettingsView> {
    edit::set_alt_speed(&state, on).await
}

#[tauri::command]
pub async fn get_settings(state: State<'_, AppState>) -> CmdResult<SettingsView> {
    edit::get(&state).await
}

#[tauri::command]
pub async fn save_settings(
    app: AppHandle,
    state: State<'_, AppState>,
    settings: SettingsView,
) -> CmdResult<SettingsView> {
    edit::save(&app, &state, settings).await
}

//! The queue: listing, adding and acting on uploads.

use std::path::PathBuf;
use tauri::State;
use tauri_plugin_opener::OpenerExt;
use tusker_core::{AddResult, UploadId, UploadView};

use super::{text, CmdError, CmdResult};
use crate::state::{add_request, AppState};

#[tauri::command]
pub async fn list_uploads(state: State<'_, AppState>) -> CmdResult<Vec<UploadView>> {
    state.engine.snapshot().await.map_err(text)
}

/// Adds dropped or picked files and folders with the current settings.
#[tauri::command]
pub async fn add_paths(
    state: State<'_, AppState>,
    paths: Vec<String>,
) -> CmdResult<Vec<AddResult>> {
    let req = add_request(
        &state.engine,
        paths.into_iter().map(PathBuf::from).collect(),
    )?;
    state.engine.add(req).await.map_err(text)
}

#[tauri::command]
pub async fn pause_upload(state: State<'_, AppState>, id: UploadId) -> CmdResult<()> {
    state.engine.pause(id).await.map_err(text)
}

#[tauri::command]
pub async fn resume_upload(state: State<'_, AppState>, id: UploadId) -> CmdResult<()> {
    state.engine.resume(id).await.map_err(text)
}

#[tauri::command]
pub async fn pause_all(state: State<'_, AppState>) -> CmdResult<()> {
    state.engine.pause_all().await.map_err(text)
}

/// Resumes paused uploads (failed ones are retried one by one, on purpose).
#[tauri::command]
pub async fn resume_all(state: State<'_, AppState>) -> CmdResult<()> {
    state.engine.resume_all(false).await.map_err(text)
}

#[tauri::command]
pub async fn cancel_upload(state: State<'_, AppState>, id: UploadId) -> CmdResult<()> {
    state.engine.cancel(id).await.map_err(text)
}

#[tauri::command]
pub async fn retry_upload(state: State<'_, AppState>, id: UploadId) -> CmdResult<()> {
    state.engine.retry(id).await.map_err(text)
}

#[tauri::command]
pub async fn restart_upload(state: State<'_, AppState>, id: UploadId) -> CmdResult<()> {
    state.engine.restart(id).await.map_err(text)
}

#[tauri::command]
pub async fn remove_upload(state: State<'_, AppState>, id: UploadId) -> CmdResult<()> {
    state.engine.remove(id).await.map_err(text)
}

#[tauri::command]
pub async fn reorder_upload(
    state: State<'_, AppState>,
    id: UploadId,
    index: usize,
) -> CmdResult<()> {
    state.engine.reorder(id, index).await.map_err(text)
}

/// Shows the file in the system's file manager.
#[tauri::command]
pub async fn reveal_upload(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    id: UploadId,
) -> CmdResult<()> {
    let rec = state.engine.store().get(id).map_err(text)?;
    app.opener()
        .reveal_item_in_dir(&rec.path)
        .map_err(|e| CmdError {
            code: "reveal",
            message: e.to_string(),
        })
}

/// Paths handed to the app before an endpoint was set; the window adds them after Settings.
#[tauri::command]
pub async fn take_pending_paths(state: State<'_, AppState>) -> CmdResult<Vec<String>> {
    Ok(std::mem::take(
        &mut *state.pending.lock().unwrap_or_else(|p| p.into_inner()),
    ))
}

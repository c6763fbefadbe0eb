//! The queue: listing, adding and acting on uploads.

use std::path::PathBuf;
use tauri::{Manager, State};
use tauri_plugin_opener::OpenerExt;
use tusker_core::UploadId;

use super::{text, CmdError, CmdResult};
use crate::intake::{add_from_system, add_in_background};
use crate::state::AppState;

/// The window opens its feed of queue batches here, then lists the queue: no batch falls
/// between the two.
#[tauri::command]
pub fn watch_queue(state: State<'_, AppState>, feed: tauri::ipc::Channel) {
    *state.queue_feed.lock().unwrap_or_else(|p| p.into_inner()) = Some(feed);
    crate::window::keep_webkit_threads_fair();
}

/// The queue's rows (the [`tusker_core::UploadView`]s' JSON).
#[tauri::command]
pub async fn list_uploads(state: State<'_, AppState>) -> CmdResult<tauri::ipc::Response> {
    let views = state.engine.snapshot().await.map_err(text)?;
    let json = crate::rows::rows_json(&views).map_err(|e| text(std::io::Error::from(e).into()))?;
    let rows = views.len();
    drop(views);
    crate::rows::give_back_memory(rows);
    Ok(tauri::ipc::Response::new(
        tauri::ipc::InvokeResponseBody::Json(json),
    ))
}

/// Opens the system's file (or folder) dialog and adds what the person picks; the window
/// hears the outcome as an event. Paths never come from the window.
#[tauri::command]
pub async fn pick_and_add(app: tauri::AppHandle, folders: bool) -> CmdResult<()> {
    use tauri_plugin_dialog::DialogExt;
    // The system dialog names where the files go (the window chose the drop target).
    let to = crate::intake::drop_host(app.state::<AppState>().engine.store());
    let dialog = app.dialog().file().set_title(format!(
        "{} — to {}",
        if folders { "Add folders" } else { "Add files" },
        crate::confirm::visible(&to)
    ));
    let done = move |picked: Option<Vec<tauri_plugin_dialog::FilePath>>| {
        let paths: Vec<PathBuf> = picked
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.into_path().ok())
            .collect();
        add_from_system(&app, paths);
    };
    if folders {
        dialog.pick_folders(done);
    } else {
        dialog.pick_files(done);
    }
    Ok(())
}

/// "Continue an upload URL…": a service's API created the upload; the person picks the one
/// file it is for, which goes there from the server's offset (HEAD, then PATCH; no POST).
#[tauri::command]
pub async fn continue_upload_url(app: tauri::AppHandle, url: String) -> CmdResult<()> {
    use tauri_plugin_dialog::DialogExt;
    let url = url.trim().to_string();
    tusker_core::tus::client::parse_endpoint(&url)
        .map_err(|e| CmdError::from(tusker_core::Error::UploadUrl(e.to_string())))?;
    // The system dialog says where the file goes: the URL came from the window.
    let host = tusker_core::origin::host_of(&url);
    app.dialog()
        .file()
        .set_title(format!(
            "Choose the file to upload to {}",
            crate::confirm::visible(&host)
        ))
        .pick_file(move |picked| {
            if let Some(path) = picked.and_then(|p| p.into_path().ok()) {
                add_in_background(&app, vec![path], Some(url));
            }
        });
    Ok(())
}

/// "Upload again" on a notice that found files already uploaded (`again` names the notice).
#[tauri::command]
pub async fn upload_again(app: tauri::AppHandle, again: u64) -> CmdResult<()> {
    crate::intake::upload_again(&app, again)
}

#[tauri::command]
pub async fn pause_upload(state: State<'_, AppState>, id: UploadId) -> CmdResult<()> {
    state.engine.pause(id).await.map_err(text)
}

#[tauri::command]
pub async fn resume_upload(state: State<'_, AppState>, id: UploadId) -> CmdResult<()> {
    state.engine.resume(id).await.map_err(text)
}

/// The network banner's "Try now".
#[tauri::command]
pub fn try_now(state: State<'_, AppState>) {
    state.engine.try_now();
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

/// Adds the paths that came before an endpoint was set (the window calls it after Settings
/// were saved); the outcome comes as an event.
#[tauri::command]
pub async fn add_pending(app: tauri::AppHandle, state: State<'_, AppState>) -> CmdResult<()> {
    let paths = std::mem::take(&mut *state.pending.lock().unwrap_or_else(|p| p.into_inner()));
    add_from_system(&app, paths);
    Ok(())
}

//! What the queue keeps of an upload beyond its row: the details panel, the history of
//! completed uploads, clearing completed rows into it, and copying an upload URL (which the
//! window never holds: on many servers whoever has it can append to or delete the upload).

use serde::Serialize;
use tauri::{AppHandle, State};
use ts_rs::TS;
use tusker_core::redact::strip_userinfo;
use tusker_core::tus::protocol::ChecksumAlgorithm;
use tusker_core::{UploadId, UploadRecord, UploadState};

use super::{text, CmdError, CmdResult};
use crate::state::AppState;

/// Everything the details panel shows of one upload.
#[derive(Serialize, TS)]
pub struct UploadDetails {
    pub id: UploadId,
    pub name: String,
    pub path: String,
    pub size: u64,
    /// Bytes the server has confirmed.
    pub acked: u64,
    pub state: UploadState,
    /// The endpoint (without any user:password).
    pub endpoint: String,
    pub profile: Option<String>,
    pub retries: u32,
    pub last_error: Option<String>,
    /// The technical detail of the current error (status, server message, error chain).
    pub error_detail: Option<String>,
    /// How each request's bytes are checked, in words.
    pub checksum: String,
    /// The journal holds the server upload's URL (it can be copied, never shown).
    pub has_upload_url: bool,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    /// Bytes per second over the time spent uploading, once completed.
    pub average_speed: Option<f64>,
    /// The server lost the upload and it was created again this many times.
    pub recreated: i64,
    /// Tusker's content hash of what was sent (completed uploads).
    pub content_hash: Option<String>,
}

/// A completed upload in the history.
#[derive(Serialize, TS)]
pub struct HistoryEntry {
    pub id: UploadId,
    pub name: String,
    pub path: String,
    pub size: u64,
    pub completed_at: i64,
    pub average_speed: Option<f64>,
    pub profile: Option<String>,
    pub endpoint: String,
    /// Still a row of the queue (not cleared).
    pub in_queue: bool,
}

fn checksum_words(state: &AppState, rec: &UploadRecord) -> String {
    match state.engine.store().caps(&rec.endpoint) {
        Ok(Some(caps)) => match ChecksumAlgorithm::choose(&caps.checksum_algorithms) {
            Some(alg) => format!(
                "every request carries a {} checksum the server verifies",
                alg.name()
            ),
            None => "the server offers no checksum; the journal's SHA-256 of the bytes sent proves a resumed upload".into(),
        },
        _ => "unknown: the server has not said what it supports (no OPTIONS answer yet)".into(),
    }
}

#[tauri::command]
pub async fn upload_details(state: State<'_, AppState>, id: UploadId) -> CmdResult<UploadDetails> {
    let rec = state.engine.store().get(id).map_err(text)?;
    Ok(UploadDetails {
        checksum: checksum_words(&state, &rec),
        average_speed: rec.average_speed(),
        has_upload_url: rec.upload_url.is_some(),
        endpoint: strip_userinfo(&rec.endpoint),
        id: rec.id,
        name: rec.name,
        path: rec.path,
        size: rec.size,
        acked: rec.acked_offset,
        state: rec.state,
        profile: rec.profile,
        retries: rec.retries,
        last_error: rec.last_error,
        error_detail: rec.error_detail,
        created_at: rec.created_at,
        completed_at: rec.completed_at,
        recreated: rec.recreated,
        content_hash: rec.content_hash,
    })
}

/// The latest completed uploads (at most `limit`, up to 10,000).
#[tauri::command]
pub async fn list_history(
    state: State<'_, AppState>,
    limit: usize,
) -> CmdResult<Vec<HistoryEntry>> {
    let recs = state
        .engine
        .store()
        .history(limit.min(10_000))
        .map_err(text)?;
    Ok(recs
        .into_iter()
        .map(|r| HistoryEntry {
            average_speed: r.average_speed(),
            in_queue: r.cleared_at.is_none(),
            endpoint: strip_userinfo(&r.endpoint),
            id: r.id,
            name: r.name,
            path: r.path,
            size: r.size,
            completed_at: r.completed_at.unwrap_or_default(),
            profile: r.profile,
        })
        .collect())
}

/// "Clear completed": the completed rows leave the queue for the history. Returns how many.
#[tauri::command]
pub async fn clear_completed(state: State<'_, AppState>) -> CmdResult<usize> {
    state.engine.clear_completed().await.map_err(text)
}

/// One completed row leaves the queue for the history.
#[tauri::command]
pub async fn clear_upload(state: State<'_, AppState>, id: UploadId) -> CmdResult<()> {
    state.engine.clear(id).await.map_err(text)
}

/// Puts the upload's server URL on the clipboard (the window never receives it).
#[tauri::command]
pub async fn copy_upload_url(
    app: AppHandle,
    state: State<'_, AppState>,
    id: UploadId,
) -> CmdResult<()> {
    let url = state
        .engine
        .store()
        .get(id)
        .map_err(text)?
        .upload_url
        .ok_or_else(|| CmdError::invalid("this upload has no server URL (yet)"))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.run_on_main_thread(move || {
        let clipboard = gtk::Clipboard::get(&gtk::gdk::SELECTION_CLIPBOARD);
        clipboard.set_text(&url);
        clipboard.store();
        let _ = tx.send(());
    })
    .map_err(|e| CmdError::invalid(format!("the clipboard is not available: {e}")))?;
    rx.await
        .map_err(|_| CmdError::invalid("the clipboard is not available"))?;
    tracing::info!(id, "upload URL copied to the clipboard");
    Ok(())
}

//! Pushes the engine's batched diffs (at most ten a second) to the window, and notifies when
//! uploads finish or fail while the window is not focused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use tauri::{AppHandle, Emitter};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::broadcast::error::RecvError;
use tusker_core::{Engine, EventBatch, UploadId, UploadState};

/// The event name the UI listens to (ui/src/lib/api.ts).
pub const QUEUE_EVENT: &str = "queue-batch";
/// Sent when paths arrived (command line, second launch) that wait for an endpoint.
pub const PENDING_EVENT: &str = "pending-paths";

/// What adding files from the system came to ([`crate::state::Added`]).
pub const ADDED_EVENT: &str = "files-added";

/// Whether the main window has focus, kept from window events (asking the window from this
/// task would wait for the main thread, which may be busy quitting).
pub static FOCUSED: AtomicBool = AtomicBool::new(true);

/// Starts the forwarding task.
pub fn forward(app: &AppHandle, engine: Engine) {
    let mut rx = engine.subscribe();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut last: HashMap<UploadId, UploadState> = HashMap::new();
        loop {
            let batch = match rx.recv().await {
                Ok(b) => b,
                Err(RecvError::Lagged(_)) => match engine.snapshot().await {
                    // Fell behind: send everything once; the UI replaces its rows.
                    Ok(all) => std::sync::Arc::new(EventBatch {
                        changed: all,
                        removed: vec![],
                        reset: true,
                    }),
                    Err(_) => return,
                },
                Err(RecvError::Closed) => return,
            };
            let _ = app.emit(QUEUE_EVENT, &*batch);
            notify(&app, &batch, &mut last);
        }
    });
}

fn notify(app: &AppHandle, batch: &EventBatch, last: &mut HashMap<UploadId, UploadState>) {
    let mut finished = Vec::new();
    let mut failed = Vec::new();
    for v in &batch.changed {
        let before = last.insert(v.id, v.state);
        if before == Some(v.state) || before.is_none() && v.state.is_terminal() {
            continue;
        }
        match v.state {
            UploadState::Completed => finished.push(v.name.clone()),
            UploadState::Failed
            | UploadState::FileMissing
            | UploadState::FileChanged
            | UploadState::NeedsSignIn => failed.push(format!(
                "{}: {}",
                v.name,
                v.error.as_deref().unwrap_or(v.state.as_str())
            )),
            _ => {}
        }
    }
    for id in &batch.removed {
        last.remove(id);
    }
    if finished.is_empty() && failed.is_empty() {
        return;
    }
    if FOCUSED.load(Ordering::Relaxed) {
        return;
    }
    let show = |title: String, body: String| {
        let _ = app.notification().builder().title(title).body(body).show();
    };
    match finished.len() {
        0 => {}
        1 => show("Upload finished".into(), finished[0].clone()),
        n => show(format!("{n} uploads finished"), finished.join(", ")),
    }
    match failed.len() {
        0 => {}
        1 => show("Upload failed".into(), failed[0].clone()),
        n => show(format!("{n} uploads need attention"), failed.join("\n")),
    }
}

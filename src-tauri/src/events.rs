//! Pushes the engine's batched diffs (at most four a second) to the window, and notifies when
//! uploads finish or fail while the window is not focused.
//!
//! The batches go through an IPC channel the window opened (`watch_queue`), not as events:
//! an event's payload is pasted into a script the web view compiles and keeps, which with a
//! dropped folder of 100,000 files froze the window for seconds and held hundreds of MiB.
//! A channel's larger messages are fetched and parsed as JSON.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use tauri::{AppHandle, Manager};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::broadcast::error::RecvError;
use tusker_core::{Engine, EventBatch, UploadId, UploadState};

/// How often the window hears the queue at most: each batch repaints it, and four a second
/// are as smooth to read as ten for a fraction of the window's CPU (batches in between are
/// merged).
const WINDOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// How long the queue stays unchanged before the memory its work freed is given back.
const QUIET: std::time::Duration = std::time::Duration::from_secs(3);

/// Starts the forwarding task.
pub fn forward(app: &AppHandle, engine: Engine) {
    let mut rx = engine.subscribe();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut progress = crate::tray::Progress::default();
        // The queue as it stands (restored at start, before this task listened).
        if let Ok(all) = engine.snapshot().await {
            for v in &all {
                progress.update(v);
            }
            show_progress(&app, &progress);
        }
        let mut pending: Option<EventBatch> = None;
        let mut sent_at = tokio::time::Instant::now();
        // Rows changed (or the snapshot above was built) since memory was last given back.
        let mut busy = true;
        loop {
            let due = sent_at + WINDOW_INTERVAL;
            let received = tokio::select! {
                r = rx.recv() => r,
                _ = tokio::time::sleep_until(due), if pending.is_some() => {
                    if let Some(batch) = pending.take() {
                        send_to_window(&app, &batch);
                    }
                    show_progress(&app, &progress);
                    sent_at = tokio::time::Instant::now();
                    busy = true;
                    continue;
                }
                _ = tokio::time::sleep_until(sent_at + QUIET), if busy && pending.is_none() => {
                    progress.shrink();
                    crate::rows::give_back_memory_now();
                    busy = false;
                    continue;
                }
            };
            let batch = match received {
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
                Err(RecvError::Closed) => {
                    if let Some(batch) = pending.take() {
                        send_to_window(&app, &batch);
                    }
                    return;
                }
            };
            notify(&app, &batch, &mut progress);
            merge(&mut pending, &batch);
        }
    });
}

/// Adds a batch to the ones not sent yet: a row's latest view wins, removed rows leave, a
/// reset starts over from its whole queue.
fn merge(pending: &mut Option<EventBatch>, batch: &EventBatch) {
    let Some(into) = pending.as_mut().filter(|_| !batch.reset) else {
        *pending = Some(batch.clone());
        return;
    };
    if !batch.removed.is_empty() {
        let gone: std::collections::HashSet<UploadId> = batch.removed.iter().copied().collect();
        into.changed.retain(|v| !gone.contains(&v.id));
        into.removed.extend(&batch.removed);
    }
    let at: HashMap<UploadId, usize> = into
        .changed
        .iter()
        .enumerate()
        .map(|(i, v)| (v.id, i))
        .collect();
    for v in &batch.changed {
        match at.get(&v.id) {
            Some(&i) => into.changed[i] = v.clone(),
            None => into.changed.push(v.clone()),
        }
    }
}

fn send_to_window(app: &AppHandle, batch: &EventBatch) {
    let Some(state) = app.try_state::<crate::state::AppState>() else {
        return;
    };
    let feed = state
        .queue_feed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(feed) = feed {
        match serde_json::to_string(&crate::rows::QueueBatch::from(batch)) {
            Ok(json) => {
                if let Err(e) = feed.send(tauri::ipc::InvokeResponseBody::Json(json)) {
                    tracing::debug!(error = %e, "the window did not take a queue batch");
                }
            }
            Err(e) => tracing::error!(error = %e, "a queue batch did not serialise"),
        }
    }
    crate::rows::give_back_memory(batch.changed.len());
    crate::window::keep_webkit_threads_fair();
}

fn show_progress(app: &AppHandle, progress: &crate::tray::Progress) {
    let summary = progress.summary();
    crate::window::ACTIVE.store(summary.active(), Ordering::Relaxed);
    crate::tray::show_progress(app, &summary);
}

/// Failures grouped by their sentence (the catalogue's), most frequent first: ten uploads
/// that cannot reach the server are one line, not ten.
fn by_cause(failed: &[(String, String)]) -> String {
    tusker_core::error::explain::by_cause(failed.iter().map(|(n, w)| (n.as_str(), w.as_str())))
        .iter()
        .map(|(why, names)| match names.as_slice() {
            [one] => format!("{one}: {why}"),
            many => format!("{} uploads: {why}", many.len()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn notify(app: &AppHandle, batch: &EventBatch, progress: &mut crate::tray::Progress) {
    let mut finished = Vec::new();
    let mut failed = Vec::new();
    if batch.reset {
        progress.clear();
    }
    for v in &batch.changed {
        // Completed rows leave the progress (a row that reappears completed is then skipped
        // as one first seen completed, and one restarted comes back queued).
        let before = progress.update(v);
        if before == Some(v.state) || before.is_none() && v.state.is_terminal() {
            continue;
        }
        match v.state {
            UploadState::Completed => finished.push(v.name.clone()),
            UploadState::Failed
            | UploadState::FileMissing
            | UploadState::FileChanged
            | UploadState::NeedsSignIn => failed.push((
                v.name.clone(),
                v.error
                    .clone()
                    .unwrap_or_else(|| v.state.as_str().to_string()),
            )),
            _ => {}
        }
    }
    for id in &batch.removed {
        progress.remove(*id);
    }
    if finished.is_empty() && failed.is_empty() {
        return;
    }
    if crate::window::FOCUSED.load(Ordering::Relaxed) {
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
        1 => show("Upload failed".into(), by_cause(&failed)),
        n => show(format!("{n} uploads need attention"), by_cause(&failed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tusker_core::UploadView;

    fn view(id: UploadId, acked: u64) -> UploadView {
        serde_json::from_value(serde_json::json!({
            "id": id, "position": id, "path": "/f", "name": "f", "size": 10,
            "endpoint": "http://e/files", "state": "uploading", "error": null, "acked": acked,
            "in_flight": 0, "speed": 0.0, "eta_secs": null, "retry_at_ms": null,
            "recreated": 0, "resent": 0, "note": null,
            "profile": null, "asks_host": null
        }))
        .unwrap()
    }

    #[test]
    fn notifications_group_failures_by_cause() {
        let f = |n: &str, w: &str| (n.to_string(), w.to_string());
        let body = super::by_cause(&[
            f("a.bin", "Can't reach h:1: connection refused"),
            f("b.bin", "The file is gone (deleted or moved away)"),
            f("c.bin", "Can't reach h:1: connection refused"),
            f("d.bin", "Can't reach h:1: connection refused"),
        ]);
        assert_eq!(
            body,
            "3 uploads: Can't reach h:1: connection refused\nb.bin: The file is gone (deleted or moved away)"
        );
    }

    fn batch(changed: Vec<UploadView>, removed: Vec<UploadId>, reset: bool) -> EventBatch {
        EventBatch {
            changed,
            removed,
            reset,
        }
    }

    fn rows(b: &EventBatch) -> Vec<(UploadId, u64)> {
        b.changed.iter().map(|v| (v.id, v.acked)).collect()
    }

    #[test]
    fn batches_merge_latest_view_first_place_removals_and_resets() {
        let mut p = None;
        merge(&mut p, &batch(vec![view(1, 1), view(2, 1)], vec![], false));
        merge(&mut p, &batch(vec![view(2, 5), view(3, 1)], vec![], false));
        assert_eq!(rows(p.as_ref().unwrap()), [(1, 1), (2, 5), (3, 1)]);
        merge(&mut p, &batch(vec![view(3, 2)], vec![1], false));
        let b = p.as_ref().unwrap();
        assert_eq!(rows(b), [(2, 5), (3, 2)]);
        assert_eq!(b.removed, [1]);
        assert!(!b.reset);
        merge(&mut p, &batch(vec![view(7, 0)], vec![], true));
        merge(&mut p, &batch(vec![view(7, 3)], vec![], false));
        let b = p.as_ref().unwrap();
        assert_eq!(rows(b), [(7, 3)]);
        assert!(b.reset && b.removed.is_empty());
    }
}

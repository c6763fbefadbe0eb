//! What the window gets of the queue: the engine's views, serialised as they are (an
//! [`UploadView`] leaves out what the window must not see or need not keep).

use serde::Serialize;
use ts_rs::TS;
use tusker_core::{EventBatch, UploadId, UploadView};

/// Rows that changed, rows removed, or (`reset`) the whole queue.
#[derive(Serialize, TS)]
pub struct QueueBatch<'a> {
    pub changed: &'a [UploadView],
    pub removed: &'a [UploadId],
    /// `changed` is the whole queue: replace, don't merge.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[ts(optional = nullable)]
    pub reset: bool,
}

impl<'a> From<&'a EventBatch> for QueueBatch<'a> {
    fn from(b: &'a EventBatch) -> Self {
        QueueBatch {
            changed: &b.changed,
            removed: &b.removed,
            reset: b.reset,
        }
    }
}

/// The JSON of the rows the window draws for these views.
pub fn rows_json(views: &[UploadView]) -> serde_json::Result<String> {
    serde_json::to_string(views)
}

/// Gives freed memory back to the system a moment after a message of `rows` rows (once the
/// window has fetched it). glibc keeps what a large message freed (tens of MB with 100,000
/// rows) in its arenas; trimming after the rare large ones kept the app about 50 MB smaller.
/// Fixed allocator settings did it too, but cost the transfers a fifth of their speed.
pub fn give_back_memory(rows: usize) {
    if rows >= 10_000 {
        tauri::async_runtime::spawn(async {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            give_back_memory_now();
        });
    }
}

/// Returns the free pages of glibc's arenas to the system (the threads' arenas keep them
/// otherwise): once the queue has gone quiet after work, this gave back about 9 MB after
/// 100,000 files.
pub fn give_back_memory_now() {
    tusker_core::platform::give_back_memory();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window gets what a row draws, and never the endpoint, the technical detail, the
    /// upload URL (a capability on many servers) or the profile's id.
    #[test]
    fn a_row_reaches_the_window_without_what_it_must_not_see() {
        let view: UploadView = serde_json::from_value(serde_json::json!({
            "id": 7, "position": 7, "path": "/f", "name": "f", "size": 10,
            "endpoint": "https://user:pw@e.example/files", "upload_url": "https://e.example/files/secret",
            "state": "failed", "error": "The server refused the credentials",
            "error_code": "http.unauthorized", "error_detail": "401 from e.example: token expired",
            "acked": 4, "in_flight": 0, "speed": 0.0, "eta_secs": null, "retry_at_ms": null,
            "recreated": 0, "resent": 0, "note": null, "profile": "Work", "asks_host": null
        }))
        .unwrap();
        assert_eq!(
            view.upload_url.as_deref(),
            Some("https://e.example/files/secret")
        );
        let json = rows_json(std::slice::from_ref(&view)).unwrap();
        let row: serde_json::Value = serde_json::from_str(&json).unwrap();
        let keys: Vec<&str> = row[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = vec![
            "id",
            "position",
            "path",
            "name",
            "size",
            "state",
            "error",
            "error_code",
            "acked",
            "in_flight",
            "speed",
            "eta_secs",
            "retry_at_ms",
            "recreated",
            "resent",
            "note",
            "profile",
            "asks_host",
        ];
        want.sort_unstable();
        let mut have = keys.clone();
        have.sort_unstable();
        assert_eq!(have, want);
        for hidden in ["e.example", "token expired", "secret", "pw"] {
            assert!(
                !json.contains(hidden),
                "{hidden} reached the window: {json}"
            );
        }
    }
}

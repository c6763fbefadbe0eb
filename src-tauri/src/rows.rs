//! What the window gets of the queue: the fields a row draws, borrowed from the engine's views
//! when serialised. The endpoint, metadata and header names stay out: with 100,000 rows they
//! were a third of each batch's JSON and of the rows the web view keeps.

use serde::Serialize;
use ts_rs::TS;
use tusker_core::{EventBatch, UploadId, UploadState, UploadView};

/// One row of the queue.
#[derive(Serialize, TS)]
pub struct QueueRow<'a> {
    pub id: UploadId,
    pub position: i64,
    pub path: &'a str,
    pub name: &'a str,
    pub size: u64,
    pub state: UploadState,
    /// What went wrong, as the catalogue says it (the technical detail stays out).
    pub error: Option<&'a str>,
    /// The catalogue's code of `error` (tusker_core::error::explain::CODES).
    pub error_code: Option<&'a str>,
    /// Bytes the server has confirmed; never goes backwards within a server upload.
    pub acked: u64,
    /// Bytes sent in the current request but not yet confirmed (for smooth bars).
    pub in_flight: u64,
    /// Bytes per second, exponential moving average.
    pub speed: f64,
    /// Seconds to completion at the current speed.
    pub eta_secs: Option<f64>,
    /// For waiting_to_retry: milliseconds since the epoch of the next attempt.
    pub retry_at_ms: Option<i64>,
    pub recreated: i64,
    /// Bytes sent again because the server lost bytes it had confirmed.
    pub resent: u64,
    /// Something the user should know that is not an error (why progress went back).
    pub note: Option<&'a str>,
    /// The profile it uploads with.
    pub profile: Option<&'a str>,
    /// The host the server sends it to, which its profile does not allow yet.
    pub asks_host: Option<&'a str>,
}

impl<'a> From<&'a UploadView> for QueueRow<'a> {
    fn from(v: &'a UploadView) -> Self {
        QueueRow {
            id: v.id,
            position: v.position,
            path: &v.path,
            name: &v.name,
            size: v.size,
            state: v.state,
            error: v.error.as_deref(),
            error_code: v.error_code.as_deref(),
            acked: v.acked,
            in_flight: v.in_flight,
            speed: v.speed,
            eta_secs: v.eta_secs,
            retry_at_ms: v.retry_at_ms,
            recreated: v.recreated,
            resent: v.resent,
            note: v.note.as_deref(),
            profile: v.profile.as_deref(),
            asks_host: v.asks_host.as_deref(),
        }
    }
}

/// Rows that changed, rows removed, or (`reset`) the whole queue.
#[derive(Serialize, TS)]
pub struct QueueBatch<'a> {
    pub changed: Vec<QueueRow<'a>>,
    pub removed: &'a [UploadId],
    /// `changed` is the whole queue: replace, don't merge.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[ts(optional = nullable)]
    pub reset: bool,
}

impl<'a> From<&'a EventBatch> for QueueBatch<'a> {
    fn from(b: &'a EventBatch) -> Self {
        QueueBatch {
            changed: b.changed.iter().map(QueueRow::from).collect(),
            removed: &b.removed,
            reset: b.reset,
        }
    }
}

/// The JSON of the rows the window draws for these views.
pub fn rows_json(views: &[UploadView]) -> serde_json::Result<String> {
    serde_json::to_string(&views.iter().map(QueueRow::from).collect::<Vec<_>>())
}

/// Gives freed memory back to the system a moment after a message of `rows` rows (once the
/// window has fetched it). glibc keeps what a large message freed (tens of MB with 100,000
/// rows) in its arenas; trimming after the rare large ones kept the app about 50 MB smaller.
/// Fixed allocator settings did it too, but cost the transfers a fifth of their speed.
pub fn give_back_memory(rows: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
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

//! The data the engine keeps per upload and shows to UIs. Shared by the journal, the scheduler
//! and every front end, so one vocabulary of states exists.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Journal id of an upload.
pub type UploadId = i64;

/// Where an upload stands. Persisted as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    Queued,
    Uploading,
    Paused,
    WaitingToRetry,
    Completed,
    Failed,
    Cancelled,
    FileMissing,
    FileChanged,
    /// The server refused the credentials (401/403): the upload waits for new ones and goes
    /// on by itself once its profile changes.
    NeedsSignIn,
}

impl UploadState {
    /// Every state, for tables and generated filters.
    pub const ALL: [UploadState; 10] = [
        UploadState::Queued,
        UploadState::Uploading,
        UploadState::Paused,
        UploadState::WaitingToRetry,
        UploadState::Completed,
        UploadState::Failed,
        UploadState::Cancelled,
        UploadState::FileMissing,
        UploadState::FileChanged,
        UploadState::NeedsSignIn,
    ];

    /// An SQL list (`('queued', ...)`) of the states `pick` accepts, so journal queries
    /// filter by the same definition as the code.
    pub fn sql_list(pick: impl Fn(UploadState) -> bool) -> String {
        let names: Vec<String> = UploadState::ALL
            .iter()
            .filter(|s| pick(**s))
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        format!("({})", names.join(", "))
    }

    /// The name stored in the journal and shown by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Queued => "queued",
            UploadState::Uploading => "uploading",
            UploadState::Paused => "paused",
            UploadState::WaitingToRetry => "waiting_to_retry",
            UploadState::Completed => "completed",
            UploadState::Failed => "failed",
            UploadState::Cancelled => "cancelled",
            UploadState::FileMissing => "file_missing",
            UploadState::FileChanged => "file_changed",
            UploadState::NeedsSignIn => "needs_sign_in",
        }
    }

    /// Inverse of [`as_str`](Self::as_str); unknown names (a newer journal) read as failed
    /// so nothing is silently resumed in a state this build does not understand.
    pub fn parse(s: &str) -> UploadState {
        match s {
            "queued" => UploadState::Queued,
            "uploading" => UploadState::Uploading,
            "paused" => UploadState::Paused,
            "waiting_to_retry" => UploadState::WaitingToRetry,
            "completed" => UploadState::Completed,
            "cancelled" => UploadState::Cancelled,
            "file_missing" => UploadState::FileMissing,
            "file_changed" => UploadState::FileChanged,
            "needs_sign_in" => UploadState::NeedsSignIn,
            _ => UploadState::Failed,
        }
    }

    /// No more work will happen without a user action.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            UploadState::Completed
                | UploadState::Failed
                | UploadState::Cancelled
                | UploadState::FileMissing
                | UploadState::FileChanged
                | UploadState::NeedsSignIn
        )
    }

    /// Not completed and not cancelled: the journal still owes this upload work.
    pub fn is_unfinished(self) -> bool {
        !matches!(self, UploadState::Completed | UploadState::Cancelled)
    }
}

/// One upload as the journal stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: UploadId,
    pub position: i64,
    pub path: String,
    pub name: String,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch when the fingerprint was taken.
    pub mtime_ns: i64,
    /// Inode and status-change time of that stamp (0 and 0 in rows from before they were kept).
    pub ino: u64,
    pub ctime_ns: i64,
    /// Size plus SHA-256 of the head and tail: an index for finding candidates, never proof.
    pub fingerprint: String,
    pub endpoint: String,
    pub upload_url: Option<String>,
    /// Bytes the server has confirmed.
    pub acked_offset: u64,
    pub state: UploadState,
    pub error: Option<String>,
    /// User metadata (filename and filetype are added when sending).
    pub metadata: BTreeMap<String, String>,
    /// Custom request headers. Values may be secrets: never log or show them.
    #[serde(skip_serializing)]
    pub headers: crate::redact::Headers,
    pub chunk_size: Option<u64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    /// Unix seconds after which the server may discard the partial upload.
    pub expires_at: Option<i64>,
    /// How many times the server lost the upload and it was created again.
    pub recreated: i64,
    /// For a completed upload, the hash of everything that was sent (see [`crate::identity::proof`]).
    pub content_hash: Option<String>,
    /// Bytes sent again because the server lost bytes it had confirmed.
    pub resent: u64,
    /// The profile whose credentials its requests carry (`None`: its own `headers`).
    pub profile_id: Option<crate::profiles::profile::ProfileId>,
    /// That profile's name.
    pub profile: Option<String>,
    /// `upload_url` was handed over (`--upload-url`): never created anew.
    pub given_url: bool,
    /// Failed because the server sends it to this host, which its profile does not allow:
    /// the user is asked whether to upload there.
    pub asks_host: Option<String>,
    /// When "Clear completed" took it out of the queue (the journal keeps it as history).
    pub cleared_at: Option<i64>,
    /// Milliseconds spent uploading, over every run.
    pub busy_ms: u64,
    /// Times it waited to retry.
    pub retries: u32,
    /// The last error it met, kept after it went on.
    pub last_error: Option<String>,
    /// The catalogue's code of `error` ([`crate::error::explain::CODES`]).
    pub error_code: Option<String>,
    /// The technical detail of `error` (status, server message, error chain).
    pub error_detail: Option<String>,
    /// Where it went, as identity sees it ([`crate::identity::destination`]).
    pub destination: Option<String>,
}

impl UploadRecord {
    /// Bytes per second over the time spent uploading, once completed.
    pub fn average_speed(&self) -> Option<f64> {
        (self.state == UploadState::Completed && self.busy_ms > 0)
            .then(|| self.size as f64 * 1000.0 / self.busy_ms as f64)
    }

    /// The file's stamp as the journal knows it.
    pub fn stamp(&self) -> crate::identity::fingerprint::FileStamp {
        crate::identity::fingerprint::FileStamp {
            size: self.size,
            mtime_ns: self.mtime_ns,
            ino: self.ino,
            ctime_ns: self.ctime_ns,
        }
    }
}

/// What a UI needs to draw one row: the journal record plus live numbers. Serialised, it is
/// what the window gets of a row (`QueueRow` in the window's types): the endpoint, the
/// technical detail and the upload URL stay out (with 100,000 rows the endpoint alone was a
/// third of each batch's JSON; the URL is a capability on many servers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(rename = "QueueRow")]
pub struct UploadView {
    pub id: UploadId,
    pub position: i64,
    pub path: String,
    pub name: String,
    pub size: u64,
    /// The endpoint without any `user:password@`. Not sent to the window.
    #[serde(skip_serializing, default)]
    #[ts(skip)]
    pub endpoint: String,
    /// The server upload's URL while the upload is unfinished (the journal keeps it after:
    /// 100,000 completed rows holding theirs cost 10 MiB). Not sent to UIs: on many servers
    /// it is a capability (whoever holds it can append to or delete the upload).
    #[serde(skip_serializing, default)]
    #[ts(skip)]
    pub upload_url: Option<String>,
    pub state: UploadState,
    /// What went wrong, as the catalogue says it (crate::error::explain).
    pub error: Option<String>,
    /// The catalogue's code of `error`: front ends act on it (one banner for network trouble).
    pub error_code: Option<String>,
    /// The technical detail of `error` (status, server message, error chain): the details
    /// panel and `-v` show it, the short line never. Not sent with the row.
    #[serde(skip_serializing, default)]
    #[ts(skip)]
    pub error_detail: Option<String>,
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
    /// Bytes sent again because the server lost bytes it had confirmed (progress went back).
    pub resent: u64,
    /// Something the user should know that is not an error (why progress went back).
    pub note: Option<String>,
    /// The profile it uploads with.
    pub profile: Option<String>,
    /// The host the server sends it to, which its profile does not allow yet: the window
    /// asks whether to upload there.
    pub asks_host: Option<String>,
    #[serde(skip)]
    #[ts(skip)]
    pub profile_id: Option<crate::profiles::profile::ProfileId>,
}

/// Why progress went back: the server lost bytes it had confirmed, and they are sent again.
pub fn resent_note(resent: u64) -> String {
    format!(
        "the server lost data it had confirmed: {} sent again",
        crate::error::explain::human_bytes(resent)
    )
}

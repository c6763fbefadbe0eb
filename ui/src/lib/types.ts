// Generated from the Rust types by src-tauri/src/bindings.rs (ts-rs): do not edit.
// After changing a type: UPDATE_BINDINGS=1 cargo test bindings

export type UploadState = "queued" | "uploading" | "paused" | "waiting_to_retry" | "completed" | "failed" | "cancelled" | "file_missing" | "file_changed" | "needs_sign_in";

export type QueueRow = { id: number, position: number, path: string, name: string, size: number, state: UploadState, 
/**
 * What went wrong, as the catalogue says it (crate::error::explain).
 */
error: string | null, 
/**
 * The catalogue's code of `error`: front ends act on it (one banner for network trouble).
 */
error_code: string | null, 
/**
 * Bytes the server has confirmed; never goes backwards within a server upload.
 */
acked: number, 
/**
 * Bytes sent in the current request but not yet confirmed (for smooth bars).
 */
in_flight: number, 
/**
 * Bytes per second, exponential moving average.
 */
speed: number, 
/**
 * Seconds to completion at the current speed.
 */
eta_secs: number | null, 
/**
 * For waiting_to_retry: milliseconds since the epoch of the next attempt.
 */
retry_at_ms: number | null, recreated: number, 
/**
 * Bytes sent again because the server lost bytes it had confirmed (progress went back).
 */
resent: number, 
/**
 * Something the user should know that is not an error (why progress went back).
 */
note: string | null, 
/**
 * The profile it uploads with.
 */
profile: string | null, 
/**
 * The host the server sends it to, which its profile does not allow yet: the window
 * asks whether to upload there.
 */
asks_host: string | null, };

export type QueueBatch = { changed: Array<QueueRow>, removed: Array<number>, 
/**
 * `changed` is the whole queue: replace, don't merge.
 */
reset?: boolean, };

export type AddResult = { "kind": "added", id: number, path: string, } | { "kind": "resumed", id: number, path: string, } | { "kind": "already_uploaded", id: number, path: string, } | { "kind": "restarted", id: number, path: string, } | { "kind": "rejected", path: string, error: string, };

export type ServerCaps = { versions: Array<string>, extensions: Array<string>, max_size: number | null, checksum_algorithms: Array<string>, 
/**
 * Why OPTIONS told nothing (a gateway answering 405, 404 or 401, or a page without
 * Tus-Version), when it did not: uploads then go ahead with tus core alone, as
 * tus-js-client does (it never sends OPTIONS).
 */
undiscovered: string | null, };

export type AppInfo = { version: string, data_dir: string, };

export type HeaderSetting = { name: string, value: string | null, secret: boolean, };

export type ProfileView = { name: string, endpoint: string, headers: Array<HeaderSetting>, metadata: Record<string, string>, chunk_size: number | null, 
/**
 * The server takes exactly `chunk_size` bytes per request.
 */
exact_chunk: boolean, allowed_hosts: Array<string>, refused_hosts: Array<string>, 
/**
 * Prints `Name: value` lines: credentials fetched when needed.
 */
header_command: string | null, header_ttl_secs: number | null, method_override: boolean, };

export type WatchedFolder = { path: string, 
/**
 * The profile its uploads use; None = the one drops go to.
 */
profile: string | null, 
/**
 * Name patterns (`*`, `?`) not uploaded; new folders start with
 * [`crate::watch::folder::DEFAULT_IGNORE`].
 */
ignore: Array<string>, };

export type Settings = { 
/**
 * The profile drops, the file dialogs and command lines upload with.
 */
drop_profile: string | null, 
/**
 * Connections at once.
 */
parallel: number, 
/**
 * Connections per file (parts of a large file).
 */
parts: number, 
/**
 * Files from this many MiB on are split into parts.
 */
parts_min_mib: number, bandwidth: number, 
/**
 * The alternative limit (the status bar's turtle), bytes per second, 0 = none.
 */
alt_bandwidth: number, alt_speed: boolean, auto_resume: boolean, remove_completed_after_days: number | null, 
/**
 * Closing the window while uploads are active keeps them going in the tray.
 */
keep_in_tray: boolean, 
/**
 * Start at login, in the tray.
 */
start_at_login: boolean, watched_folders: Array<WatchedFolder>, 
/**
 * Seconds a watched file must stay unchanged before it is taken.
 */
watch_settle_secs: number, };

export type CmdError = { 
/**
 * [`tusker_core::Error::code`], or `invalid_input` for a value the shell refused.
 */
code: string, message: string, };

export type Added = { added: number, resumed: number, restarted: number, already_uploaded: number, 
/**
 * The first [`REJECTED_SHOWN`] skipped files; `rejected_count` counts them all.
 */
rejected: Array<RejectedFile>, rejected_count: number, 
/**
 * Set when files were already uploaded: the notice offers "Upload again" with it.
 */
again: number | null, error: CmdError | null, 
/**
 * The watched folder these files came from (None: a drop, a dialog, a command line).
 */
folder: string | null, };

export type UploadDetails = { id: number, name: string, path: string, size: number, 
/**
 * Bytes the server has confirmed.
 */
acked: number, state: UploadState, 
/**
 * The endpoint (without any user:password).
 */
endpoint: string, profile: string | null, retries: number, last_error: string | null, 
/**
 * The technical detail of the current error (status, server message, error chain).
 */
error_detail: string | null, 
/**
 * How each request's bytes are checked, in words.
 */
checksum: string, 
/**
 * The journal holds the server upload's URL (it can be copied, never shown).
 */
has_upload_url: boolean, created_at: number, completed_at: number | null, 
/**
 * Bytes per second over the time spent uploading, once completed.
 */
average_speed: number | null, 
/**
 * The server lost the upload and it was created again this many times.
 */
recreated: number, 
/**
 * Tusker's content hash of what was sent (completed uploads).
 */
content_hash: string | null, };

export type HistoryEntry = { id: number, name: string, path: string, size: number, completed_at: number, average_speed: number | null, profile: string | null, endpoint: string, 
/**
 * Still a row of the queue (not cleared).
 */
in_queue: boolean, };

export type RejectedFile = { path: string, error: string, };

export type Action = "pause" | "resume" | "retry" | "restart" | "cancel";

/** What a row offers in each state (tusker_core::queue::lifecycle::actions); Remove is always offered. */
export const ACTIONS: Record<UploadState, Action[]> = {
  queued: ['pause', 'cancel'],
  uploading: ['pause', 'cancel'],
  paused: ['resume', 'cancel'],
  waiting_to_retry: ['pause', 'cancel'],
  completed: [],
  failed: ['retry', 'cancel'],
  cancelled: ['retry'],
  file_missing: ['retry', 'cancel'],
  file_changed: ['restart', 'cancel'],
  needs_sign_in: ['retry', 'cancel'],
};

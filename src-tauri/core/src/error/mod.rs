//! Typed errors of the engine. Each variant says what went wrong in words a user can act on;
//! [`Error::is_retryable`] decides whether the scheduler waits and tries again or gives up.

pub mod explain;

use std::time::Duration;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Network trouble: refused, reset, DNS, timeouts. Worth retrying.
    #[error("network error: {0}")]
    Network(NetworkError),

    /// No bytes moved for the configured stall timeout; the request was aborted.
    #[error("stalled: no progress for {0:?}")]
    Stalled(Duration),

    /// The whole request body was sent and no answer came for this long (a server may take a
    /// while to store a large upload, so this is longer than the stall timeout).
    #[error("no answer within {0:?} after the whole request was sent")]
    NoAnswer(Duration),

    /// A PATCH was accepted (2xx) but its Upload-Offset is missing, malformed, shows no
    /// progress or claims more than was sent. The server's HEAD is asked instead.
    #[error("the server's answer to a PATCH made no sense: {0}")]
    BadOffset(String),

    /// The server answered with a status the request did not expect.
    #[error("server answered {status} to {method}{}", body_suffix(.body))]
    Status {
        method: &'static str,
        status: u16,
        body: String,
        /// Parsed `Retry-After`, if the server sent one.
        retry_after: Option<Duration>,
    },

    /// 412: the server does not speak tus 1.0.0.
    #[error("the server does not support tus 1.0.0 (it supports: {supported})")]
    VersionUnsupported { supported: String },

    /// The endpoint answered, but not like a tus server.
    #[error("{url} is not a tus server: {reason}")]
    NotTusServer { url: String, reason: String },

    /// The endpoint string is not a usable http(s) URL.
    #[error("invalid endpoint URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// A header the protocol needs is missing or malformed.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// The server's Tus-Max-Size is below the file size.
    #[error("file is {size} bytes but the server accepts at most {max} bytes")]
    TooLarge { size: u64, max: u64 },

    /// User metadata that cannot be sent (bad key).
    #[error("invalid metadata key {0:?}: keys must be non-empty ASCII without spaces or commas")]
    InvalidMetadataKey(String),

    /// A custom header that reqwest would reject.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),

    /// The server sends the upload to a host the profile does not allow (a Location or a
    /// redirect elsewhere). The app asks the user; the CLI names the option.
    #[error(
        "the server sends the upload to another host ({0}), which this profile does not allow"
    )]
    HostNotAllowed(String),

    /// The upload's server is not one its profile's credentials were given for (the profile
    /// now points elsewhere): none of them are sent, and the upload waits for sign-in.
    #[error("profile {profile:?} has no credentials for {here} (they were given for {there})")]
    CredentialsElsewhere {
        profile: String,
        here: String,
        there: String,
    },

    /// A 307/308 to a request with a body (sent already): send it again to this URL. Only
    /// its origin is ever shown: an upload URL is a capability on many servers.
    #[error("the server moved the request to another URL on {}", crate::origin::origin_of(.0).unwrap_or_else(|| "an unknown host".into()))]
    Moved(String),

    /// An upload URL handed over by a service (`--upload-url`) cannot take this file.
    #[error("the upload URL cannot be used: {0}")]
    UploadUrl(String),

    /// The keyring (or the secrets file) failed.
    #[error("secrets: {0}")]
    Secrets(String),

    /// A profile's header command failed or printed no usable header.
    #[error("the header command failed: {0}")]
    HeaderCommand(String),

    /// The local file is gone.
    #[error("file missing: {0}")]
    FileMissing(String),

    /// The local file's content differs from what was being uploaded.
    #[error("file changed on disk since the upload started: {0}")]
    FileChanged(String),

    /// The file at an upload's path is not the one it was (another inode: replaced by an
    /// editor's save, or swapped). Nothing of it was read: it is proven before anything more
    /// is sent.
    #[error("{0} was replaced by another file")]
    Replaced(String),

    /// An entry of a dropped folder left out on purpose (a symlink leading elsewhere).
    #[error("skipped {0}")]
    Skipped(String),

    /// Not a regular file (directory handled elsewhere; FIFOs, devices, sockets refused).
    #[error("not a regular file: {0}")]
    NotAFile(String),

    /// Reading the local file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// Any other local I/O failure.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// The journal (SQLite) failed.
    #[error("journal error: {0}")]
    Store(rusqlite::Error),

    /// The disk (or quota) holding the journal is full: progress cannot be recorded, so
    /// uploads stop rather than run unrecorded. What the journal holds is intact.
    #[error("the disk holding the journal is full ({0}): free some space, then resume")]
    JournalFull(String),

    /// Another program (a backup tool, an `sqlite3` shell) holds a write lock on the journal.
    /// Nothing is lost: writes wait and are tried again once the lock is gone.
    #[error("the journal is locked by another program ({0}); waiting for it to let go")]
    JournalBusy(String),

    /// The journal file is not a database or is damaged. It is left as it is.
    #[error("the journal is damaged ({0}); it was left untouched: move it away to start with an empty queue")]
    JournalCorrupt(String),

    /// A TLS failure (certificate, handshake, a server that does not speak https): retrying
    /// the same request would fail the same way.
    #[error("TLS error: {0}")]
    Tls(String),

    /// Another engine already owns this data directory.
    #[error("the data directory {dir} is in use by another Tusker process ({holder})")]
    Locked { dir: String, holder: String },

    /// An id that the queue does not hold.
    #[error("no upload with id {0}")]
    UnknownUpload(i64),

    /// Only a completed upload can be cleared from the queue into the history.
    #[error("upload {0} has not completed; only completed uploads go to the history")]
    NotCompleted(i64),

    /// The engine task has stopped.
    #[error("the engine has shut down")]
    EngineStopped,

    /// The operation was interrupted by pause/cancel/shutdown.
    #[error("interrupted")]
    Interrupted,
}

/// A network failure: what it looked like, the host it was about, and the error chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkError {
    pub kind: NetKind,
    /// `host:port` of the request (never the path: upload URLs are capabilities).
    pub host: Option<String>,
    pub detail: String,
}

impl NetworkError {
    pub fn new(host: Option<String>, detail: String) -> NetworkError {
        NetworkError {
            kind: NetKind::of(&detail),
            host,
            detail,
        }
    }
}

impl std::fmt::Display for NetworkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl From<&str> for NetworkError {
    fn from(s: &str) -> NetworkError {
        NetworkError::new(None, s.to_string())
    }
}

impl From<String> for NetworkError {
    fn from(s: String) -> NetworkError {
        NetworkError::new(None, s)
    }
}

fn body_suffix(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        let short: String = body.chars().take(200).collect();
        format!(": {short}")
    }
}

impl Error {
    /// Transient failures that a later attempt may get past. Client errors (4xx other than
    /// 408/423/429) are final: repeating the same request would get the same answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Network(_) | Error::Stalled(_) | Error::NoAnswer(_) | Error::JournalBusy(_) => {
                true
            }
            Error::Status { status, .. } => {
                matches!(status, 408 | 423 | 429) || (500..=599).contains(status)
            }
            _ => false,
        }
    }

    /// Not an answer from the server: the way to it (what going offline looks like) or the
    /// journal (held by another program) is unavailable for now. Network patience waits
    /// these out.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            Error::Network(_) | Error::Stalled(_) | Error::NoAnswer(_) | Error::JournalBusy(_)
        )
    }

    /// The server refused the credentials (401, or 403 which gateways use the same way).
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A stable name for the kind of error, for front ends that act on it (the message is
    /// for people and may change).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Network(_) => "network",
            Error::Stalled(_) => "stalled",
            Error::NoAnswer(_) => "no_answer",
            Error::BadOffset(_) => "bad_offset",
            Error::Status { .. } => "server_status",
            Error::VersionUnsupported { .. } => "version_unsupported",
            Error::NotTusServer { .. } => "not_tus_server",
            Error::InvalidUrl { .. } => "invalid_url",
            Error::Protocol(_) => "protocol",
            Error::TooLarge { .. } => "too_large",
            Error::InvalidMetadataKey(_) => "invalid_metadata_key",
            Error::InvalidHeader(_) => "invalid_header",
            Error::HeaderCommand(_) => "header_command",
            Error::Secrets(_) => "secrets",
            Error::UploadUrl(_) => "upload_url",
            Error::Moved(_) => "moved",
            Error::HostNotAllowed(_) => "host_not_allowed",
            Error::CredentialsElsewhere { .. } => "credentials_elsewhere",
            Error::FileMissing(_) => "file_missing",
            Error::FileChanged(_) => "file_changed",
            Error::Replaced(_) => "replaced",
            Error::NotAFile(_) => "not_a_file",
            Error::Skipped(_) => "skipped",
            Error::Read { .. } => "read",
            Error::Io(_) => "io",
            Error::Store(_) => "journal",
            Error::JournalFull(_) => "journal_full",
            Error::JournalBusy(_) => "journal_busy",
            Error::JournalCorrupt(_) => "journal_corrupt",
            Error::Tls(_) => "tls",
            Error::Locked { .. } => "locked",
            Error::UnknownUpload(_) => "unknown_upload",
            Error::NotCompleted(_) => "not_completed",
            Error::EngineStopped => "engine_stopped",
            Error::Interrupted => "interrupted",
        }
    }

    /// The HTTP status, if this came from a server answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Error::JournalFull(e.to_string()),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                Error::JournalBusy(e.to_string())
            }
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                Error::JournalCorrupt(e.to_string())
            }
            _ => Error::Store(e),
        }
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        // The host is named to the user ("Can't reach host:port"); the rest of the upload URL
        // stays out of the message: it is a capability, and the UI never gets upload URLs.
        let host = e.url().and_then(|u| {
            let h = u.host_str()?;
            Some(match u.port_or_known_default() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        });
        let e = e.without_url();
        // reqwest's Display omits the cause chain, which is where "connection refused" lives.
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            let text = s.to_string();
            if !msg.contains(&text) {
                msg.push_str(": ");
                msg.push_str(&text);
            }
            src = s.source();
        }
        // Never echo a URL's userinfo (credentials) into logs or the UI.
        let msg = crate::redact::strip_userinfo(&msg);
        // OpenSSL (native-tls) failures: certificates, handshakes, plain http on an https URL.
        let tls = ["SSL routines", "certificate", "ssl3_", "tls_"];
        if tls.iter().any(|t| msg.contains(t)) {
            return Error::Tls(msg);
        }
        Error::Network(NetworkError::new(host, msg))
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
/// How a network failure looked, from the operating system's error in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetKind {
    Dns,
    Refused,
    Reset,
    Timeout,
    Unreachable,
    Other,
}

impl NetKind {
    /// Classifies an error chain's text (Linux's and hyper's wording; pinned by tests).
    pub fn of(chain: &str) -> NetKind {
        let c = chain.to_ascii_lowercase();
        if c.contains("dns error")
            || c.contains("failed to lookup address")
            || c.contains("name or service not known")
            || c.contains("temporary failure in name resolution")
            || c.contains("no address associated")
        {
            NetKind::Dns
        } else if c.contains("connection refused") {
            NetKind::Refused
        } else if c.contains("network is unreachable")
            || c.contains("no route to host")
            || c.contains("host is unreachable")
        {
            NetKind::Unreachable
        } else if c.contains("timed out") || c.contains("timeout") {
            NetKind::Timeout
        } else if c.contains("connection reset")
            || c.contains("broken pipe")
            || c.contains("connection closed")
            || c.contains("connection aborted")
            || c.contains("unexpected eof")
            || c.contains("incomplete message")
        {
            NetKind::Reset
        } else {
            NetKind::Other
        }
    }
}

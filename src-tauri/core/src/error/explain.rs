//! What the user reads about an error: one catalogue, keyed by a stable code, shared by the
//! app's rows, notifications and the CLI. Each sentence names the cause in plain words and
//! what happens next or what to do; the technical detail (status, server message, error
//! chain) travels beside it for the details panel and `-v`, never in the short line.

use crate::error::{Error, NetKind};

/// An error as a person reads it, with its code and the technical detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    /// Stable: front ends act on it (a shared network banner, which button to offer).
    pub code: &'static str,
    /// The short line: cause in plain words, then what happens or what to do.
    pub text: String,
    /// The technical detail, for the details panel and logs.
    pub detail: String,
}

/// Tests and callers that look for words of the detail read a `Said` as its detail.
impl std::ops::Deref for Said {
    type Target = str;
    fn deref(&self) -> &str {
        &self.detail
    }
}

impl std::fmt::Display for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// A reason that is already words (no error behind it).
impl From<&str> for Said {
    fn from(s: &str) -> Said {
        Said::plain("other", s)
    }
}

impl From<String> for Said {
    fn from(s: String) -> Said {
        Said::plain("other", &s)
    }
}

/// Every code the catalogue knows, with what a front end shows for it (for tables and tests).
pub const CODES: &[&str] = &[
    "network.dns",
    "network.refused",
    "network.reset",
    "network.timeout",
    "network.unreachable",
    "network.other",
    "stalled",
    "no_answer",
    "tls",
    "http.401",
    "http.403",
    "http.404",
    "http.409",
    "http.410",
    "http.412",
    "http.413",
    "http.423",
    "http.429",
    "http.5xx",
    "http.460",
    "http.other",
    "bad_answer",
    "not_tus_server",
    "too_large",
    "invalid_url",
    "invalid_input",
    "host_not_allowed",
    "credentials_elsewhere",
    "not_terminated",
    "upload_url",
    "header_command",
    "secrets",
    "file_missing",
    "file_changed",
    "file_unreadable",
    "not_a_file",
    "skipped",
    "disk_full",
    "journal_busy",
    "journal",
    "locked",
    "internal",
    "other",
];

/// Failures (name, sentence) grouped by sentence: the most frequent first, ties in the
/// sentences' order, each with its names. The window's notifications and the CLI's summary
/// say ten uploads that cannot reach the server in one line.
pub fn by_cause<'a>(
    failures: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut causes: Vec<(&str, Vec<&str>)> = Vec::new();
    for (name, why) in failures {
        match causes.iter_mut().find(|(w, _)| *w == why) {
            Some((_, names)) => names.push(name),
            None => causes.push((why, vec![name])),
        }
    }
    causes.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(b.0)));
    causes
}

/// Whether a code is a network outage (the window shows one banner for all such rows).
pub fn is_network(code: &str) -> bool {
    code.starts_with("network.") || code == "stalled"
}

const DISK_FULL: &str = "The disk is full: free some space, then resume";

impl Said {
    fn plain(code: &'static str, s: &str) -> Said {
        Said {
            code,
            text: s.to_string(),
            detail: s.to_string(),
        }
    }

    fn new(code: &'static str, text: String, e: &Error) -> Said {
        Said {
            code,
            text,
            detail: e.to_string(),
        }
    }

    /// A cancelled or removed upload whose server upload was left alone, because the DELETE
    /// would have carried its credentials where they may not go (`why`).
    pub fn not_terminated(why: &Error) -> Said {
        let text = match why {
            Error::HostNotAllowed(host) => format!(
                "Cancelled. Its upload on {host} was not deleted there: the profile's credentials may not go to {host} (the server lets it expire)"
            ),
            Error::CredentialsElsewhere { here, .. } => format!(
                "Cancelled. Its upload on {here} was not deleted there: the profile has no credentials for {here} any more (the server lets it expire)"
            ),
            other => format!(
                "Cancelled. Its server upload was not deleted: {} (the server lets it expire)",
                Said::of(other).text
            ),
        };
        Said::new("not_terminated", text, why)
    }

    /// Adds what happened in the end (e.g. "gave up after 12 tries") to both lines.
    pub fn then(mut self, what: &str) -> Said {
        self.text = format!("{}; {what}", self.text);
        self.detail = format!("{} ({what})", self.detail);
        self
    }

    /// The catalogue's sentence for an error.
    pub fn of(e: &Error) -> Said {
        // Exhaustive: a new error needs its sentence before it compiles.
        let said = match e {
            Error::Network(_) | Error::Stalled(_) | Error::NoAnswer(_) | Error::Tls(_) => {
                connection(e)
            }
            Error::Status { .. }
            | Error::VersionUnsupported { .. }
            | Error::BadOffset(_)
            | Error::Protocol(_)
            | Error::Moved(_)
            | Error::NotTusServer { .. }
            | Error::TooLarge { .. } => server(e),
            Error::InvalidUrl { .. }
            | Error::InvalidMetadataKey(_)
            | Error::InvalidHeader(_)
            | Error::HostNotAllowed(_)
            | Error::CredentialsElsewhere { .. }
            | Error::UploadUrl(_)
            | Error::HeaderCommand(_)
            | Error::Secrets(_) => settings(e),
            Error::FileMissing(_)
            | Error::FileChanged(_)
            | Error::Replaced(_)
            | Error::Read { .. }
            | Error::NotAFile(_)
            | Error::Skipped(_) => file(e),
            Error::Io(_)
            | Error::JournalFull(_)
            | Error::JournalBusy(_)
            | Error::Store(_)
            | Error::JournalCorrupt(_)
            | Error::Locked { .. }
            | Error::UnknownUpload(_)
            | Error::NotCompleted(_)
            | Error::EngineStopped
            | Error::Interrupted => None,
        };
        said.unwrap_or_else(|| Said::here(e))
    }

    /// This machine: the disk, the journal, and what should not happen.
    fn here(e: &Error) -> Said {
        match e {
            Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
                Said::new("disk_full", DISK_FULL.into(), e)
            }
            Error::JournalFull(_) => Said::new(
                "disk_full",
                "The disk holding Tusker's journal is full: free some space, then resume".into(),
                e,
            ),
            Error::JournalBusy(_) => Said::new(
                "journal_busy",
                "Another program holds Tusker's journal: waiting for it to let go".into(),
                e,
            ),
            Error::Store(_) | Error::JournalCorrupt(_) => Said::new("journal", e.to_string(), e),
            Error::Locked { .. } => Said::new("locked", e.to_string(), e),
            Error::Io(_) => Said::new("internal", format!("Something failed here: {e}"), e),
            Error::UnknownUpload(_)
            | Error::NotCompleted(_)
            | Error::EngineStopped
            | Error::Interrupted => Said::new("internal", e.to_string(), e),
            _ => Said::new("internal", e.to_string(), e),
        }
    }
}

/// The connection: the network, a stall, no answer, TLS.
fn connection(e: &Error) -> Option<Said> {
    Some(match e {
            Error::Network(n) => {
                let host = n.host.as_deref().unwrap_or("the server");
                let (code, text) = match n.kind {
                    NetKind::Dns => ("network.dns", format!("Can't find {host}: the name does not resolve (offline, or a typo in the URL)")),
                    NetKind::Refused => ("network.refused", format!("Can't reach {host}: connection refused (is the server running?)")),
                    NetKind::Reset => ("network.reset", format!("The connection to {host} was cut")),
                    NetKind::Timeout => ("network.timeout", format!("{host} did not answer in time")),
                    NetKind::Unreachable => ("network.unreachable", format!("No route to {host}: the network is down")),
                    NetKind::Other => ("network.other", format!("Network problem talking to {host}")),
                };
                Said::new(code, text, e)
            }
            Error::Stalled(d) => Said::new(
                "stalled",
                format!("Nothing moved for {} s: reconnecting", d.as_secs()),
                e,
            ),
            Error::NoAnswer(d) => Said::new(
                "no_answer",
                format!(
                    "The server did not answer within {} s of receiving the bytes",
                    d.as_secs()
                ),
                e,
            ),
            Error::Tls(_) => Said::new(
                "tls",
                "The secure connection failed (certificate or TLS): check the URL and the server's certificate".into(),
                e,
            ),
        _ => return None,
    })
}

/// The server's answers: statuses, versions, offsets, not tus, too large.
fn server(e: &Error) -> Option<Said> {
    Some(match e {
        Error::Status { status, .. } => {
            let (code, text) = match status {
                    401 => ("http.401", "The server refused the credentials (401): sign in again with new ones for this profile".to_string()),
                    403 => ("http.403", "The server refused access (403): check this profile's credentials".to_string()),
                    404 => ("http.404", "Not found on the server (404): check the endpoint URL".to_string()),
                    409 => ("http.409", "The server holds a different offset (409): asking where to continue".to_string()),
                    410 => ("http.410", "The server removed this upload (410)".to_string()),
                    413 => ("http.413", "The server takes smaller requests (413): sending smaller pieces".to_string()),
                    423 => ("http.423", "The upload is locked on the server (423): trying again shortly".to_string()),
                    429 => ("http.429", "The server is busy (429)".to_string()),
                    460 => ("http.460", "A checksum did not match (460): the piece is sent again".to_string()),
                    s if (500..=599).contains(s) => ("http.5xx", format!("Server error ({s})")),
                    s => ("http.other", format!("The server refused the request ({s})")),
                };
            Said::new(code, text, e)
        }
        Error::VersionUnsupported { supported } => Said::new(
            "http.412",
            format!(
                "The server does not speak tus 1.0.0 (it speaks {})",
                supported
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            e,
        ),
        Error::BadOffset(_) | Error::Protocol(_) | Error::Moved(_) => {
            Said::new("bad_answer", "The server's answer made no sense".into(), e)
        }
        Error::NotTusServer { url, .. } => Said::new(
            "not_tus_server",
            format!(
                "{} is not a tus server: check the endpoint URL",
                crate::redact::strip_userinfo(url)
            ),
            e,
        ),
        Error::TooLarge { size, max } => Said::new(
            "too_large",
            format!(
                "The file is {}; the server takes at most {}",
                human_bytes(*size),
                human_bytes(*max)
            ),
            e,
        ),
        _ => return None,
    })
}

/// What the person set: URLs, headers and metadata, hosts, credentials, header commands.
fn settings(e: &Error) -> Option<Said> {
    Some(match e {
            Error::InvalidUrl { url, reason } => Said::new(
                "invalid_url",
                format!(
                    "{:?} is not a usable http(s) URL: {reason}",
                    crate::redact::strip_userinfo(url)
                ),
                e,
            ),
            Error::InvalidMetadataKey(_) | Error::InvalidHeader(_) => {
                Said::new("invalid_input", e.to_string(), e)
            }
            Error::HostNotAllowed(host) => Said::new(
                "host_not_allowed",
                format!("The server sends this upload to {host}, which its profile does not list"),
                e,
            ),
            Error::CredentialsElsewhere {
                profile,
                here,
                there,
            } => Said::new(
                "credentials_elsewhere",
                format!(
                    "This upload is on {here}, but profile {profile:?} now uploads to {there} and its credentials were not given for {here}: nothing was sent. Sign in… to allow {here} in the profile, or cancel it"
                ),
                e,
            ),
            Error::UploadUrl(m) => Said::new(
                "upload_url",
                format!("The upload URL can't be used: {m}"),
                e,
            ),
            Error::HeaderCommand(m) => Said::new(
                "header_command",
                format!(
                    "The header command failed ({}): fix it, or sign in again",
                    m.lines().next().unwrap_or("").trim()
                ),
                e,
            ),
            Error::Secrets(_) => Said::new(
                "secrets",
                "The keyring holding the credentials is not available: unlock it, then Retry".into(),
                e,
            ),
        _ => return None,
    })
}

/// The file: gone, changed, unreadable, not a file, skipped.
fn file(e: &Error) -> Option<Said> {
    Some(match e {
        Error::FileMissing(_) => Said::new(
            "file_missing",
            "The file is gone (deleted or moved away): put it back, then Retry".into(),
            e,
        ),
        Error::FileChanged(_) | Error::Replaced(_) => Said::new(
            "file_changed",
            "The file changed after its upload started: Restart uploads the new content".into(),
            e,
        ),
        Error::Read { source, .. } => {
            if source.kind() == std::io::ErrorKind::StorageFull {
                return Some(Said::new("disk_full", DISK_FULL.into(), e));
            }
            let why = match source.kind() {
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => source.to_string(),
            };
            Said::new("file_unreadable", format!("Can't read the file: {why}"), e)
        }
        Error::NotAFile(_) => Said::new(
            "not_a_file",
            "Not a regular file (a pipe, device or socket)".into(),
            e,
        ),
        Error::Skipped(_) => Said::new(
            "skipped",
            "Skipped: a symlink leading out of the dropped folder".into(),
            e,
        ),
        _ => return None,
    })
}

/// Bytes in binary units, one decimal ("3.0 MiB").
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn net(kind_text: &str) -> Error {
        Error::Network(crate::error::NetworkError::new(
            Some("127.0.0.1:1303".into()),
            format!(
                "error sending request: client error (Connect): tcp connect error: {kind_text}"
            ),
        ))
    }

    fn status(s: u16) -> Error {
        Error::Status {
            method: "PATCH",
            status: s,
            body: "details from the server".into(),
            retry_after: None,
        }
    }

    /// One error of every kind the engine makes, with the code the catalogue must give.
    fn every_error() -> Vec<(Error, &'static str)> {
        let io = |k| std::io::Error::new(k, "x");
        vec![
            (
                net("failed to lookup address information: Name or service not known"),
                "network.dns",
            ),
            (net("Connection refused (os error 111)"), "network.refused"),
            (
                net("Connection reset by peer (os error 104)"),
                "network.reset",
            ),
            (net("operation timed out"), "network.timeout"),
            (
                net("Network is unreachable (os error 101)"),
                "network.unreachable",
            ),
            (net("something else"), "network.other"),
            (Error::Stalled(Duration::from_secs(30)), "stalled"),
            (Error::NoAnswer(Duration::from_secs(180)), "no_answer"),
            (Error::Tls("certificate verify failed".into()), "tls"),
            (status(401), "http.401"),
            (status(403), "http.403"),
            (status(404), "http.404"),
            (status(409), "http.409"),
            (status(410), "http.410"),
            (
                Error::VersionUnsupported {
                    supported: "0.2.2".into(),
                },
                "http.412",
            ),
            (status(413), "http.413"),
            (status(423), "http.423"),
            (status(429), "http.429"),
            (status(503), "http.5xx"),
            (status(460), "http.460"),
            (status(418), "http.other"),
            (Error::BadOffset("abc".into()), "bad_answer"),
            (Error::Protocol("no Location".into()), "bad_answer"),
            (Error::Moved("http://x/".into()), "bad_answer"),
            (
                Error::NotTusServer {
                    url: "http://u:p@x/".into(),
                    reason: "404".into(),
                },
                "not_tus_server",
            ),
            (
                Error::TooLarge {
                    size: 11 << 20,
                    max: 10 << 20,
                },
                "too_large",
            ),
            (
                Error::InvalidUrl {
                    url: "x".into(),
                    reason: "y".into(),
                },
                "invalid_url",
            ),
            (Error::InvalidMetadataKey("a b".into()), "invalid_input"),
            (Error::InvalidHeader("a\nb".into()), "invalid_input"),
            (
                Error::HostNotAllowed("cdn.example".into()),
                "host_not_allowed",
            ),
            (
                Error::CredentialsElsewhere {
                    profile: "p".into(),
                    here: "a.example".into(),
                    there: "b.example".into(),
                },
                "credentials_elsewhere",
            ),
            (Error::UploadUrl("gone".into()), "upload_url"),
            (
                Error::HeaderCommand("exit 1\nstack".into()),
                "header_command",
            ),
            (Error::Secrets("no D-Bus".into()), "secrets"),
            (Error::FileMissing("/a".into()), "file_missing"),
            (Error::FileChanged("/a".into()), "file_changed"),
            (
                Error::Read {
                    path: "/a".into(),
                    source: io(std::io::ErrorKind::PermissionDenied),
                },
                "file_unreadable",
            ),
            (
                Error::Read {
                    path: "/a".into(),
                    source: io(std::io::ErrorKind::StorageFull),
                },
                "disk_full",
            ),
            (Error::NotAFile("/a".into()), "not_a_file"),
            (Error::Skipped("/a".into()), "skipped"),
            (Error::Io(io(std::io::ErrorKind::StorageFull)), "disk_full"),
            (Error::Io(io(std::io::ErrorKind::Other)), "internal"),
            (Error::JournalFull("disk I/O".into()), "disk_full"),
            (Error::JournalBusy("locked".into()), "journal_busy"),
            (Error::JournalCorrupt("not a database".into()), "journal"),
            (
                Error::Locked {
                    dir: "/d".into(),
                    holder: "pid 1".into(),
                },
                "locked",
            ),
            (Error::UnknownUpload(1), "internal"),
            (Error::NotCompleted(1), "internal"),
            (Error::EngineStopped, "internal"),
            (Error::Interrupted, "internal"),
        ]
    }

    #[test]
    fn every_error_has_a_sentence_in_the_catalogue_and_no_raw_chain() {
        for (e, want) in every_error() {
            let said = Said::of(&e);
            assert_eq!(said.code, want, "{e}");
            assert!(CODES.contains(&said.code), "{} is not in CODES", said.code);
            assert!(!said.text.trim().is_empty(), "{e}");
            for raw in [
                "error sending request",
                "client error (Connect)",
                "os error",
                "tcp connect error",
            ] {
                assert!(
                    !said.text.contains(raw),
                    "{:?} shows the chain: {}",
                    said.code,
                    said.text
                );
            }
            assert_eq!(said.detail, e.to_string(), "the detail keeps everything");
        }
    }

    #[test]
    fn every_code_is_made_by_some_error() {
        let mut made: Vec<&str> = every_error()
            .iter()
            .map(|(e, _)| Said::of(e).code)
            .collect();
        let kept = Said::not_terminated(&Error::HostNotAllowed("cdn.example".into()));
        assert!(kept.text.contains("not deleted") && kept.text.contains("cdn.example"));
        made.push(kept.code);
        for code in CODES {
            if *code == "other" {
                continue;
            }
            assert!(made.contains(code), "{code} has no error that makes it");
        }
    }

    #[test]
    fn network_sentences_name_the_host_and_the_cause() {
        let said = Said::of(&net("Connection refused (os error 111)"));
        assert_eq!(
            said.text,
            "Can't reach 127.0.0.1:1303: connection refused (is the server running?)"
        );
        assert!(is_network(said.code));
        assert!(!is_network(Said::of(&status(401)).code));
    }

    #[test]
    fn no_password_of_an_endpoint_reaches_the_text() {
        let said = Said::of(&Error::NotTusServer {
            url: "http://user:hunter2@x/files".into(),
            reason: "404".into(),
        });
        assert!(!said.text.contains("hunter2"), "{}", said.text);
    }

    #[test]
    fn failures_group_by_sentence_most_frequent_first() {
        let groups = by_cause([
            ("a", "Z cause"),
            ("b", "B cause"),
            ("c", "Z cause"),
            ("d", "A cause"),
        ]);
        assert_eq!(
            groups,
            [
                ("Z cause", vec!["a", "c"]),
                ("A cause", vec!["d"]),
                ("B cause", vec!["b"])
            ]
        );
    }

    #[test]
    fn giving_up_is_said_on_both_lines() {
        let said = Said::of(&status(503)).then("gave up after 12 tries");
        assert_eq!(said.text, "Server error (503); gave up after 12 tries");
        assert!(said.detail.ends_with("(gave up after 12 tries)"));
        assert!(said.contains("503"), "reads as its detail");
    }
}

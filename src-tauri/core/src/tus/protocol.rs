//! tus 1.0.0 header grammar: parsing and formatting of the values the protocol exchanges.
//! Pure functions, so the property tests can hammer them without a server.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The only protocol version Tusker speaks.
pub const TUS_VERSION: &str = "1.0.0";
/// Content type every PATCH body carries.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// A metadata key is sent verbatim, so it must not break the header's `key value,key value` grammar.
pub fn validate_metadata_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii() && !c.is_ascii_control() && c != ' ' && c != ',');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidMetadataKey(key.to_string()))
    }
}

/// Formats `Upload-Metadata`: comma-separated `key base64(value)` pairs (an empty value has no
/// space or base64 part, as the spec allows).
pub fn encode_metadata(meta: &BTreeMap<String, String>) -> Result<String> {
    let mut parts = Vec::with_capacity(meta.len());
    for (k, v) in meta {
        validate_metadata_key(k)?;
        if v.is_empty() {
            parts.push(k.clone());
        } else {
            parts.push(format!("{k} {}", B64.encode(v.as_bytes())));
        }
    }
    Ok(parts.join(","))
}

/// Parses `Upload-Metadata` back into a map; values that are not UTF-8 are rejected.
pub fn decode_metadata(header: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in header.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let mut it = pair.splitn(2, ' ');
        let key = it.next().unwrap_or_default();
        validate_metadata_key(key)?;
        let value = match it.next() {
            Some(b) => {
                let bytes = B64
                    .decode(b.trim())
                    .map_err(|e| Error::Protocol(format!("metadata {key:?}: bad base64: {e}")))?;
                String::from_utf8(bytes)
                    .map_err(|_| Error::Protocol(format!("metadata {key:?}: value is not UTF-8")))?
            }
            None => String::new(),
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// Parses `Upload-Offset` / `Upload-Length`: a non-negative decimal integer, nothing else.
pub fn parse_u64_header(name: &str, value: Option<&str>) -> Result<u64> {
    let v = value.ok_or_else(|| Error::Protocol(format!("missing {name} header")))?;
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Protocol(format!(
            "{name} is not a non-negative integer: {v:?}"
        )));
    }
    v.parse::<u64>()
        .map_err(|_| Error::Protocol(format!("{name} is out of range: {v:?}")))
}

/// Checksum algorithms Tusker can compute, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    Sha256,
    Sha1,
}

impl ChecksumAlgorithm {
    /// The token used in `Upload-Checksum` and `Tus-Checksum-Algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha1 => "sha1",
        }
    }

    /// The strongest algorithm both sides support, given the server's list.
    pub fn choose(server: &[String]) -> Option<ChecksumAlgorithm> {
        let has = |n: &str| server.iter().any(|s| s.eq_ignore_ascii_case(n));
        if has("sha256") {
            Some(ChecksumAlgorithm::Sha256)
        } else if has("sha1") {
            Some(ChecksumAlgorithm::Sha1)
        } else {
            None
        }
    }
}

/// Formats `Upload-Checksum: <algorithm> <base64 digest>`.
pub fn format_checksum(alg: ChecksumAlgorithm, digest: &[u8]) -> String {
    format!("{} {}", alg.name(), B64.encode(digest))
}

/// Parses `Upload-Checksum` into the algorithm name and raw digest.
pub fn parse_checksum(header: &str) -> Result<(String, Vec<u8>)> {
    let mut it = header.trim().splitn(2, ' ');
    let alg = it.next().unwrap_or_default();
    let digest = it
        .next()
        .ok_or_else(|| Error::Protocol(format!("Upload-Checksum without digest: {header:?}")))?;
    if alg.is_empty() {
        return Err(Error::Protocol("Upload-Checksum without algorithm".into()));
    }
    let raw = B64
        .decode(digest.trim())
        .map_err(|e| Error::Protocol(format!("Upload-Checksum digest is not base64: {e}")))?;
    Ok((alg.to_ascii_lowercase(), raw))
}

/// Parses a comma-separated header list (Tus-Version, Tus-Extension, Tus-Checksum-Algorithm).
pub fn parse_list(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Parses `Upload-Expires` (an RFC 9110 HTTP-date).
pub fn parse_expires(value: &str) -> Result<SystemTime> {
    httpdate::parse_http_date(value.trim())
        .map_err(|_| Error::Protocol(format!("Upload-Expires is not an HTTP date: {value:?}")))
}

/// Formats a time as an HTTP-date (used by tests and the proxy).
pub fn format_http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `Upload-Concat` as a server reports it on HEAD (concatenation extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concat {
    Partial,
    /// The parts' URLs or paths, in order, as the server echoes them (rustus rebuilds them:
    /// `final; /files/a /files/b`).
    Final(Vec<String>),
}

/// Reads an `Upload-Concat` value leniently (case, spaces after `;`); `None` for anything else.
pub fn parse_upload_concat(value: &str) -> Option<Concat> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("partial") {
        return Some(Concat::Partial);
    }
    let (head, rest) = v.split_once(';')?;
    head.trim()
        .eq_ignore_ascii_case("final")
        .then(|| Concat::Final(rest.split_whitespace().map(str::to_string).collect()))
}

/// The `Upload-Concat` value of a final upload made of `parts` (their URLs, in order). A URL
/// with a space cannot be listed, and one ending in `/` is refused: rustus takes a part's id
/// from the last path segment and would silently leave that part out.
pub fn final_concat(parts: &[String]) -> Result<String> {
    if parts.is_empty() {
        return Err(Error::Protocol(
            "a final upload needs at least one part".into(),
        ));
    }
    for p in parts {
        if p.is_empty() || p.contains(char::is_whitespace) || p.ends_with('/') {
            return Err(Error::Protocol(format!(
                "the part URL {p:?} cannot be listed in a final upload"
            )));
        }
    }
    Ok(format!("final;{}", parts.join(" ")))
}

/// Splits `size` bytes into at most `parts` ranges `(start, len)` whose boundaries fall on
/// multiples of `align` (1 MiB: a part's block digests are then the file's own), none empty
/// (an empty file is one empty part). Whole blocks spread evenly, the earlier parts taking
/// the remainder; the short last block goes with the last part, never alone.
/// A file too small for that many aligned parts gets fewer.
pub fn split_parts(size: u64, parts: usize, align: u64) -> Vec<(u64, u64)> {
    let align = align.max(1);
    let full = size / align;
    let parts = (parts.max(1) as u64).min(full.max(1));
    let mut out = Vec::with_capacity(parts as usize);
    let mut start = 0;
    for i in 0..parts {
        let n = full / parts + u64::from(i < full % parts);
        let end = if i + 1 == parts {
            size
        } else {
            start + n * align
        };
        out.push((start, end - start));
        start = end;
    }
    out
}

/// What the server said about itself in answer to OPTIONS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ServerCaps {
    pub versions: Vec<String>,
    pub extensions: Vec<String>,
    pub max_size: Option<u64>,
    pub checksum_algorithms: Vec<String>,
    /// Why OPTIONS told nothing (a gateway answering 405, 404 or 401, or a page without
    /// Tus-Version), when it did not: uploads then go ahead with tus core alone, as
    /// tus-js-client does (it never sends OPTIONS).
    #[serde(default)]
    pub undiscovered: Option<String>,
}

impl ServerCaps {
    /// Whether the server advertises a tus extension.
    pub fn has(&self, ext: &str) -> bool {
        self.extensions.iter().any(|e| e.eq_ignore_ascii_case(ext))
    }

    /// Whether an extension is worth a request that may fail: advertised, or unknown because
    /// OPTIONS told nothing (termination: a DELETE the server may refuse).
    pub fn may_have(&self, ext: &str) -> bool {
        self.has(ext) || self.undiscovered.is_some()
    }

    /// What a server that did not answer OPTIONS is assumed to support: tus core only.
    pub fn core_only(why: String) -> ServerCaps {
        ServerCaps {
            versions: vec![TUS_VERSION.to_string()],
            undiscovered: Some(why),
            ..ServerCaps::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn metadata_examples() {
        let mut m = BTreeMap::new();
        m.insert(
            "filename".to_string(),
            "world_domination_plan.pdf".to_string(),
        );
        m.insert("is_confidential".to_string(), String::new());
        let h = encode_metadata(&m).unwrap();
        assert_eq!(
            h,
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential"
        );
        assert_eq!(decode_metadata(&h).unwrap(), m);
        assert!(encode_metadata(&[("a b".to_string(), "x".to_string())].into()).is_err());
        assert!(encode_metadata(&[("a,b".to_string(), "x".to_string())].into()).is_err());
        assert!(encode_metadata(&[(String::new(), "x".to_string())].into()).is_err());
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_u64_header("Upload-Offset", Some("42")).unwrap(), 42);
        assert!(parse_u64_header("Upload-Offset", Some("-1")).is_err());
        assert!(parse_u64_header("Upload-Offset", Some("1e3")).is_err());
        assert!(parse_u64_header("Upload-Offset", Some("")).is_err());
        assert!(parse_u64_header("Upload-Offset", None).is_err());
        assert!(parse_u64_header("Upload-Offset", Some("99999999999999999999999")).is_err());
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        let later = format_http_date(now + Duration::from_secs(10));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn checksum_choice() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ChecksumAlgorithm::choose(&s(&["md5", "sha1", "SHA256"])),
            Some(ChecksumAlgorithm::Sha256)
        );
        assert_eq!(
            ChecksumAlgorithm::choose(&s(&["md5", "sha1"])),
            Some(ChecksumAlgorithm::Sha1)
        );
        assert_eq!(ChecksumAlgorithm::choose(&s(&["md5", "crc32"])), None);
    }

    proptest! {
        #[test]
        fn metadata_roundtrips(m in proptest::collection::btree_map("[!-+\\--~]{1,12}", "\\PC{0,40}", 0..8)) {
            let h = encode_metadata(&m).unwrap();
            prop_assert_eq!(decode_metadata(&h).unwrap(), m);
        }

        #[test]
        fn offset_roundtrips(n in any::<u64>()) {
            prop_assert_eq!(parse_u64_header("Upload-Offset", Some(&n.to_string())).unwrap(), n);
        }

        #[test]
        fn offset_rejects_garbage(s in "\\PC*") {
            let valid = !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) && s.trim().parse::<u64>().is_ok();
            prop_assert_eq!(parse_u64_header("Upload-Offset", Some(&s)).is_ok(), valid);
        }

        #[test]
        fn checksum_roundtrips(d in proptest::collection::vec(any::<u8>(), 1..64)) {
            let h = format_checksum(ChecksumAlgorithm::Sha256, &d);
            let (alg, raw) = parse_checksum(&h).unwrap();
            prop_assert_eq!(alg, "sha256");
            prop_assert_eq!(raw, d);
        }

        #[test]
        fn expires_roundtrips(secs in 0u64..4_000_000_000) {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            prop_assert_eq!(parse_expires(&format_http_date(t)).unwrap(), t);
        }
    }

    #[test]
    fn upload_concat_is_read_leniently_and_written_strictly() {
        assert_eq!(parse_upload_concat("partial"), Some(Concat::Partial));
        assert_eq!(parse_upload_concat(" Partial "), Some(Concat::Partial));
        assert_eq!(
            parse_upload_concat("final; /files/a /files/b"),
            Some(Concat::Final(vec!["/files/a".into(), "/files/b".into()]))
        );
        assert_eq!(
            parse_upload_concat("final;http://h/files/a"),
            Some(Concat::Final(vec!["http://h/files/a".into()]))
        );
        assert_eq!(parse_upload_concat("final"), None);
        assert_eq!(parse_upload_concat("whole"), None);
        let parts = vec![
            "http://h/files/a".to_string(),
            "http://h/files/b".to_string(),
        ];
        assert_eq!(
            final_concat(&parts).unwrap(),
            "final;http://h/files/a http://h/files/b"
        );
        for bad in ["http://h/files/a/", "http://h/files/a b", ""] {
            assert!(final_concat(&[bad.to_string()]).is_err(), "{bad:?}");
        }
        assert!(final_concat(&[]).is_err());
    }

    #[test]
    fn parts_fall_on_block_boundaries_and_cover_the_file() {
        const M: u64 = 1 << 20;
        for (size, k, want) in [
            (
                128 * M,
                4,
                vec![
                    (0, 32 * M),
                    (32 * M, 32 * M),
                    (64 * M, 32 * M),
                    (96 * M, 32 * M),
                ],
            ),
            // 9 whole blocks over 4 parts: 3, 2, 2, 2; the short tail joins the last.
            (
                10 * M - 5,
                4,
                vec![
                    (0, 3 * M),
                    (3 * M, 2 * M),
                    (5 * M, 2 * M),
                    (7 * M, 3 * M - 5),
                ],
            ),
            // Fewer whole blocks than K: fewer parts, and never a part of a few bytes.
            (2 * M + 1, 4, vec![(0, M), (M, M + 1)]),
            (100, 4, vec![(0, 100)]),
            (0, 4, vec![(0, 0)]),
            (64 * M, 1, vec![(0, 64 * M)]),
        ] {
            let got = split_parts(size, k, M);
            assert_eq!(got, want, "{size} in {k}");
            assert_eq!(got.iter().map(|p| p.1).sum::<u64>(), size);
            assert!(got.iter().all(|p| p.0 % M == 0));
        }
    }
}

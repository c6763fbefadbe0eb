//! The tus requests: one method each, building the request and reading the answer as the
//! protocol says. HTTP itself is behind [`crate::tus::transport`]; no retry or state here:
//! [`crate::upload`] decides what to do with answers.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::Method;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use url::Url;

use crate::error::{Error, Result};
use crate::redact;
use crate::tus::gate::Grant;
use crate::tus::protocol::ServerCaps;
use crate::tus::protocol::{self, OFFSET_OCTET_STREAM, TUS_VERSION};
use crate::tus::transport::{BodyStream, HttpRequest, HttpResponse, Transport};

/// The tus requests over a [`Transport`] (keep-alive and reuse; a running upload takes
/// connections of its own, [`TusClient::own_connections`]).
#[derive(Clone)]
pub struct TusClient {
    transport: Arc<dyn Transport>,
    /// Limit for requests without a body (OPTIONS, HEAD, DELETE, an empty POST): a silent
    /// server or a dead pooled connection must not hold an upload forever.
    control_timeout: Duration,
    /// Send PATCH and DELETE as POST with `X-HTTP-Method-Override` (for proxies that
    /// block those methods).
    method_override: bool,
}

/// Most 307/308 redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// Whether a request to `from` may be sent on to `to` (a 307/308, or an upload's Location on
/// another host): never from https to http; within the same origin always; to another host
/// only when it is allowed ([`Error::HostNotAllowed`] names it).
pub fn may_move(from: &Url, to: &Url, allowed_hosts: &[String]) -> Result<()> {
    if from.scheme() == "https" && to.scheme() != "https" {
        return Err(Error::Protocol(format!(
            "refusing to go from https to {}",
            crate::origin::origin(to).unwrap_or_default()
        )));
    }
    let same_origin = from.scheme() == to.scheme()
        && from.host_str() == to.host_str()
        && from.port_or_known_default() == to.port_or_known_default();
    let host = to.host_str().unwrap_or("");
    if same_origin || allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Ok(());
    }
    Err(Error::HostNotAllowed(host.to_ascii_lowercase()))
}

impl std::fmt::Debug for TusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TusClient")
            .field("control_timeout", &self.control_timeout)
            .finish_non_exhaustive()
    }
}

/// Answer to a creation POST.
#[derive(Debug, Clone)]
pub struct Created {
    pub url: String,
    /// Offset after the creation-with-upload body (0 without one).
    pub offset: u64,
    pub expires: Option<SystemTime>,
}

/// Answer to HEAD.
#[derive(Debug, Clone)]
pub struct HeadInfo {
    pub offset: u64,
    pub length: Option<u64>,
    /// `Upload-Defer-Length: 1`: the length is still to be declared by a PATCH.
    pub length_deferred: bool,
    pub expires: Option<SystemTime>,
    /// `Upload-Concat`: a partial upload, or a final one and its parts.
    pub concat: Option<protocol::Concat>,
}

/// Answer to PATCH.
#[derive(Debug, Clone)]
pub struct Patched {
    pub offset: u64,
    pub expires: Option<SystemTime>,
}

/// A request body with its exact length (sent as Content-Length, never chunked).
pub struct SizedBody {
    pub body: BodyStream,
    pub len: u64,
    pub checksum: Option<String>,
}

/// Checks and normalises an endpoint URL: http(s) only, no fragment.
pub fn parse_endpoint(s: &str) -> Result<Url> {
    let url = Url::parse(s.trim()).map_err(|e| Error::InvalidUrl {
        url: redact::strip_userinfo(s),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(Error::InvalidUrl {
                url: redact::strip_userinfo(s),
                reason: format!("scheme {other:?} is not http or https"),
            })
        }
    }
    if url.host_str().is_none() {
        return Err(Error::InvalidUrl {
            url: redact::strip_userinfo(s),
            reason: "no host".into(),
        });
    }
    Ok(url)
}

/// Turns user-given header pairs into a HeaderMap, rejecting invalid names or values.
pub fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| Error::InvalidHeader(k.clone()))?;
        let mut value = HeaderValue::from_str(v.trim())
            .map_err(|_| Error::InvalidHeader(format!("{k}: <invalid value>")))?;
        if redact::is_sensitive(k) {
            value.set_sensitive(true);
        }
        map.insert(name, value);
    }
    Ok(map)
}

fn expires(resp: &HttpResponse) -> Option<SystemTime> {
    resp.header("Upload-Expires")
        .and_then(|v| protocol::parse_expires(v).ok())
}

impl Default for TusClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TusClient {
    /// A client over reqwest. Request-level stall detection lives in the upload loop; here
    /// only connecting and bodiless requests have timeouts.
    pub fn new() -> TusClient {
        Self::with_timeout(Duration::from_secs(30))
    }

    /// A client over reqwest whose bodiless requests time out after `control_timeout`.
    pub fn with_timeout(control_timeout: Duration) -> TusClient {
        Self::with_transport(
            Arc::new(crate::tus::transport::Reqwest::default()),
            control_timeout,
        )
    }

    /// A client over any transport (tests put a scripted server here).
    pub fn with_transport(transport: Arc<dyn Transport>, control_timeout: Duration) -> TusClient {
        TusClient {
            transport,
            control_timeout,
            method_override: false,
        }
    }

    /// The same client as a profile wants it: PATCH and DELETE as POST with
    /// `X-HTTP-Method-Override` when `method_override` (the tus spec's answer to proxies that
    /// block them).
    pub fn for_profile(&self, method_override: bool) -> TusClient {
        TusClient {
            method_override,
            ..self.clone()
        }
    }

    /// The same client on connections of its own (one upload's or part's): see
    /// [`Transport::lane`].
    pub fn own_connections(&self) -> TusClient {
        match self.transport.lane() {
            Some(transport) => TusClient {
                transport,
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    /// Sends one request, and each hop of its redirects, through the gate: every hop gets
    /// the headers `grant` allows for its origin, or is not sent ([`Grant::headers_for`]).
    async fn send(
        &self,
        method: Method,
        url: &str,
        grant: &Grant,
        extra: HeaderMap,
        body: Option<BodyStream>,
    ) -> Result<HttpResponse> {
        let mut extra = extra;
        extra.insert("Tus-Resumable", HeaderValue::from_static(TUS_VERSION));
        let method =
            if self.method_override && (method == Method::PATCH || method == Method::DELETE) {
                extra.insert(
                    "X-HTTP-Method-Override",
                    HeaderValue::from_static(if method == Method::PATCH {
                        "PATCH"
                    } else {
                        "DELETE"
                    }),
                );
                Method::POST
            } else {
                method
            };
        let timeout = body.is_none().then_some(self.control_timeout);
        let has_body = body.is_some();
        let mut body = body;
        let mut url = Url::parse(url).map_err(|e| Error::Protocol(format!("not a URL: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            let mut headers = grant.headers_for(&url)?;
            tracing::debug!(%method, origin = %crate::origin::origin(&url).unwrap_or_default(), headers = %redact::headers_for_log(&headers), "request");
            headers.extend(extra.clone());
            let resp = self
                .transport
                .send(HttpRequest {
                    method: method.clone(),
                    url: url.to_string(),
                    headers,
                    body: body.take(),
                    timeout,
                })
                .await?;
            if !matches!(resp.status, 307 | 308) {
                return Ok(resp);
            }
            let to = redirect_target(&url, &resp, grant)?;
            if has_body {
                // The body went with the first request: the caller sends it again there.
                return Err(Error::Moved(to.to_string()));
            }
            tracing::debug!(status = resp.status, to = %crate::origin::origin(&to).unwrap_or_default(), "following a redirect");
            url = to;
        }
        Err(Error::Protocol(format!(
            "more than {MAX_REDIRECTS} redirects in a row"
        )))
    }

    fn fail(method: &'static str, resp: HttpResponse) -> Error {
        let retry_after = resp
            .header("Retry-After")
            .and_then(|v| protocol::parse_retry_after(v, SystemTime::now()));
        if resp.status == 412 {
            let supported = resp.header("Tus-Version").unwrap_or("unknown").to_string();
            return Error::VersionUnsupported { supported };
        }
        Error::Status {
            method,
            status: resp.status,
            body: resp.body,
            retry_after,
        }
    }

    /// An error answer to a request whose body the server may not have read.
    fn fail_with_body(&self, method: &'static str, resp: HttpResponse, sent: u64) -> Error {
        if sent > 0 {
            self.transport.forget_connections();
        }
        Self::fail(method, resp)
    }

    /// OPTIONS: what the server supports. A non-tus answer is a clear error, not a guess.
    pub async fn options(&self, endpoint: &str, grant: &Grant) -> Result<ServerCaps> {
        let resp = self
            .send(Method::OPTIONS, endpoint, grant, HeaderMap::new(), None)
            .await?;
        if !resp.is_success() {
            let status = resp.status;
            let err = Self::fail("OPTIONS", resp);
            if (500..600).contains(&status)
                || matches!(status, 408 | 423 | 429)
                || matches!(err, Error::VersionUnsupported { .. })
            {
                return Err(err);
            }
            return Err(Error::NotTusServer {
                url: redact::strip_userinfo(endpoint),
                reason: format!("OPTIONS answered {}", status_text(status)),
            });
        }
        let versions = protocol::parse_list(resp.header("Tus-Version"));
        if versions.is_empty() {
            let ct = resp
                .header(CONTENT_TYPE.as_str())
                .unwrap_or("no content type")
                .to_string();
            return Err(Error::NotTusServer {
                url: redact::strip_userinfo(endpoint),
                reason: format!(
                    "OPTIONS answered {} without a Tus-Version header ({ct})",
                    status_text(resp.status)
                ),
            });
        }
        if !versions.iter().any(|v| v == TUS_VERSION) {
            return Err(Error::VersionUnsupported {
                supported: versions.join(", "),
            });
        }
        let max_size = match resp.header("Tus-Max-Size") {
            Some(v) => Some(protocol::parse_u64_header("Tus-Max-Size", Some(v))?),
            None => None,
        };
        Ok(ServerCaps {
            versions,
            extensions: protocol::parse_list(resp.header("Tus-Extension")),
            max_size,
            checksum_algorithms: protocol::parse_list(resp.header("Tus-Checksum-Algorithm")),
            undiscovered: None,
        })
    }

    /// POST: creates an upload, optionally carrying its first bytes (creation-with-upload).
    /// `length: None` defers the length (creation-defer-length); a later PATCH declares it.
    pub async fn create(
        &self,
        endpoint: &Url,
        grant: &Grant,
        length: Option<u64>,
        metadata: &str,
        first: Option<SizedBody>,
    ) -> Result<Created> {
        self.create_with(endpoint, grant, length, metadata, first, HeaderMap::new())
            .await
    }

    /// Creates one part of a file as a partial upload (concatenation extension). Parts carry
    /// no metadata: the final upload does.
    pub async fn create_partial(
        &self,
        endpoint: &Url,
        grant: &Grant,
        length: u64,
        first: Option<SizedBody>,
    ) -> Result<Created> {
        let mut extra = HeaderMap::new();
        extra.insert("Upload-Concat", HeaderValue::from_static("partial"));
        self.create_with(endpoint, grant, Some(length), "", first, extra)
            .await
    }

    /// Creates the final upload of complete `parts` (their URLs, in order), with the file's
    /// metadata: no length and no body, as the spec says. Servers copy the parts' bytes before
    /// they answer (rustus does), so the answer is awaited for `wait`.
    pub async fn create_final(
        &self,
        endpoint: &Url,
        grant: &Grant,
        parts: &[String],
        metadata: &str,
        wait: Duration,
    ) -> Result<Created> {
        let mut extra = HeaderMap::new();
        let concat = protocol::final_concat(parts)?;
        extra.insert(
            "Upload-Concat",
            HeaderValue::from_str(&concat)
                .map_err(|_| Error::Protocol("a part URL is not a valid header value".into()))?,
        );
        let client = TusClient {
            control_timeout: wait,
            ..self.clone()
        };
        client
            .create_with(endpoint, grant, None, metadata, None, extra)
            .await
    }

    async fn create_with(
        &self,
        endpoint: &Url,
        grant: &Grant,
        length: Option<u64>,
        metadata: &str,
        first: Option<SizedBody>,
        mut extra: HeaderMap,
    ) -> Result<Created> {
        let is_final = extra.contains_key("Upload-Concat") && length.is_none();
        match length {
            Some(n) => {
                extra.insert("Upload-Length", n.into());
            }
            // A final upload's length is the sum of its parts.
            None if is_final => {}
            None => {
                extra.insert("Upload-Defer-Length", HeaderValue::from_static("1"));
            }
        };
        if !metadata.is_empty() {
            let v = HeaderValue::from_str(metadata)
                .map_err(|_| Error::Protocol("metadata is not a valid header value".into()))?;
            extra.insert("Upload-Metadata", v);
        }
        let sent = first.as_ref().map(|b| b.len).unwrap_or(0);
        let body = match first {
            Some(b) => {
                extra.insert(CONTENT_TYPE, HeaderValue::from_static(OFFSET_OCTET_STREAM));
                extra.insert(CONTENT_LENGTH, b.len.into());
                if let Some(c) = b.checksum {
                    extra.insert("Upload-Checksum", checksum_value(&c)?);
                }
                Some(b.body)
            }
            None => {
                extra.insert(CONTENT_LENGTH, 0.into());
                None
            }
        };
        // A bodiless POST gets the control timeout; one with a body is watched by the loop.
        let resp = self
            .send(Method::POST, endpoint.as_str(), grant, extra, body)
            .await?;
        if resp.status != 201 {
            return Err(self.fail_with_body("POST", resp, sent));
        }
        let loc = resp
            .header(LOCATION.as_str())
            .ok_or_else(|| Error::Protocol("POST answered 201 without a Location header".into()))?;
        let url = endpoint.join(loc).map_err(|e| {
            Error::Protocol(format!("the Location of the new upload is not a URL ({e})"))
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(Error::Protocol(format!(
                "the Location of the new upload is a {} URL, not http(s)",
                url.scheme()
            )));
        }
        let offset = match resp.header("Upload-Offset") {
            Some(v) => protocol::parse_u64_header("Upload-Offset", Some(v))?,
            None => 0,
        };
        // A final upload holds its parts' bytes at once (rustus answers its whole length).
        if offset > sent && !is_final {
            return Err(Error::Protocol(format!(
                "POST answered Upload-Offset {offset} but only {sent} bytes were sent"
            )));
        }
        Ok(Created {
            url: url.to_string(),
            offset,
            expires: expires(&resp),
        })
    }

    /// HEAD: the offset the server really has.
    pub async fn head(&self, url: &str, grant: &Grant) -> Result<HeadInfo> {
        let mut extra = HeaderMap::new();
        extra.insert("Cache-Control", HeaderValue::from_static("no-store"));
        let resp = self.send(Method::HEAD, url, grant, extra, None).await?;
        if !resp.is_success() {
            return Err(Self::fail("HEAD", resp));
        }
        let offset = protocol::parse_u64_header("Upload-Offset", resp.header("Upload-Offset"))?;
        let length = match resp.header("Upload-Length") {
            Some(v) => Some(protocol::parse_u64_header("Upload-Length", Some(v))?),
            None => None,
        };
        Ok(HeadInfo {
            offset,
            length,
            length_deferred: length.is_none() && resp.header("Upload-Defer-Length") == Some("1"),
            expires: expires(&resp),
            concat: resp
                .header("Upload-Concat")
                .and_then(protocol::parse_upload_concat),
        })
    }

    /// PATCH: appends `body` at `offset`; `declare_length` sets a deferred Upload-Length.
    pub async fn patch(
        &self,
        url: &str,
        grant: &Grant,
        offset: u64,
        body: SizedBody,
        declare_length: Option<u64>,
    ) -> Result<Patched> {
        let mut extra = HeaderMap::new();
        extra.insert("Upload-Offset", offset.into());
        extra.insert(CONTENT_TYPE, HeaderValue::from_static(OFFSET_OCTET_STREAM));
        extra.insert(CONTENT_LENGTH, body.len.into());
        if let Some(n) = declare_length {
            extra.insert("Upload-Length", n.into());
        }
        if let Some(c) = &body.checksum {
            extra.insert("Upload-Checksum", checksum_value(c)?);
        }
        let len = body.len;
        let resp = self
            .send(Method::PATCH, url, grant, extra, Some(body.body))
            .await?;
        if resp.status != 204 && resp.status != 200 {
            return Err(self.fail_with_body("PATCH", resp, len));
        }
        let new = protocol::parse_u64_header("Upload-Offset", resp.header("Upload-Offset"))
            .map_err(|e| Error::BadOffset(e.to_string()))?;
        Ok(Patched {
            offset: new,
            expires: expires(&resp),
        })
    }

    /// DELETE (termination extension).
    pub async fn delete(&self, url: &str, grant: &Grant) -> Result<()> {
        let mut extra = HeaderMap::new();
        extra.insert(CONTENT_LENGTH, 0.into());
        let resp = self.send(Method::DELETE, url, grant, extra, None).await?;
        // Already gone counts as terminated.
        if resp.is_success() || matches!(resp.status, 404 | 410) {
            Ok(())
        } else {
            Err(Self::fail("DELETE", resp))
        }
    }
}

/// Where a 307/308 sends a request, if it may go there (the redirect rule, then the gate).
fn redirect_target(from: &Url, resp: &HttpResponse, grant: &Grant) -> Result<Url> {
    let loc = resp
        .header(LOCATION.as_str())
        .ok_or_else(|| Error::Protocol(format!("{} redirect without a Location", resp.status)))?;
    let to = from
        .join(loc)
        .map_err(|e| Error::Protocol(format!("the redirect's Location is not a URL ({e})")))?;
    may_move(from, &to, &grant.reach().hosts)?;
    grant.check(&to)?;
    Ok(to)
}

fn checksum_value(c: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(c).map_err(|_| Error::Protocol("checksum is not a valid header".into()))
}

/// "404 Not Found", as reqwest's StatusCode printed it.
fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status) {
        Ok(s) => s.to_string(),
        Err(_) => status.to_string(),
    }
}

//! The HTTP layer: one method per tus request, each returning what the protocol says the
//! answer means. No retry or state here; [`crate::upload`] decides what to do with answers.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Body, Method, Response, StatusCode};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use url::Url;

use crate::error::{Error, Result};
use crate::model::ServerCaps;
use crate::protocol::{self, OFFSET_OCTET_STREAM, TUS_VERSION};
use crate::redact;

/// Shared HTTP client (one connection pool for every upload: keep-alive and reuse).
#[derive(Clone, Debug)]
pub struct TusClient {
    /// Replaced by a fresh pool after an error answer to a request with a body (see
    /// [`TusClient::forget_connections`]).
    http: std::sync::Arc<std::sync::RwLock<reqwest::Client>>,
    /// Limit for requests without a body (OPTIONS, HEAD, DELETE): a silent server or a dead
    /// pooled connection must not hold an upload forever.
    control_timeout: Duration,
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
}

/// Answer to PATCH.
#[derive(Debug, Clone)]
pub struct Patched {
    pub offset: u64,
    pub expires: Option<SystemTime>,
}

/// A request body with its exact length (sent as Content-Length, never chunked).
pub struct SizedBody {
    pub body: Body,
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

fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

fn expires(resp: &Response) -> Option<SystemTime> {
    header(resp, "Upload-Expires").and_then(|v| protocol::parse_expires(v).ok())
}

impl Default for TusClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TusClient {
    /// A client with sane connection settings. Request-level stall detection lives in the
    /// upload loop; here only connecting has a timeout.
    pub fn new() -> TusClient {
        Self::with_timeout(Duration::from_secs(30))
    }

    /// A client whose bodiless requests time out after `control_timeout`.
    pub fn with_timeout(control_timeout: Duration) -> TusClient {
        TusClient {
            http: std::sync::Arc::new(std::sync::RwLock::new(Self::build())),
            control_timeout,
        }
    }

    fn build() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Tusker/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("reqwest client with static settings")
    }

    /// Starts a new connection pool. After a server answered a request before reading its
    /// whole body (an early 413, say), the connection may be unusable while still looking
    /// idle: rustus 0.5.10 reads the rest of the body after its 413 and then never answers
    /// the next request on that connection, and hyper pools it all the same. Requests in
    /// flight keep their connections.
    fn forget_connections(&self) {
        tracing::debug!(
            "starting a new connection pool after an error answer to a request with a body"
        );
        *self.http.write().unwrap_or_else(|p| p.into_inner()) = Self::build();
    }

    fn request(&self, method: Method, url: &str, headers: &HeaderMap) -> reqwest::RequestBuilder {
        tracing::debug!(%method, url = %redact::strip_userinfo(url), headers = %redact::headers_for_log(headers), "request");
        let http = self.http.read().unwrap_or_else(|p| p.into_inner()).clone();
        http.request(method, url)
            .headers(headers.clone())
            .header("Tus-Resumable", TUS_VERSION)
    }

    async fn fail(method: &'static str, resp: Response) -> Error {
        let status = resp.status().as_u16();
        let retry_after = header(&resp, "Retry-After")
            .and_then(|v| protocol::parse_retry_after(v, SystemTime::now()));
        if status == 412 {
            let supported = header(&resp, "Tus-Version")
                .unwrap_or("unknown")
                .to_string();
            return Error::VersionUnsupported { supported };
        }
        let body = resp.text().await.unwrap_or_default();
        Error::Status {
            method,
            status,
            body,
            retry_after,
        }
    }

    /// OPTIONS: what the server supports. A non-tus answer is a clear error, not a guess.
    pub async fn options(&self, endpoint: &str, headers: &HeaderMap) -> Result<ServerCaps> {
        let resp = self
            .request(Method::OPTIONS, endpoint, headers)
            .timeout(self.control_timeout)
            .send()
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let err = Self::fail("OPTIONS", resp).await;
            if status.is_server_error()
                || matches!(status.as_u16(), 408 | 423 | 429)
                || matches!(err, Error::VersionUnsupported { .. })
            {
                return Err(err);
            }
            return Err(Error::NotTusServer {
                url: redact::strip_userinfo(endpoint),
                reason: format!("OPTIONS answered {status}"),
            });
        }
        let versions = protocol::parse_list(header(&resp, "Tus-Version"));
        if versions.is_empty() {
            let ct = header(&resp, CONTENT_TYPE.as_str())
                .unwrap_or("no content type")
                .to_string();
            return Err(Error::NotTusServer {
                url: redact::strip_userinfo(endpoint),
                reason: format!(
                    "OPTIONS answered {} without a Tus-Version header ({ct})",
                    resp.status()
                ),
            });
        }
        if !versions.iter().any(|v| v == TUS_VERSION) {
            return Err(Error::VersionUnsupported {
                supported: versions.join(", "),
            });
        }
        let max_size = match header(&resp, "Tus-Max-Size") {
            Some(v) => Some(protocol::parse_u64_header("Tus-Max-Size", Some(v))?),
            None => None,
        };
        Ok(ServerCaps {
            versions,
            extensions: protocol::parse_list(header(&resp, "Tus-Extension")),
            max_size,
            checksum_algorithms: protocol::parse_list(header(&resp, "Tus-Checksum-Algorithm")),
        })
    }

    /// POST: creates an upload, optionally carrying its first bytes (creation-with-upload).
    /// `length: None` defers the length (creation-defer-length); a later PATCH declares it.
    pub async fn create(
        &self,
        endpoint: &Url,
        headers: &HeaderMap,
        length: Option<u64>,
        metadata: &str,
        first: Option<SizedBody>,
    ) -> Result<Created> {
        let mut req = self.request(Method::POST, endpoint.as_str(), headers);
        req = match length {
            Some(n) => req.header("Upload-Length", n.to_string()),
            None => req.header("Upload-Defer-Length", "1"),
        };
        if !metadata.is_empty() {
            req = req.header("Upload-Metadata", metadata);
        }
        let sent = first.as_ref().map(|b| b.len).unwrap_or(0);
        req = match first {
            Some(b) => {
                let mut r = req
                    .header(CONTENT_TYPE, OFFSET_OCTET_STREAM)
                    .header(CONTENT_LENGTH, b.len);
                if let Some(c) = b.checksum {
                    r = r.header("Upload-Checksum", c);
                }
                r.body(b.body)
            }
            None => req.header(CONTENT_LENGTH, 0),
        };
        let resp = req.send().await?;
        if resp.status() != StatusCode::CREATED {
            if sent > 0 {
                self.forget_connections();
            }
            return Err(Self::fail("POST", resp).await);
        }
        let loc = header(&resp, LOCATION.as_str())
            .ok_or_else(|| Error::Protocol("POST answered 201 without a Location header".into()))?;
        let url = endpoint
            .join(loc)
            .map_err(|e| Error::Protocol(format!("Location {loc:?} is not a URL: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(Error::Protocol(format!("Location {loc:?} is not http(s)")));
        }
        let offset = match header(&resp, "Upload-Offset") {
            Some(v) => protocol::parse_u64_header("Upload-Offset", Some(v))?,
            None => 0,
        };
        if offset > sent {
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
    pub async fn head(&self, url: &str, headers: &HeaderMap) -> Result<HeadInfo> {
        let resp = self
            .request(Method::HEAD, url, headers)
            .header("Cache-Control", "no-store")
            .timeout(self.control_timeout)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(Self::fail("HEAD", resp).await);
        }
        let offset = protocol::parse_u64_header("Upload-Offset", header(&resp, "Upload-Offset"))?;
        let length = match header(&resp, "Upload-Length") {
            Some(v) => Some(protocol::parse_u64_header("Upload-Length", Some(v))?),
            None => None,
        };
        Ok(HeadInfo {
            offset,
            length,
            length_deferred: length.is_none() && header(&resp, "Upload-Defer-Length") == Some("1"),
            expires: expires(&resp),
        })
    }

    /// PATCH: appends `body` at `offset`; `declare_length` sets a deferred Upload-Length.
    pub async fn patch(
        &self,
        url: &str,
        headers: &HeaderMap,
        offset: u64,
        body: SizedBody,
        declare_length: Option<u64>,
    ) -> Result<Patched> {
        let mut req = self
            .request(Method::PATCH, url, headers)
            .header("Upload-Offset", offset.to_string())
            .header(CONTENT_TYPE, OFFSET_OCTET_STREAM)
            .header(CONTENT_LENGTH, body.len);
        if let Some(n) = declare_length {
            req = req.header("Upload-Length", n.to_string());
        }
        if let Some(c) = body.checksum {
            req = req.header("Upload-Checksum", c);
        }
        let resp = req.body(body.body).send().await?;
        if resp.status() != StatusCode::NO_CONTENT && resp.status() != StatusCode::OK {
            if body.len > 0 {
                self.forget_connections();
            }
            return Err(Self::fail("PATCH", resp).await);
        }
        let new = protocol::parse_u64_header("Upload-Offset", header(&resp, "Upload-Offset"))
            .map_err(|e| Error::BadOffset(e.to_string()))?;
        Ok(Patched {
            offset: new,
            expires: expires(&resp),
        })
    }

    /// DELETE (termination extension).
    pub async fn delete(&self, url: &str, headers: &HeaderMap) -> Result<()> {
        let resp = self
            .request(Method::DELETE, url, headers)
            .header(CONTENT_LENGTH, 0)
            .timeout(self.control_timeout)
            .send()
            .await?;
        // Already gone counts as terminated.
        if resp.status().is_success() || matches!(resp.status().as_u16(), 404 | 410) {
            Ok(())
        } else {
            Err(Self::fail("DELETE", resp).await)
        }
    }
}

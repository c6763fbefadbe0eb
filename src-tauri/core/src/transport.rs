//! The seam between the tus client and HTTP: one request in, one answer out. The real
//! transport is reqwest; tests put a scripted in-process server behind the same trait
//! ([`fake`]), so every protocol branch of [`crate::client`] and [`crate::upload`] runs
//! without a network.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use reqwest::header::HeaderMap;
use reqwest::Method;
use std::time::Duration;

use crate::error::Result;

/// A request body: frames of the file as they are read (and hashed) for sending.
pub type BodyStream = BoxStream<'static, std::io::Result<Bytes>>;

/// A body of bytes already in memory, in one frame.
pub fn bytes_body(bytes: Vec<u8>) -> BodyStream {
    Box::pin(futures_util::stream::once(
        async move { Ok(Bytes::from(bytes)) },
    ))
}

/// One request as the tus client builds it. Headers carry every protocol header, the
/// Content-Length of the body included.
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Option<BodyStream>,
    /// For requests without a body: the answer must come within this.
    pub timeout: Option<Duration>,
}

/// The answer: status and headers; the body only for answers that are not 2xx (the text
/// goes into the error message), at most [`ERROR_BODY_CAP`] bytes of it.
#[derive(Debug, Clone, Default)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

/// Enough of an error page to say what went wrong.
pub const ERROR_BODY_CAP: usize = 8 * 1024;

impl HttpResponse {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends requests. Failures to get an answer (refused, reset, timeout) are
/// [`crate::Error::Network`] (or `Tls`); any answer, whatever its status, is `Ok`.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse>>;

    /// Drops idle pooled connections: called after a server answered a request with a body
    /// with an error (it may not have read the body, and the connection may be unusable
    /// while it looks idle).
    fn forget_connections(&self) {}
}

/// The real transport: reqwest over hyper, one connection pool for every upload.
pub struct Reqwest {
    http: std::sync::RwLock<reqwest::Client>,
}

impl Default for Reqwest {
    fn default() -> Self {
        Reqwest {
            http: std::sync::RwLock::new(Self::build()),
        }
    }
}

impl Reqwest {
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
}

impl Transport for Reqwest {
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse>> {
        let http = self.http.read().unwrap_or_else(|p| p.into_inner()).clone();
        Box::pin(async move {
            let mut builder = http.request(req.method, &req.url).headers(req.headers);
            if let Some(t) = req.timeout {
                builder = builder.timeout(t);
            }
            if let Some(body) = req.body {
                builder = builder.body(reqwest::Body::wrap_stream(body));
            }
            let mut resp = builder.send().await?;
            let status = resp.status().as_u16();
            let headers = std::mem::take(resp.headers_mut());
            let mut body = Vec::new();
            if !(200..300).contains(&status) {
                // The error page is only for the message: a broken or endless one is cut.
                while let Ok(Some(chunk)) = resp.chunk().await {
                    body.extend_from_slice(&chunk);
                    if body.len() >= ERROR_BODY_CAP {
                        body.truncate(ERROR_BODY_CAP);
                        break;
                    }
                }
            }
            Ok(HttpResponse {
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        })
    }

    /// Starts a new pool. rustus 0.5.10 reads the rest of a body after an early 413 and then
    /// never answers the next request on that connection, and hyper pools it all the same.
    /// Requests in flight keep their connections.
    fn forget_connections(&self) {
        tracing::debug!(
            "starting a new connection pool after an error answer to a request with a body"
        );
        *self.http.write().unwrap_or_else(|p| p.into_inner()) = Self::build();
    }
}

#[cfg(test)]
pub mod fake;

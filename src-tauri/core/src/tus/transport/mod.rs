//! The seam between the tus client and HTTP: one request in, one answer out. The real
//! transport is reqwest; tests put a scripted in-process server behind the same trait
//! ([`fake`]), so every protocol branch of [`crate::tus::client`] and [`crate::upload`] runs
//! without a network.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use reqwest::header::HeaderMap;
use reqwest::Method;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
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

    /// Connections for one upload or part alone (`None`: this transport has no pools).
    /// An error answer then spoils only the pool of the one that got it: in a shared pool
    /// another upload could take the spoiled connection before it is forgotten.
    fn lane(&self) -> Option<Arc<dyn Transport>> {
        None
    }
}

/// Lanes kept for reuse (their connections stay warm for the next upload).
const IDLE_LANES: usize = 32;

/// The real transport: reqwest over hyper. Uploads and parts each take a [`Lane`] (their
/// own pool, given back when they end); the shared pool serves the rest.
pub struct Reqwest {
    http: RwLock<reqwest::Client>,
    pools: Arc<Pools>,
}

/// What every pool is built from, and the lanes given back.
struct Pools {
    /// One TLS setup for every pool: each client building its own (the system's roots
    /// loaded again) cost about 0.9 MiB and 40 ms.
    tls: native_tls::TlsConnector,
    idle_lanes: Mutex<Vec<reqwest::Client>>,
}

impl Pools {
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls(self.tls.clone())
            .connect_timeout(Duration::from_secs(15))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Tusker/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("reqwest client with static settings")
    }

    /// Starts a new pool in `slot`. rustus 0.5.10 reads the rest of a body after an early
    /// 413 and then never answers the next request on that connection, and hyper pools it
    /// all the same. Requests in flight keep their connections.
    fn renew(&self, slot: &RwLock<reqwest::Client>) {
        tracing::debug!(
            "starting a new connection pool after an error answer to a request with a body"
        );
        *slot.write().unwrap_or_else(|p| p.into_inner()) = self.client();
    }
}

impl Default for Reqwest {
    fn default() -> Self {
        let pools = Arc::new(Pools {
            tls: native_tls::TlsConnector::new().expect("the system's TLS setup"),
            idle_lanes: Mutex::default(),
        });
        Reqwest {
            http: RwLock::new(pools.client()),
            pools,
        }
    }
}

/// The client a slot holds now (a cheap handle on its pool).
fn current(slot: &RwLock<reqwest::Client>) -> reqwest::Client {
    slot.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn send_on(http: reqwest::Client, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse>> {
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

impl Transport for Reqwest {
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse>> {
        send_on(current(&self.http), req)
    }

    fn forget_connections(&self) {
        self.pools.renew(&self.http);
    }

    fn lane(&self) -> Option<Arc<dyn Transport>> {
        Some(Lane::take(&self.pools))
    }
}

/// One upload's or part's own connection pool, used by one request at a time.
struct Lane {
    http: RwLock<reqwest::Client>,
    /// A request with a body went out and has not had a success answer since: its
    /// connection may be spoiled, so the pool is not given back for reuse.
    unsure: Arc<AtomicBool>,
    pools: Arc<Pools>,
}

impl Lane {
    /// A lane whose pool was given back, or a new one.
    fn take(pools: &Arc<Pools>) -> Arc<dyn Transport> {
        let reused = pools
            .idle_lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        Arc::new(Lane {
            http: RwLock::new(reused.unwrap_or_else(|| pools.client())),
            unsure: Arc::default(),
            pools: pools.clone(),
        })
    }
}

impl Transport for Lane {
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse>> {
        let with_body = req.body.is_some();
        if with_body {
            self.unsure.store(true, Relaxed);
        }
        let unsure = self.unsure.clone();
        let answer = send_on(current(&self.http), req);
        Box::pin(async move {
            let answer = answer.await;
            if with_body && answer.as_ref().is_ok_and(HttpResponse::is_success) {
                unsure.store(false, Relaxed);
            }
            answer
        })
    }

    fn forget_connections(&self) {
        self.pools.renew(&self.http);
        self.unsure.store(false, Relaxed);
    }

    /// A part of an upload gets a lane of its own, beside its upload's.
    fn lane(&self) -> Option<Arc<dyn Transport>> {
        Some(Lane::take(&self.pools))
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if self.unsure.load(Relaxed) {
            return;
        }
        let http = current(&self.http);
        let mut idle = self
            .pools
            .idle_lanes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_LANES {
            idle.push(http);
        }
    }
}

#[cfg(test)]
pub mod fake;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that, like rustus 0.5.10 after an early 413, answers a PATCH with 413 and
    /// then never answers on that connection again; HEADs get 200. Counts connections.
    async fn spoiling_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/files/x", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    let mut spoiled = false;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if spoiled {
                            continue;
                        }
                        let answer: &[u8] = if buf[..n].starts_with(b"PATCH") {
                            spoiled = true;
                            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                        };
                        conn.write_all(answer).await.unwrap();
                    }
                });
            }
        });
        (url, accepted)
    }

    fn request(method: Method, url: &str, body: bool) -> HttpRequest {
        HttpRequest {
            method,
            url: url.to_string(),
            headers: HeaderMap::new(),
            body: body.then(|| bytes_body(b"0123456789".to_vec())),
            timeout: Some(Duration::from_secs(3)),
        }
    }

    #[tokio::test]
    async fn an_error_answer_spoils_only_the_pool_of_the_lane_that_got_it() {
        let (url, accepted) = spoiling_server().await;
        let transport = Reqwest::default();
        let first = transport.lane().unwrap();
        let second = transport.lane().unwrap();
        for lane in [&first, &second] {
            let head = lane.send(request(Method::HEAD, &url, false)).await;
            assert_eq!(head.expect("each lane is answered").status, 200);
        }
        assert_eq!(accepted.load(Relaxed), 2, "one connection per lane");
        // The first lane's connection is spoiled and pooled; before that lane forgets it,
        // the second lane (another part of the same upload) goes on with its own.
        let patch = first
            .send(request(Method::PATCH, &url, true))
            .await
            .unwrap();
        assert_eq!(patch.status, 413);
        for _ in 0..3 {
            let head = second.send(request(Method::HEAD, &url, false)).await;
            assert_eq!(head.expect("the second lane is answered").status, 200);
        }
        // A part of a lane's upload takes a lane of its own too.
        let part = first.lane().unwrap();
        let head = part.send(request(Method::HEAD, &url, false)).await;
        assert_eq!(head.expect("the part is answered").status, 200);
        // The lane that got the error starts over on a new connection.
        first.forget_connections();
        let head = first.send(request(Method::HEAD, &url, false)).await;
        assert_eq!(head.expect("a new connection is answered").status, 200);
    }

    #[tokio::test]
    async fn a_lane_dropped_after_an_error_answer_is_not_reused() {
        let (url, _) = spoiling_server().await;
        let transport = Reqwest::default();
        let lane = transport.lane().unwrap();
        assert_eq!(
            lane.send(request(Method::HEAD, &url, false))
                .await
                .unwrap()
                .status,
            200
        );
        drop(lane);
        // A lane given back clean is reused: its connection stays warm.
        assert_eq!(transport.pools.idle_lanes.lock().unwrap().len(), 1);
        let lane = transport.lane().unwrap();
        let patch = lane.send(request(Method::PATCH, &url, true)).await.unwrap();
        assert_eq!(patch.status, 413);
        // Cancelled before it could forget its connections (the upload was paused).
        drop(lane);
        assert!(transport.pools.idle_lanes.lock().unwrap().is_empty());
        let next = transport.lane().unwrap();
        let head = next.send(request(Method::HEAD, &url, false)).await;
        assert_eq!(head.expect("the next lane is answered").status, 200);
    }
}

//! A scripted tus server inside the test process: it keeps uploads in memory and answers as
//! tus 1.0.0 says, unless the script says otherwise for the next matching request. Each
//! scripted answer is one that real servers or the gateways in front of them give.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::{BodyStream, HttpRequest, HttpResponse, Transport};
use crate::error::{Error, Result};

/// What the server does with one request instead of answering it normally.
#[derive(Debug, Clone)]
pub enum Act {
    /// Answer this status and headers; nothing is stored.
    Status(u16, Vec<(&'static str, &'static str)>),
    /// Handle normally, then answer with this status instead (a gateway that turns 204
    /// into 200).
    Restatus(u16),
    /// Handle normally, then change the answer's headers (`None` removes one).
    Headers(Vec<(&'static str, Option<&'static str>)>),
    /// Store the first `n` body bytes, then answer 204 with the offset really held (a
    /// server ends a PATCH early when another request for the upload comes in).
    Early(u64),
    /// Read `n` body bytes, keep them, and cut the connection before answering.
    CutKeeping(u64),
    /// Read `n` body bytes, keep none, and cut the connection.
    CutLosing(u64),
    /// Handle normally (store everything), then cut the connection instead of answering.
    CutAfterHandling,
    /// The server loses the upload before this request (expired, cleaned up).
    Forget,
    /// The server keeps only the first `n` bytes it had before this request (a crash lost
    /// what it had confirmed).
    Truncate(u64),
    /// Never answer.
    Hang,
    /// Handle normally (lets a script reach a later request of the same method).
    Pass,
}

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    /// Body bytes the server read.
    pub body_len: u64,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug, Clone, Default)]
struct StoredUpload {
    data: Vec<u8>,
    length: Option<u64>,
    /// `Upload-Concat` as it will be echoed on HEAD (concatenation extension).
    concat: Option<String>,
}

#[derive(Default)]
struct State {
    uploads: BTreeMap<String, StoredUpload>,
    next: u64,
    extensions: String,
    max_size: Option<u64>,
    script: VecDeque<(Method, Act)>,
    seen: Vec<Seen>,
    /// A proxy in front that blocks PATCH and DELETE (405); POST with
    /// `X-HTTP-Method-Override` gets through as that method.
    blocks_patch: bool,
}

/// The scripted server; clone to keep a handle for assertions.
#[derive(Clone)]
pub struct FakeServer {
    state: Arc<Mutex<State>>,
}

/// Where the fake lives (never contacted: every request stays in the process).
pub const ENDPOINT: &str = "http://tus.test/files/";

impl Default for FakeServer {
    fn default() -> Self {
        Self::new("creation,creation-defer-length,termination,expiration,checksum")
    }
}

impl FakeServer {
    pub fn new(extensions: &str) -> FakeServer {
        FakeServer {
            state: Arc::new(Mutex::new(State {
                extensions: extensions.into(),
                next: 1,
                ..State::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn block_patch_and_delete(&self) {
        self.lock().blocks_patch = true;
    }

    pub fn max_size(&self, n: u64) {
        self.lock().max_size = Some(n);
    }

    /// The next `method` request is handled by `act` (scripts run in order per method).
    pub fn then(&self, method: Method, act: Act) -> &Self {
        self.lock().script.push_back((method, act));
        self
    }

    /// Scripted acts not used yet (a test that scripts a fault expects it to be met).
    pub fn unused(&self) -> Vec<(Method, Act)> {
        self.lock().script.iter().cloned().collect()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Requests by method, in order.
    pub fn count(&self, method: Method) -> usize {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.method == method)
            .count()
    }

    /// The bytes held for the upload at `url`.
    pub fn stored(&self, url: &str) -> Option<Vec<u8>> {
        self.lock().uploads.get(&key(url)).map(|u| u.data.clone())
    }

    /// Uploads the server holds.
    pub fn uploads(&self) -> usize {
        self.lock().uploads.len()
    }

    fn next_act(&self, method: &Method) -> Option<Act> {
        let mut st = self.lock();
        let i = st.script.iter().position(|(m, _)| m == method)?;
        st.script.remove(i).map(|(_, a)| a)
    }
}

fn key(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_string()
}

fn answer(status: u16, headers: &[(&str, String)]) -> HttpResponse {
    let mut map = HeaderMap::new();
    map.insert("Tus-Resumable", HeaderValue::from_static("1.0.0"));
    for (k, v) in headers {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    HttpResponse {
        status,
        headers: map,
        body: String::new(),
    }
}

fn cut() -> Error {
    Error::Network("connection reset by peer (scripted)".into())
}

/// Reads up to `limit` body bytes; an error from the body (the file could not be read) is
/// the client's, and ends the request like a reset connection would.
async fn read_body(body: Option<BodyStream>, limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let Some(mut body) = body else {
        return Ok(out);
    };
    while (out.len() as u64) < limit {
        match body.next().await {
            Some(Ok(b)) => out.extend_from_slice(&b),
            Some(Err(e)) => return Err(Error::Network(format!("request body failed: {e}").into())),
            None => break,
        }
    }
    out.truncate(limit.min(out.len() as u64) as usize);
    Ok(out)
}

impl Transport for FakeServer {
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse>> {
        let server = self.clone();
        Box::pin(async move { server.handle(req).await })
    }
}

impl FakeServer {
    async fn handle(&self, mut req: HttpRequest) -> Result<HttpResponse> {
        if self.lock().blocks_patch {
            if req.method == Method::PATCH || req.method == Method::DELETE {
                return Ok(answer(405, &[]));
            }
            let over = req
                .headers
                .get("X-HTTP-Method-Override")
                .and_then(|v| v.to_str().ok())
                .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
            if let Some(m) = over.filter(|_| req.method == Method::POST) {
                req.method = m;
            }
        }
        let act = self.next_act(&req.method);
        let id = key(&req.url);
        let mut seen = Seen {
            method: req.method.clone(),
            url: req.url.clone(),
            headers: req.headers.clone(),
            body_len: 0,
        };
        let result = self.act(req, act, &id, &mut seen).await;
        self.lock().seen.push(seen);
        result
    }

    async fn act(
        &self,
        req: HttpRequest,
        act: Option<Act>,
        id: &str,
        seen: &mut Seen,
    ) -> Result<HttpResponse> {
        match act {
            None | Some(Act::Pass) => self.normal(req, id, seen, u64::MAX).await,
            Some(Act::Status(code, headers)) => {
                // An early error answer: the body is not read.
                let headers: Vec<(&str, String)> =
                    headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
                let mut a = answer(code, &headers);
                a.body = format!("scripted {code}");
                Ok(a)
            }
            Some(Act::Restatus(code)) => {
                let mut a = self.normal(req, id, seen, u64::MAX).await?;
                a.status = code;
                Ok(a)
            }
            Some(Act::Headers(change)) => {
                let mut a = self.normal(req, id, seen, u64::MAX).await?;
                for (k, v) in change {
                    match v {
                        Some(v) => {
                            a.headers.insert(k, HeaderValue::from_static(v));
                        }
                        None => {
                            a.headers.remove(k);
                        }
                    }
                }
                Ok(a)
            }
            Some(Act::Early(n)) => self.normal(req, id, seen, n).await,
            Some(Act::CutKeeping(n)) => {
                let _ = self.normal(req, id, seen, n).await;
                Err(cut())
            }
            Some(Act::CutLosing(n)) => {
                let got = read_body(req.body, n).await?;
                seen.body_len = got.len() as u64;
                Err(cut())
            }
            Some(Act::CutAfterHandling) => {
                self.normal(req, id, seen, u64::MAX).await?;
                Err(cut())
            }
            Some(Act::Forget) => {
                self.lock().uploads.remove(id);
                self.normal(req, id, seen, u64::MAX).await
            }
            Some(Act::Truncate(n)) => {
                if let Some(u) = self.lock().uploads.get_mut(id) {
                    u.data.truncate(n as usize);
                }
                self.normal(req, id, seen, u64::MAX).await
            }
            Some(Act::Hang) => {
                let wait = std::future::pending::<()>();
                match req.timeout {
                    Some(t) => {
                        let _ = tokio::time::timeout(t, wait).await;
                        Err(Error::Network("operation timed out (scripted)".into()))
                    }
                    None => {
                        // Bodies are read (the client's stall watchdog sees them go), then
                        // nothing comes back.
                        let got = read_body(req.body, u64::MAX).await?;
                        seen.body_len = got.len() as u64;
                        wait.await;
                        unreachable!()
                    }
                }
            }
        }
    }

    /// Answers as a tus 1.0.0 server does, reading at most `limit` body bytes (and answering
    /// with what it holds then).
    async fn normal(
        &self,
        req: HttpRequest,
        id: &str,
        seen: &mut Seen,
        limit: u64,
    ) -> Result<HttpResponse> {
        let h = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
        if req.method != Method::OPTIONS && h("Tus-Resumable") != Some("1.0.0") {
            return Ok(answer(412, &[("Tus-Version", "1.0.0".into())]));
        }
        match req.method.as_str() {
            "OPTIONS" => {
                let st = self.lock();
                let mut hs = vec![
                    ("Tus-Version", "1.0.0".to_string()),
                    ("Tus-Extension", st.extensions.clone()),
                    ("Tus-Checksum-Algorithm", "sha1,sha256".to_string()),
                ];
                if let Some(m) = st.max_size {
                    hs.push(("Tus-Max-Size", m.to_string()));
                }
                Ok(answer(204, &hs))
            }
            "POST" if h("Upload-Concat").is_some_and(|v| v.starts_with("final;")) => {
                // As rustus does: every part must be a complete partial upload; the bytes
                // are copied into the final at once, which is complete from the start.
                let concat = h("Upload-Concat").unwrap_or_default();
                let parts = crate::tus::protocol::parse_upload_concat(concat);
                let Some(crate::tus::protocol::Concat::Final(parts)) = parts else {
                    return Ok(answer(400, &[]));
                };
                let mut st = self.lock();
                let mut data = Vec::new();
                for p in &parts {
                    let Some(u) = st.uploads.get(&key(p)) else {
                        return Ok(answer(404, &[]));
                    };
                    if u.concat.as_deref() != Some("partial")
                        || u.length != Some(u.data.len() as u64)
                    {
                        return Ok(answer(400, &[]));
                    }
                    data.extend_from_slice(&u.data);
                }
                let n = st.next;
                st.next += 1;
                let total = data.len();
                let length = Some(total as u64);
                let echo = format!(
                    "final; {}",
                    parts
                        .iter()
                        .map(|p| format!("/files/{}", key(p)))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                st.uploads.insert(
                    n.to_string(),
                    StoredUpload {
                        data,
                        length,
                        concat: Some(echo),
                    },
                );
                // rustus answers the whole length as the offset: the final is complete.
                Ok(answer(
                    201,
                    &[
                        ("Location", format!("/files/{n}")),
                        ("Upload-Offset", total.to_string()),
                    ],
                ))
            }
            "POST" => {
                let length = match h("Upload-Length") {
                    Some(v) => Some(v.parse::<u64>().map_err(|_| cut())?),
                    None if h("Upload-Defer-Length") == Some("1") => None,
                    None => return Ok(answer(400, &[])),
                };
                let data = read_body(req.body, limit).await?;
                seen.body_len = data.len() as u64;
                let mut st = self.lock();
                let n = st.next;
                st.next += 1;
                let offset = data.len();
                let concat = (h("Upload-Concat") == Some("partial")).then(|| "partial".into());
                st.uploads.insert(
                    n.to_string(),
                    StoredUpload {
                        data,
                        length,
                        concat,
                    },
                );
                // Relative, as @tus/server and tusd answer.
                Ok(answer(
                    201,
                    &[
                        ("Location", format!("/files/{n}")),
                        ("Upload-Offset", offset.to_string()),
                    ],
                ))
            }
            "HEAD" => {
                let st = self.lock();
                let Some(u) = st.uploads.get(id) else {
                    return Ok(answer(404, &[]));
                };
                let mut hs = vec![
                    ("Upload-Offset", u.data.len().to_string()),
                    ("Cache-Control", "no-store".to_string()),
                ];
                match u.length {
                    Some(l) => hs.push(("Upload-Length", l.to_string())),
                    None => hs.push(("Upload-Defer-Length", "1".to_string())),
                }
                if let Some(c) = &u.concat {
                    hs.push(("Upload-Concat", c.clone()));
                }
                Ok(answer(200, &hs))
            }
            "PATCH" => {
                if h("Content-Type") != Some("application/offset+octet-stream") {
                    return Ok(answer(415, &[]));
                }
                let held = match self.lock().uploads.get(id) {
                    Some(u) => u.data.len() as u64,
                    None => return Ok(answer(404, &[])),
                };
                if h("Upload-Offset").and_then(|v| v.parse::<u64>().ok()) != Some(held) {
                    return Ok(answer(409, &[]));
                }
                let data = read_body(req.body, limit).await?;
                seen.body_len = data.len() as u64;
                if let Some(c) = h("Upload-Checksum") {
                    if limit == u64::MAX && !checksum_ok(c, &data) {
                        return Ok(answer(460, &[]));
                    }
                }
                let mut st = self.lock();
                let Some(u) = st.uploads.get_mut(id) else {
                    return Ok(answer(404, &[]));
                };
                if u.concat.as_deref().is_some_and(|c| c.starts_with("final")) {
                    return Ok(answer(403, &[]));
                }
                if let Some(l) = h("Upload-Length").and_then(|v| v.parse::<u64>().ok()) {
                    u.length.get_or_insert(l);
                }
                if u.length
                    .is_some_and(|l| u.data.len() as u64 + data.len() as u64 > l)
                {
                    return Ok(answer(400, &[]));
                }
                u.data.extend_from_slice(&data);
                Ok(answer(204, &[("Upload-Offset", u.data.len().to_string())]))
            }
            "DELETE" => match self.lock().uploads.remove(id) {
                Some(_) => Ok(answer(204, &[])),
                None => Ok(answer(404, &[])),
            },
            _ => Ok(answer(405, &[])),
        }
    }
}

fn checksum_ok(header: &str, data: &[u8]) -> bool {
    use base64::Engine;
    use sha2::Digest;
    let Some((alg, b64)) = header.split_once(' ') else {
        return false;
    };
    let want = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default();
    match alg {
        "sha256" => sha2::Sha256::digest(data).as_slice() == want.as_slice(),
        "sha1" => sha1_smol::Sha1::from(data).digest().bytes().as_slice() == want.as_slice(),
        _ => false,
    }
}

/// A body of `bytes`, in frames of `frame` bytes.
pub fn body_of(bytes: Vec<u8>, frame: usize) -> BodyStream {
    let frames: Vec<std::io::Result<Bytes>> = bytes
        .chunks(frame.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(frames))
}

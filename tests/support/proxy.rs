//! A fault-injecting HTTP/1.1 proxy that sits between Tusker and the real tus server. It passes
//! requests through (one per upstream connection) and, when a rule matches, answers itself
//! (status codes, Retry-After), drops the connection after N body bytes, or stalls. It can
//! also play a server with the checksum extension: it advertises it, verifies Upload-Checksum
//! (answering 460 on mismatch) and strips the header before forwarding. Every request is logged.

use sha2::Digest;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does instead of passing a request through.
#[derive(Clone, Debug)]
pub enum Action {
    /// Answer with this status, headers and body (the request body is read and discarded).
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Forward the head and this many body bytes, then cut both connections.
    DropAfter(u64),
    /// Read nothing more and answer nothing for this long, then close.
    Stall(Duration),
    /// Flip one bit of the body in transit (only useful with checksum verification on).
    Corrupt,
    /// Forward the head and this many body bytes, then go quiet both ways while keeping the
    /// server's connection open for `hold` (the server still holds that PATCH), then close.
    HoldUpstream { after: u64, hold: Duration },
    /// Forward the request as it is, then hold the server's answer this long before relaying
    /// it (a server that takes its time to store a finished upload).
    SlowAnswer(Duration),
}

/// Random faults on a share of requests, for the fault-matrix test.
#[derive(Clone, Debug)]
pub struct Chaos {
    pub seed: u64,
    /// Share of requests (0..1) that get a fault.
    pub rate: f64,
    /// How long a held PATCH keeps the server's connection open.
    pub hold: Duration,
}

/// When an action applies: the `skip`+1-th matching request, `times` times in a row.
#[derive(Clone, Debug)]
pub struct Rule {
    pub method: &'static str,
    pub skip: u32,
    pub times: u32,
    pub action: Action,
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub content_length: u64,
    pub upload_offset: Option<u64>,
    pub checksum: Option<String>,
    pub authorization: Option<String>,
    /// Body bytes forwarded to the server.
    pub forwarded: u64,
    /// Status the client got (0 when the connection was cut).
    pub status: u16,
    pub at: Instant,
    /// The proxy answered itself (rule) instead of the server.
    pub injected: bool,
    /// Every header line as sent (name, value): what reached this host.
    pub headers: Vec<(String, String)>,
}

#[derive(Default)]
struct Shared {
    upstream_port: AtomicU16,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Logged>>,
    forwarded: AtomicU64,
    checksum_mode: AtomicBool,
    /// Accept and immediately close connections (server unreachable).
    refuse: AtomicBool,
    chaos: Mutex<Option<(Chaos, rand::rngs::StdRng)>>,
    /// Requests still to answer 503 in the current burst.
    burst: std::sync::atomic::AtomicU32,
    /// Faults injected, by kind.
    faults: Mutex<std::collections::BTreeMap<&'static str, usize>>,
    /// Requests the client gave up on while the server was still working on them.
    abandoned: AtomicU64,
    /// An auth gateway in front of the server, when on.
    gateway: Mutex<Option<Gateway>>,
}

/// What an auth gateway in front of tusd does: bearer tokens that expire, 401 without a
/// valid one, and (often) 405 for OPTIONS.
#[derive(Default)]
struct Gateway {
    /// Each token's end: a time, or a lifetime that starts with its first use.
    tokens: std::collections::HashMap<String, Result<Instant, Duration>>,
    hide_options: bool,
    issued: u64,
}

/// A running proxy; it lives on its own thread and runtime until dropped.
pub struct FaultProxy {
    pub port: u16,
    ip: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> FaultProxy {
        Self::start_on("127.0.0.1", upstream_port)
    }

    /// Starts one listening on `ip` (another loopback address, 127.0.0.2, is another host as
    /// URLs go: a logging stand-in for a second server or an attacker's host).
    pub fn start_on(ip: &str, upstream_port: u16) -> FaultProxy {
        let ip = ip.to_string();
        let ip_shown = ip.clone();
        let shared = Arc::new(Shared::default());
        shared.upstream_port.store(upstream_port, Ordering::SeqCst);
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind((ip.as_str(), 0)).await.unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        acc = listener.accept() => {
                            let Ok((sock, _)) = acc else { continue };
                            if sh.refuse.load(Ordering::SeqCst) {
                                drop(sock);
                                continue;
                            }
                            let sh = sh.clone();
                            tokio::spawn(async move { let _ = handle(sock, sh).await; });
                        }
                    }
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        let port = port_rx.recv().unwrap();
        FaultProxy {
            port,
            ip: ip_shown,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The tus endpoint through the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}/files", self.ip, self.port)
    }

    /// The requests that carried `needle` in any header (a token that must not be there).
    pub fn carried(&self, needle: &str) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.headers.iter().any(|(_, v)| v.contains(needle)))
            .collect()
    }

    pub fn push(&self, rule: Rule) {
        self.shared.rules.lock().unwrap().push(rule);
    }

    /// Shorthand: the (skip+1)-th `method` request gets `action`, once.
    pub fn once(&self, method: &'static str, skip: u32, action: Action) {
        self.push(Rule {
            method,
            skip,
            times: 1,
            action,
        });
    }

    pub fn set_checksum_mode(&self, on: bool) {
        self.shared.checksum_mode.store(on, Ordering::SeqCst);
    }

    pub fn set_refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    /// Puts an auth gateway in front of the server: every request needs
    /// `Authorization: Bearer <token>` with a token from [`Self::issue_token`] that has not
    /// expired (401 otherwise); with `hide_options`, OPTIONS answers 405.
    pub fn set_gateway(&self, hide_options: bool) {
        *self.shared.gateway.lock().unwrap() = Some(Gateway {
            hide_options,
            ..Gateway::default()
        });
    }

    /// A new bearer token the gateway accepts for `life`.
    pub fn issue_token(&self, life: Duration) -> String {
        let mut g = self.shared.gateway.lock().unwrap();
        let g = g.as_mut().expect("set_gateway first");
        g.issued += 1;
        let token = format!("tok{}-{}", g.issued, rand::random::<u32>());
        g.tokens.insert(token.clone(), Ok(Instant::now() + life));
        token
    }

    /// A new bearer token good for `life` from the first request that carries it (for a
    /// token handed to an app that takes a while to start).
    pub fn issue_token_from_first_use(&self, life: Duration) -> String {
        let mut g = self.shared.gateway.lock().unwrap();
        let g = g.as_mut().expect("set_gateway first");
        g.issued += 1;
        let token = format!("tok{}-{}", g.issued, rand::random::<u32>());
        g.tokens.insert(token.clone(), Err(life));
        token
    }

    /// Drops every rule not yet used.
    pub fn clear_rules(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Requests whose client gave up (timed out) before the server answered; the proxy
    /// closed their upstream connection.
    pub fn abandoned(&self) -> u64 {
        self.shared.abandoned.load(Ordering::SeqCst)
    }

    /// Turns random faults on (or off with `None`).
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        use rand::SeedableRng;
        *self.shared.chaos.lock().unwrap() =
            chaos.map(|c| (c.clone(), rand::rngs::StdRng::seed_from_u64(c.seed)));
    }

    /// Faults injected so far, by kind (refused connections are not counted here).
    pub fn faults(&self) -> std::collections::BTreeMap<&'static str, usize> {
        self.shared.faults.lock().unwrap().clone()
    }

    pub fn set_upstream(&self, port: u16) {
        self.shared.upstream_port.store(port, Ordering::SeqCst);
    }

    /// Body bytes forwarded to the server so far (POST and PATCH).
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    pub fn log(&self) -> Vec<Logged> {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn count(&self, method: &str) -> usize {
        self.log().iter().filter(|l| l.method == method).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Head {
    method: String,
    path: String,
    lines: Vec<String>,
}

impl Head {
    fn header(&self, name: &str) -> Option<String> {
        self.lines.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    fn content_length(&self) -> u64 {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The head to send upstream: one request per connection, minus dropped headers.
    fn upstream(&self, drop: &[&str]) -> Vec<u8> {
        let mut out = String::new();
        out.push_str(&self.lines[0]);
        out.push_str("\r\n");
        for l in self.lines.iter().skip(1) {
            let name = l
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if name == "connection" || name == "keep-alive" || drop.contains(&name.as_str()) {
                continue;
            }
            out.push_str(l);
            out.push_str("\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

async fn read_head(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Head> {
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..pos]).to_string();
            buf.drain(..pos + 4);
            let lines: Vec<String> = text.split("\r\n").map(str::to_string).collect();
            let mut first = lines[0].split(' ');
            let method = first.next()?.to_string();
            let path = first.next()?.to_string();
            return Some(Head {
                method,
                path,
                lines,
            });
        }
        let mut tmp = [0u8; 16384];
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Reads exactly `len` body bytes (leftover first), handing each piece to `sink`.
async fn read_body(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
    len: u64,
    mut sink: impl FnMut(&[u8]) -> bool,
) -> std::io::Result<u64> {
    let mut done = 0u64;
    let take = (buf.len() as u64).min(len) as usize;
    if take > 0 {
        let piece: Vec<u8> = buf.drain(..take).collect();
        done += take as u64;
        if !sink(&piece) {
            return Ok(done);
        }
    }
    let mut tmp = vec![0u8; 65536];
    while done < len {
        let want = ((len - done) as usize).min(tmp.len());
        let n = sock.read(&mut tmp[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        done += n as u64;
        if !sink(&tmp[..n]) {
            return Ok(done);
        }
    }
    Ok(done)
}

fn count_fault(sh: &Shared, kind: &'static str) {
    *sh.faults.lock().unwrap().entry(kind).or_default() += 1;
}

fn status_action(status: u16, retry_after: Option<&str>) -> Action {
    Action::Respond {
        status,
        headers: retry_after
            .map(|r| vec![("Retry-After".to_string(), r.to_string())])
            .unwrap_or_default(),
        body: format!("injected {status}"),
    }
}

/// A random fault for this request, when chaos is on and the dice say so.
fn chaos_action(sh: &Shared, method: &str, len: u64) -> Option<Action> {
    use rand::Rng;
    if sh.burst.load(Ordering::SeqCst) > 0 {
        sh.burst.fetch_sub(1, Ordering::SeqCst);
        count_fault(sh, "503 (burst)");
        return Some(status_action(503, None));
    }
    let mut guard = sh.chaos.lock().unwrap();
    let (chaos, rng) = guard.as_mut()?;
    if method == "OPTIONS" || !rng.gen_bool(chaos.rate) {
        return None;
    }
    let pick = rng.gen_range(0..6);
    let (kind, action) = match (pick, method) {
        (0, "PATCH") | (0, "POST") => (
            "connection reset mid-body",
            Action::DropAfter(rng.gen_range(0..=len)),
        ),
        (0, _) => ("connection reset", Action::DropAfter(0)),
        (1, _) => {
            let n = rng.gen_range(1..=4);
            sh.burst.store(n, Ordering::SeqCst);
            ("503 (burst)", status_action(503, None))
        }
        (2, _) => ("429 Retry-After: 1", status_action(429, Some("1"))),
        (3, _) => ("423 Locked", status_action(423, None)),
        (4, "PATCH") => (
            "stall with the server holding the PATCH",
            Action::HoldUpstream {
                after: rng.gen_range(0..=len),
                hold: chaos.hold,
            },
        ),
        (4, _) => ("stall", Action::Stall(chaos.hold)),
        _ => ("500", status_action(500, None)),
    };
    drop(guard);
    count_fault(sh, kind);
    Some(action)
}

/// The gateway's answer, when it does not let the request through.
fn gateway_action(sh: &Shared, head: &Head) -> Option<Action> {
    let mut g = sh.gateway.lock().unwrap();
    let g = g.as_mut()?;
    if head.method == "OPTIONS" && g.hide_options {
        return Some(Action::Respond {
            status: 405,
            headers: vec![("Allow".into(), "POST, HEAD, PATCH, DELETE".into())],
            body: "<html>405 Not Allowed</html>".into(),
        });
    }
    let valid = head
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string))
        .and_then(|t| g.tokens.get_mut(&t))
        .is_some_and(|end| {
            if let Err(life) = *end {
                *end = Ok(Instant::now() + life);
            }
            end.is_ok_and(|until| Instant::now() < until)
        });
    (!valid).then(|| Action::Respond {
        status: 401,
        headers: vec![(
            "WWW-Authenticate".into(),
            "Bearer error=\"invalid_token\"".into(),
        )],
        body: "token missing or expired".into(),
    })
}

fn take_rule(sh: &Shared, method: &str) -> Option<Action> {
    let mut rules = sh.rules.lock().unwrap();
    let idx = rules.iter().position(|r| r.method == method)?;
    let r = &mut rules[idx];
    if r.skip > 0 {
        r.skip -= 1;
        return None;
    }
    let action = r.action.clone();
    r.times -= 1;
    if r.times == 0 {
        rules.remove(idx);
    }
    Some(action)
}

fn reason(status: u16) -> &'static str {
    match status {
        204 => "No Content",
        401 => "Unauthorized",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        423 => "Locked",
        429 => "Too Many Requests",
        460 => "Checksum Mismatch",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn respond(
    sock: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    sock.write_all(out.as_bytes()).await
}

fn digest_matches(header: &str, body: &[u8]) -> bool {
    let mut it = header.splitn(2, ' ');
    let alg = it.next().unwrap_or("");
    let want = it.next().unwrap_or("");
    use base64::Engine as _;
    let got = match alg {
        "sha256" => sha2::Sha256::digest(body).to_vec(),
        _ => return false,
    };
    base64::engine::general_purpose::STANDARD.encode(got) == want.trim()
}

async fn handle(mut client: TcpStream, sh: Arc<Shared>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut client, &mut buf).await else {
            return Ok(());
        };
        let len = head.content_length();
        let mut entry = Logged {
            method: head.method.clone(),
            path: head.path.clone(),
            content_length: len,
            upload_offset: head.header("upload-offset").and_then(|v| v.parse().ok()),
            checksum: head.header("upload-checksum"),
            authorization: head.header("authorization"),
            forwarded: 0,
            status: 0,
            at: Instant::now(),
            injected: false,
            headers: head
                .lines
                .iter()
                .skip(1)
                .filter_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    Some((k.trim().to_string(), v.trim().to_string()))
                })
                .collect(),
        };
        let action = gateway_action(&sh, &head)
            .or_else(|| take_rule(&sh, &head.method))
            .or_else(|| chaos_action(&sh, &head.method, len));
        let checksum_mode = sh.checksum_mode.load(Ordering::SeqCst);
        match action {
            Some(Action::Respond {
                status,
                headers,
                body,
            }) => {
                read_body(&mut client, &mut buf, len, |_| true).await?;
                entry.status = status;
                entry.injected = true;
                sh.log.lock().unwrap().push(entry);
                respond(&mut client, status, &headers, &body).await?;
                continue;
            }
            Some(Action::Stall(d)) => {
                entry.injected = true;
                sh.log.lock().unwrap().push(entry);
                tokio::time::sleep(d).await;
                return Ok(());
            }
            Some(Action::HoldUpstream { after, hold }) => {
                entry.injected = true;
                let mut up = connect(&sh).await?;
                up.write_all(&head.upstream(&[])).await?;
                let limit = after.min(len);
                let mut pending = Vec::new();
                read_body(&mut client, &mut buf, limit, |p| {
                    pending.extend_from_slice(p);
                    true
                })
                .await
                .ok();
                up.write_all(&pending).await.ok();
                up.flush().await.ok();
                sh.forwarded
                    .fetch_add(pending.len() as u64, Ordering::SeqCst);
                entry.forwarded = pending.len() as u64;
                sh.log.lock().unwrap().push(entry);
                tokio::time::sleep(hold).await;
                return Ok(());
            }
            Some(Action::DropAfter(n)) => {
                entry.injected = true;
                let mut up = connect(&sh).await?;
                up.write_all(&head.upstream(&[])).await?;
                let limit = n.min(len);
                let mut sent = 0u64;
                let mut pending = Vec::new();
                read_body(&mut client, &mut buf, limit, |p| {
                    pending.extend_from_slice(p);
                    sent += p.len() as u64;
                    true
                })
                .await
                .ok();
                up.write_all(&pending).await.ok();
                up.flush().await.ok();
                sh.forwarded.fetch_add(sent, Ordering::SeqCst);
                entry.forwarded = sent;
                sh.log.lock().unwrap().push(entry);
                // Give the server a moment to take what it got, then cut both sides.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = client.shutdown().await;
                return Ok(());
            }
            plain @ (Some(Action::Corrupt | Action::SlowAnswer(_)) | None) => {
                let corrupt = matches!(plain, Some(Action::Corrupt));
                let delay = match plain {
                    Some(Action::SlowAnswer(d)) => d,
                    _ => Duration::ZERO,
                };
                let verify = checksum_mode && entry.checksum.is_some();
                if verify || corrupt {
                    let mut body = Vec::with_capacity(len as usize);
                    read_body(&mut client, &mut buf, len, |p| {
                        body.extend_from_slice(p);
                        true
                    })
                    .await?;
                    if corrupt && !body.is_empty() {
                        let mid = body.len() / 2;
                        body[mid] ^= 0x01;
                        entry.injected = true;
                    }
                    if verify && !digest_matches(entry.checksum.as_deref().unwrap(), &body) {
                        entry.status = 460;
                        sh.log.lock().unwrap().push(entry);
                        respond(
                            &mut client,
                            460,
                            &[("Tus-Resumable".into(), "1.0.0".into())],
                            "checksum mismatch",
                        )
                        .await?;
                        continue;
                    }
                    let mut up = connect(&sh).await?;
                    up.write_all(&head.upstream(&["upload-checksum"])).await?;
                    up.write_all(&body).await?;
                    sh.forwarded.fetch_add(body.len() as u64, Ordering::SeqCst);
                    entry.forwarded = body.len() as u64;
                    return finish(up, client, entry, &sh, checksum_mode, delay).await;
                }
                let mut up = connect(&sh).await?;
                up.write_all(&head.upstream(&[])).await?;
                let mut up_w = up;
                let mut sent = 0u64;
                let mut tmp_pending: Vec<u8> = Vec::new();
                // Stream the body through in pieces, counting what reached the server.
                let take = (buf.len() as u64).min(len) as usize;
                if take > 0 {
                    tmp_pending.extend(buf.drain(..take));
                    up_w.write_all(&tmp_pending).await?;
                    sent += take as u64;
                    sh.forwarded.fetch_add(take as u64, Ordering::SeqCst);
                }
                let mut tmp = vec![0u8; 65536];
                let mut upstream_closed = false;
                while sent < len {
                    let want = ((len - sent) as usize).min(tmp.len());
                    let n = match client.read(&mut tmp[..want]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if up_w.write_all(&tmp[..n]).await.is_err() {
                        upstream_closed = true;
                        break;
                    }
                    sent += n as u64;
                    sh.forwarded.fetch_add(n as u64, Ordering::SeqCst);
                }
                entry.forwarded = sent;
                if upstream_closed {
                    // The server answered before reading the whole body (rustus's 413) and
                    // closed: relay its answer, as a reverse proxy does, then close.
                    let mut resp = Vec::new();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), up_w.read_to_end(&mut resp))
                            .await;
                    if let Some(line) = resp.split(|b| *b == b'\n').next() {
                        entry.status = String::from_utf8_lossy(line)
                            .split(' ')
                            .nth(1)
                            .and_then(|s| s.trim().parse().ok())
                            .unwrap_or(0);
                    }
                    sh.log.lock().unwrap().push(entry);
                    let _ = client.write_all(&resp).await;
                    let _ = client.shutdown().await;
                    return Ok(());
                }
                if sent < len {
                    // The client went away mid-body: pass the cut on.
                    sh.log.lock().unwrap().push(entry);
                    return Ok(());
                }
                return finish(up_w, client, entry, &sh, checksum_mode, delay).await;
            }
        }
    }
}

async fn connect(sh: &Shared) -> std::io::Result<TcpStream> {
    let port = sh.upstream_port.load(Ordering::SeqCst);
    TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// Relays the server's whole answer (it closes after one request), rewriting OPTIONS in
/// checksum mode. A client that gives up while the server is still working (a request
/// timeout) closes the upstream connection too, as a reverse proxy does: otherwise
/// abandoned requests pile up in the server (each one waiting for the upload's lock).
async fn finish(
    mut up: TcpStream,
    mut client: TcpStream,
    mut entry: Logged,
    sh: &Shared,
    checksum_mode: bool,
    delay: Duration,
) -> std::io::Result<()> {
    let mut resp = Vec::new();
    let mut probe = [0u8; 512];
    let client_gone = async {
        // The client sends nothing more on this connection (one request each), so a read
        // only ends when it closes.
        loop {
            match client.read(&mut probe).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        r = up.read_to_end(&mut resp) => r.map(|_| ())?,
        _ = client_gone => {
            sh.abandoned.fetch_add(1, Ordering::SeqCst);
            sh.log.lock().unwrap().push(entry);
            return Ok(());
        }
    }
    if let Some(line) = resp.split(|b| *b == b'\n').next() {
        let line = String::from_utf8_lossy(line);
        entry.status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
    }
    if checksum_mode && entry.method == "OPTIONS" {
        let text = String::from_utf8_lossy(&resp).to_string();
        let mut out = String::new();
        for line in text.split("\r\n") {
            if line.to_ascii_lowercase().starts_with("tus-extension:") {
                out.push_str(&format!(
                    "{line},checksum\r\nTus-Checksum-Algorithm: md5,sha1,sha256\r\n"
                ));
            } else {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.truncate(out.len() - 2);
        resp = out.into_bytes();
    }
    sh.log.lock().unwrap().push(entry);
    tokio::time::sleep(delay).await;
    client.write_all(&resp).await?;
    client.shutdown().await
}

//! Test harness shared by the integration tests: the real tus server (official `@tus/server`
//! with its file store, started with node and stopped by PID), the CLI binary, a fault-injecting
//! proxy, and small file helpers. Missing prerequisites fail loudly; nothing is skipped.
#![allow(dead_code)]

pub mod app;
pub mod desktop;
pub mod fixture;
pub mod proxy;
pub mod servers;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory (`CARGO_TARGET_DIR` when set): screenshots and other artefacts
/// of a run go there.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => repo_root().join(d),
        None => repo_root().join("target"),
    }
}

/// Options for the test server.
#[derive(Default, Clone)]
pub struct ServerOpts {
    pub max_size: Option<u64>,
    pub relative_location: bool,
    pub expire_ms: Option<u64>,
}

/// A running `@tus/server` on a free loopback port; killed (SIGTERM, then SIGKILL) on drop.
pub struct TusServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    opts: ServerOpts,
}

impl TusServer {
    pub fn start() -> TusServer {
        Self::start_with(ServerOpts::default())
    }

    pub fn start_with(opts: ServerOpts) -> TusServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let (child, port) = spawn_server(dir.path(), 0, &opts);
        TusServer {
            child,
            port,
            dir,
            opts,
        }
    }

    /// The creation endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/files", self.port)
    }

    /// How the server process ended, if it did (a crashed server explains a stuck test).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the process and starts a new one on the same port and store (a server restart).
    pub fn restart(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
        let (child, _) = spawn_server(self.dir.path(), self.port, &self.opts);
        self.child = child;
    }

    /// Stored bytes of an upload, by its URL.
    pub fn stored(&self, upload_url: &str) -> Vec<u8> {
        std::fs::read(self.stored_path(upload_url)).expect("stored upload")
    }

    pub fn stored_path(&self, upload_url: &str) -> PathBuf {
        let id = upload_url.rsplit('/').next().unwrap();
        self.dir.path().join(id)
    }

    /// The metadata the server recorded for an upload.
    pub fn stored_info(&self, upload_url: &str) -> serde_json::Value {
        let p = self.stored_path(upload_url).with_extension("json");
        let id = upload_url.rsplit('/').next().unwrap();
        let p = if p.exists() {
            p
        } else {
            self.dir.path().join(format!("{id}.json"))
        };
        serde_json::from_slice(&std::fs::read(p).expect("upload info")).unwrap()
    }

    /// How many uploads the server holds.
    pub fn upload_count(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter(|e| {
                let p = e.as_ref().unwrap().path();
                p.extension().is_some_and(|x| x == "json")
            })
            .count()
    }

    /// Every upload the server holds, with the bytes it has stored.
    pub fn uploads(&self) -> Vec<StoredUpload> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let Ok(raw) = std::fs::read(&p) else { continue };
            let Ok(info) = serde_json::from_slice::<serde_json::Value>(&raw) else {
                continue;
            };
            let data = p.with_extension("");
            out.push(StoredUpload {
                id: data.file_name().unwrap().to_string_lossy().into_owned(),
                size: info["size"].as_u64(),
                stored: std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0),
                data,
            });
        }
        out
    }

    /// Removes an upload behind the client's back (the server "lost" it).
    pub fn delete_stored(&self, upload_url: &str) {
        let id = upload_url.rsplit('/').next().unwrap();
        std::fs::remove_file(self.dir.path().join(id)).unwrap();
        std::fs::remove_file(self.dir.path().join(format!("{id}.json"))).unwrap();
    }
}

/// One upload in the server's file store.
#[derive(Debug, Clone)]
pub struct StoredUpload {
    pub id: String,
    /// Upload-Length (None if deferred).
    pub size: Option<u64>,
    /// Bytes the server holds (its offset).
    pub stored: u64,
    pub data: PathBuf,
}

impl StoredUpload {
    pub fn complete(&self) -> bool {
        self.size == Some(self.stored)
    }
}

fn spawn_server(dir: &Path, port: u16, opts: &ServerOpts) -> (Child, u16) {
    let server_dir = repo_root().join("tests/server");
    assert!(
        server_dir.join("node_modules/@tus/server").is_dir(),
        "the test tus server is not installed: run `npm ci --prefix tests/server` (see README)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(server_dir.join("server.mjs"))
        .current_dir(&server_dir)
        .env("TUS_DIR", dir)
        .env("TUS_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(m) = opts.max_size {
        cmd.env("TUS_MAX_SIZE", m.to_string());
    }
    if opts.relative_location {
        cmd.env("TUS_RELATIVE", "1");
    }
    if let Some(e) = opts.expire_ms {
        cmd.env("TUS_EXPIRE_MS", e.to_string());
    }
    let mut child = cmd
        .spawn()
        .expect("node must be installed to run the tus test server");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reading the server's first line");
    let port: u16 = line
        .trim()
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("tus server did not start: {line:?}"))
        .parse()
        .unwrap();
    (child, port)
}

/// A loopback port that was free a moment ago (another process may take it before use):
/// for a port nobody is meant to listen on. A server the tests start takes port 0 instead,
/// and [`listening_port`] finds which one it got.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The TCP ports process `pid` listens on: its sockets (`/proc/PID/fd`) matched by inode
/// against the listening rows of its network namespace's tables.
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: std::collections::HashSet<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for row in text.lines().skip(1) {
            let f: Vec<&str> = row.split_whitespace().collect();
            // local_address is f[1] (ADDR:PORT in hex), st f[3] (0A = LISTEN), inode f[9].
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                if let Some(port) = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                {
                    ports.push(port);
                }
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Waits until `child` (started on port 0) listens on a TCP port and returns it; panics,
/// naming `what`, if it exits first or takes longer than `timeout`.
pub fn listening_port(child: &mut Child, what: &str, timeout: Duration) -> u16 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(&port) = listening_ports(child.id()).first() {
            return port;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("{what} exited before it listened: {st}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for a child up to `timeout`; None if it is still running.
pub fn wait_for(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stops a child with SIGTERM (so it can clean up its own children), SIGKILL after `grace`.
pub fn terminate(child: &mut Child, grace: Duration) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    if wait_for(child, grace).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for TusServer {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// The `tusker-cli` binary of this build profile, built on first use.
pub fn cli_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<test> -> target/<profile>
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", "tusker-cli", "--bin", "tusker-cli"])
            .current_dir(repo_root());
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("running cargo to build tusker-cli");
        assert!(st.success(), "building tusker-cli failed");
        let bin = profile_dir.join("tusker-cli");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// A dropped folder for the crash tests: `files` small files (1-8 KiB, each content
/// distinct) in 20 sub-folders of `root`. Returns their SHA-256s, each with its count (1).
pub fn write_folder(root: &Path, files: usize) -> std::collections::HashMap<[u8; 32], usize> {
    use sha2::{Digest, Sha256};
    let mut want: std::collections::HashMap<[u8; 32], usize> = Default::default();
    for i in 0..files {
        let d = root.join(format!("d{:02}", i % 20));
        std::fs::create_dir_all(&d).unwrap();
        let len = 1024 + (i * 37) % 7000;
        let mut content = format!("file {i:06} ").into_bytes();
        content.extend((0..len).map(|j| ((i * 31 + j * 7) % 251) as u8));
        std::fs::write(d.join(format!("f{i:05}.bin")), &content).unwrap();
        *want.entry(Sha256::digest(&content).into()).or_default() += 1;
    }
    assert_eq!(want.len(), files, "distinct contents");
    want
}

/// Every wanted content (SHA-256, with how many files hold it) is complete on the server
/// exactly once, and the server holds nothing else.
pub fn assert_each_once(want: &std::collections::HashMap<[u8; 32], usize>, server: &TusServer) {
    use sha2::{Digest, Sha256};
    let mut got: std::collections::HashMap<[u8; 32], usize> = Default::default();
    for u in server.uploads().iter().filter(|u| u.complete()) {
        *got.entry(Sha256::digest(std::fs::read(&u.data).unwrap()).into())
            .or_default() += 1;
    }
    let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
    let twice = got.values().filter(|n| **n > 1).count();
    let foreign = got.keys().filter(|k| !want.contains_key(*k)).count();
    assert_eq!(
        (missing, twice, foreign),
        (0, 0, 0),
        "missing, twice, not a file's"
    );
}

/// A CLI command with its data dir set.
pub fn cli(data_dir: &Path) -> Command {
    let mut c = Command::new(cli_bin());
    c.env("TUSKER_DATA_DIR", data_dir).env_remove("RUST_LOG");
    c
}

/// Runs a command to its end like `Command::output`, but kills it and fails the test when it
/// takes longer than `limit` (a hang is a failure to report, not a test that never ends).
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if wait_for(&mut child, limit).is_none() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "still running after {limit:?}; killed.\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    child.wait_with_output().unwrap()
}

/// A process's or thread's `stat` under `dir` (`/proc/PID` or `/proc/PID/task/TID`): its name
/// and the fields after it, from the state on (`man 5 proc` numbers them from 3). The name
/// may hold spaces and parentheses; the fields start after the last ')'.
pub fn proc_stat(dir: &Path) -> Option<(String, Vec<String>)> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields = stat[close + 2..].split(' ').map(str::to_string).collect();
    Some((stat[open + 1..close].to_string(), fields))
}

/// Deterministic pseudo-random content.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a file of `len` pseudo-random bytes.
pub fn write_file(dir: &Path, name: &str, len: usize, seed: u64) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(&pattern(len, seed)).unwrap();
    p
}

/// Polls `cond` until true or the timeout passes (then panics with `what`).
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parses `tusker-cli list --json`.
pub fn list_json(data_dir: &Path) -> Vec<serde_json::Value> {
    let out = cli(data_dir).args(["list", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The server's current offset of an upload (HEAD), or None if it is gone.
/// Works from sync and async tests alike (it runs on a thread of its own).
pub fn server_offset(upload_url: &str) -> Option<u64> {
    let url = upload_url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = tusker_core::tus::client::TusClient::new();
            c.head(&url, &Default::default())
                .await
                .ok()
                .map(|h| h.offset)
        })
    })
    .join()
    .unwrap()
}

/// Enqueues one file through the engine and returns its id (panics if it was not added).
pub async fn add_one(
    engine: &tusker_core::Engine,
    endpoint: &str,
    path: &Path,
    chunk_size: Option<u64>,
) -> tusker_core::UploadId {
    let res = engine
        .add(tusker_core::AddRequest {
            paths: vec![path.to_path_buf()],
            endpoint: endpoint.to_string(),
            chunk_size,
            ..Default::default()
        })
        .await
        .unwrap();
    match &res[0] {
        tusker_core::AddResult::Added { id, .. } => *id,
        other => panic!("{other:?}"),
    }
}

/// Bytes the server acknowledged, summed over the whole queue (a run's progress).
pub async fn acked_total(engine: &tusker_core::Engine) -> u64 {
    engine
        .snapshot()
        .await
        .unwrap()
        .iter()
        .map(|v| v.acked)
        .sum()
}

/// The server upload's URL of upload `id`, as the journal holds it (rows do not carry it).
pub fn url_of(engine: &tusker_core::Engine, id: tusker_core::UploadId) -> String {
    engine
        .store()
        .get(id)
        .expect("the upload's record")
        .upload_url
        .expect("a server upload URL")
}

/// Upload `id` as the engine's queue has it now.
pub async fn view(
    engine: &tusker_core::Engine,
    id: tusker_core::UploadId,
) -> tusker_core::UploadView {
    engine
        .snapshot()
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.id == id)
        .expect("the upload is in the queue")
}

/// Polls the engine until upload `id` satisfies `cond`; panics with `what` and the row after
/// `timeout`.
pub async fn wait_view(
    engine: &tusker_core::Engine,
    id: tusker_core::UploadId,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&tusker_core::UploadView) -> bool,
) -> tusker_core::UploadView {
    let deadline = Instant::now() + timeout;
    loop {
        let v = view(engine, id).await;
        if cond(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Cloudflare Stream's habit: the API host (`proxy`) answers the next creation POST itself
/// with a Location on the upload host, an upload of `len` bytes made beforehand on `server`
/// and named `localhost` there (another host as URLs go). Returns that upload's URL as the
/// server knows it.
pub async fn location_elsewhere(server: &TusServer, proxy: &proxy::FaultProxy, len: u64) -> String {
    let client = tusker_core::tus::client::TusClient::new();
    let direct = tusker_core::tus::client::parse_endpoint(&server.endpoint()).unwrap();
    let no_headers = tusker_core::tus::gate::Grant::default();
    let created = client
        .create(&direct, &no_headers, Some(len), "", None)
        .await
        .unwrap();
    proxy.once(
        "POST",
        0,
        proxy::Action::Respond {
            status: 201,
            headers: vec![
                (
                    "Location".into(),
                    created.url.replace("127.0.0.1", "localhost"),
                ),
                ("Tus-Resumable".into(), "1.0.0".into()),
            ],
            body: String::new(),
        },
    );
    created.url
}

//! Desktop app measurements (not a test: numbers for the README and issue notes).
//!
//!   dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" cargo bench --bench app
//!
//! (a session bus: a second launch hands its files to the running app over D-Bus)
//!
//! 1. Idle memory: the app (all its processes: the main one and WebKit's helpers) 5 s after
//!    launch with an empty queue; RSS and PSS (shared pages counted once).
//! 2. Launch to first resumed byte: a journal with 1,000 unfinished uploads, then launch; the
//!    time until the first body byte reaches the server (counted by the proxy in front of it).
//! 3. Memory with 100,000 rows: a journal of 100,000 paused uploads, then launch; every
//!    process's RSS twice a second for 30 s (the peak, and where it settles), against (1).
//! 4. 100,000 files (1-64 KiB) handed to the running window (a second launch with their
//!    folder, as a drop hands them over) and uploaded to tests/bench/sink.mjs: first body
//!    byte, files/s, RSS, CPU, and how long the window's main thread was blocked (the
//!    longest lateness of a 10 ms timer) and its longest gap between frames.
//! 5. 1 GiB to the sink from the app and from `tusker-cli` (same build profile), 5 runs each,
//!    alternating: first body byte to the last, and the CPU each used.
//!
//! Sections can be picked by number: `cargo bench --bench app -- 4 5`. The app logs at info,
//! as shipped (the tests' launches log at debug): TUSKER_E2E_LOG=info unless set.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::proxy::FaultProxy;
use support::{write_file, TusServer};
use tusker_core::journal::{NewUpload, Store};
use tusker_core::{AddRequest, AppSettings, Engine, EngineConfig};

fn launch(data: &Path, home: &Path) -> Child {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "run under xvfb-run (needs an X display)"
    );
    Command::new(env!("CARGO_BIN_EXE_tusker"))
        .env("TUSKER_DATA_DIR", data)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("launching the app")
}

/// The process and all its descendants.
fn tree(root: u32) -> Vec<u32> {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Some((_, fields)) = support::proc_stat(&e.path()) else {
            continue;
        };
        parent.insert(pid, fields[1].parse().unwrap());
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

fn mem_kib(pid: u32) -> (u64, u64, String) {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |k: &str| {
        rollup
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"), name)
}

/// RSS and PSS (KiB) of a process and its descendants, each printed when `show`.
fn tree_mem(root: u32, show: bool) -> (u64, u64) {
    let (mut rss, mut pss) = (0, 0);
    for pid in tree(root) {
        let (r, p, name) = mem_kib(pid);
        if show {
            println!(
                "  {pid:>7} {name:<22} RSS {:>6.1} MiB  PSS {:>6.1} MiB",
                r as f64 / 1024.0,
                p as f64 / 1024.0
            );
        }
        rss += r;
        pss += p;
    }
    (rss, pss)
}

fn seed(data: &Path, endpoint: &str) {
    let store = Store::open(&data.join("journal.sqlite")).unwrap();
    let secrets = tusker_core::profiles::secrets::Secrets::open(data);
    let profile = tusker_core::profiles::profile::Profile {
        name: "Desktop".into(),
        endpoint: endpoint.to_string(),
        ..Default::default()
    };
    AppSettings::use_profile(&store, &secrets, &profile).unwrap();
}

fn main() {
    if std::env::var_os("TUSKER_E2E_LOG").is_none() {
        // Nothing else runs yet in this process.
        std::env::set_var("TUSKER_E2E_LOG", "info");
    }
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |n: &str| picked.is_empty() || picked.iter().any(|p| p == n);
    if run("1") || run("2") || run("3") {
        memory_and_resume();
    }
    if run("4") {
        many_files_into_the_window();
    }
    if run("5") {
        app_against_cli();
    }
}

fn memory_and_resume() {
    let server = TusServer::start();
    let proxy = FaultProxy::start(server.port);

    // 1. Idle memory.
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    seed(data.path(), &proxy.endpoint());
    let mut app = launch(data.path(), home.path());
    std::thread::sleep(Duration::from_secs(5));
    let (idle_rss, pss) = tree_mem(app.id(), true);
    println!(
        "idle memory (all processes): RSS {:.0} MiB, PSS {:.0} MiB",
        idle_rss as f64 / 1024.0,
        pss as f64 / 1024.0
    );
    support::terminate(&mut app, Duration::from_secs(5));

    // 3. 100,000 rows (paused, so that nothing is sent: the window's and the queue's cost).
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    seed(data.path(), &proxy.endpoint());
    {
        let store = Store::open(&data.path().join("journal.sqlite")).unwrap();
        let rows: Vec<NewUpload> = (0..100_000)
            .map(|i| NewUpload {
                path: format!("/nowhere/d{:03}/file-{i:06}.bin", i % 100),
                name: format!("file-{i:06}.bin"),
                stamp: tusker_core::identity::fingerprint::FileStamp {
                    size: 1024 + (i as u64 * 7919) % (63 * 1024),
                    mtime_ns: 0,
                    ino: 0,
                    ctime_ns: 0,
                },
                fingerprint: format!("fp{i}"),
                endpoint: proxy.endpoint(),
                metadata: Default::default(),
                headers: Default::default(),
                chunk_size: None,
                state: tusker_core::UploadState::Paused,
                profile_id: None,
                upload_url: None,
            })
            .collect();
        for batch in rows.chunks(10_000) {
            store.insert_many(batch).unwrap();
        }
    }
    let mut app = launch(data.path(), home.path());
    let (mut peak, mut last) = (0, 0);
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(500));
        last = tree_mem(app.id(), false).0;
        peak = peak.max(last);
    }
    tree_mem(app.id(), true);
    println!(
        "100,000 rows (all processes): RSS peak {:.0} MiB, after 30 s {:.0} MiB; {:+.0} MiB over idle",
        peak as f64 / 1024.0,
        last as f64 / 1024.0,
        (last as f64 - idle_rss as f64) / 1024.0
    );
    support::terminate(&mut app, Duration::from_secs(5));

    // 2. Launch to first resumed byte with 1,000 unfinished uploads in the journal.
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    seed(data.path(), &proxy.endpoint());
    let paths: Vec<PathBuf> = (0..1000)
        .map(|i| write_file(files.path(), &format!("f{i:04}.bin"), 64 * 1024, i))
        .collect();
    // Seed the journal with the server unreachable, so nothing starts; then mark all queued,
    // as a crash mid-queue leaves them.
    proxy.set_refuse(true);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = EngineConfig::new(data.path());
        c.auto_resume = false;
        let engine = Engine::open(c).await.unwrap();
        let res = engine
            .add(AddRequest {
                paths,
                endpoint: proxy.endpoint(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(res.len(), 1000);
        engine.pause_all().await.unwrap();
        engine.shutdown().await.unwrap();
    });
    let store = Store::open(&data.path().join("journal.sqlite")).unwrap();
    for r in store.list().unwrap() {
        store
            .set_state(r.id, tusker_core::UploadState::Queued, None)
            .unwrap();
    }
    drop(store);
    proxy.set_refuse(false);
    let before = proxy.forwarded();
    let mut samples = Vec::new();
    for run in 0..5 {
        let home = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let mut app = launch(data.path(), home.path());
        let base = proxy.forwarded();
        while proxy.forwarded() == base {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no byte within 60 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let t = start.elapsed();
        println!("  run {run}: first resumed byte after {t:?}");
        samples.push(t);
        support::terminate(&mut app, Duration::from_secs(5));
    }
    samples.sort();
    println!(
        "launch to first resumed byte, 1,000-item queue: median {:?} (runs: {samples:?}); {} bytes sent in all",
        samples[1],
        proxy.forwarded() - before
    );
}

/// tests/bench/sink.mjs, with the lines it prints.
struct Sink {
    child: Child,
    port: u16,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Sink {
    fn start() -> Sink {
        use std::io::BufRead;
        let mut child = Command::new("node")
            .arg(support::repo_root().join("tests/bench/sink.mjs"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("node (tests/bench/sink.mjs)");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let port = first
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse().ok())
            .expect("the sink did not start");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = lines.clone();
        std::thread::spawn(move || {
            for l in out.lines().map_while(|l| l.ok()) {
                keep.lock().unwrap().push(l);
            }
        });
        Sink { child, port, lines }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/files/", self.port)
    }

    /// Unix ms of the first `what` line printed after `from` lines (waits up to `limit`).
    fn wait_line(&self, what: &str, from: usize, limit: Duration) -> (usize, f64) {
        let start = Instant::now();
        loop {
            {
                let lines = self.lines.lock().unwrap();
                if let Some((i, l)) = lines
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, l)| l.starts_with(what))
                {
                    let ms: f64 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
                    return (i + 1, ms / 1000.0);
                }
            }
            assert!(
                start.elapsed() < limit,
                "the sink printed no {what} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn seen(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Forgets the first body byte seen, so that the next one is reported.
    fn reset(&self) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        use std::io::{Read, Write};
        s.write_all(b"GET /reset HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let _ = s.read_to_end(&mut Vec::new());
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        support::terminate(&mut self.child, Duration::from_secs(5));
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// CPU seconds (user + system) of a process and each living descendant, by name.
fn cpu_by_process(root: u32) -> std::collections::BTreeMap<String, f64> {
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut out = std::collections::BTreeMap::new();
    for pid in tree(root) {
        let Some((name, f)) = support::proc_stat(Path::new(&format!("/proc/{pid}"))) else {
            continue;
        };
        *out.entry(name).or_default() +=
            (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / tick;
    }
    out
}

/// `after - before` per process, as `name 1.23 s, ...`.
fn cpu_delta(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
) -> String {
    after
        .iter()
        .map(|(k, v)| format!("{k} {:.2} s", v - before.get(k).copied().unwrap_or(0.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Uploads the journal holds as completed (read beside the running app).
fn completed_in_journal(data: &Path) -> u64 {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); print(c.execute(\"SELECT count(*) FROM uploads WHERE state='completed'\").fetchone()[0])",
        ])
        .arg(data.join("journal.sqlite"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Launches the app (through WebDriver) and waits for its window.
async fn launch_ready(data: &Path, home: &Path) -> support::app::App {
    let app = support::app::App::launch(data, home, &[]).await;
    app.wait_js(
        "the window",
        "document.body.innerText.includes('Add files')",
        Duration::from_secs(30),
    )
    .await;
    app
}

/// Records, in the window, the longest lateness of a 10 ms timer (the main thread blocked)
/// and the longest gap between animation frames.
const MONITOR_JS: &str = "
  const g = { block: 0, blocks_over_100: 0, frame: 0, frames_over_100: 0, frames: 0, t0: performance.now(), long: [], long_frames: [] };
  window.__monitor = g;
  let last = performance.now();
  setInterval(() => {
    const t = performance.now(), late = t - last - 10;
    last = t;
    if (late > g.block) g.block = late;
    if (late > 100) {
      g.blocks_over_100++;
      g.long.push([Math.round(t - late - g.t0), Math.round(late)]);
    }
  }, 10);
  let lastFrame = performance.now();
  const frame = (t) => {
    const gap = t - lastFrame;
    lastFrame = t;
    g.frames++;
    if (gap > g.frame) g.frame = gap;
    if (gap > 100) {
      g.frames_over_100++;
      g.long_frames.push([Math.round(t - gap - g.t0), Math.round(gap)]);
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  g.queue = { n: 0, longest: 0, over_30: [] };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      g.queue.n++;
      if (e.duration > g.queue.longest) g.queue.longest = e.duration;
      if (e.duration > 30) g.queue.over_30.push([Math.round(e.startTime - g.t0), Math.round(e.duration), e.detail]);
    }
  }).observe({ entryTypes: ['measure'] });
  g.batches = 0;
  g.big = [];
  const I = window.__TAURI_INTERNALS__;
  for (const event of ['files-added']) {
    const handler = I.transformCallback((e) => {
      const n = e.payload.added ?? 0;
      g.batches++;
      if (n > 2000 || e.payload.reset) g.big.push([event, Math.round(performance.now() - g.t0), n, !!e.payload.reset]);
    });
    I.invoke('plugin:event|listen', { event, target: { kind: 'Any' }, handler });
  }
";

fn many_files_into_the_window() {
    const FILES: usize = 100_000;
    let tree_dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let mut bytes = 0u64;
    let block = support::pattern(64 * 1024, 11);
    for i in 0..FILES {
        let dir = tree_dir.path().join(format!("d{:03}", i % 100));
        if i < 100 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let len = 1024 + (i * 7919) % (63 * 1024);
        let mut body = block[..len].to_vec();
        body[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(dir.join(format!("f{i:06}.bin")), &body).unwrap();
        bytes += len as u64;
    }
    let sink = Sink::start();
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    seed(data.path(), &sink.endpoint());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = launch_ready(data.path(), home.path()).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pid = app.app_pid().expect("the app runs") as u32;
        println!("  idle, by process:");
        let (idle, _) = tree_mem(pid, true);
        app.client.execute(MONITOR_JS, vec![]).await.unwrap();
        let cpu0 = cpu_by_process(pid);
        app.client
            .execute("window.__monitor.t0 = performance.now()", vec![])
            .await
            .unwrap();
        let t0 = unix_now();
        println!("  handed over at {t0:.3} (Unix time)");
        support::app::hand_over(data.path(), home.path(), &[tree_dir.path()]);
        let (_, first) = sink.wait_line("FIRST_BYTE", 0, Duration::from_secs(60));
        let mut peak = 0;
        let mut rows_shown_at = None;
        let mut done = 0;
        let mut polls = 0u32;
        let finished = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            peak = peak.max(tree_mem(pid, false).0);
            polls += 1;
            if rows_shown_at.is_none() {
                let shown = app
                    .client
                    .execute("return document.querySelector('.row')?.getAttribute('aria-setsize')", vec![])
                    .await
                    .unwrap();
                if shown.as_str() == Some(&FILES.to_string()) {
                    rows_shown_at = Some(unix_now());
                }
            }
            if polls.is_multiple_of(4) {
                done = completed_in_journal(data.path());
                if done == FILES as u64 {
                    break unix_now();
                }
            }
            assert!(unix_now() - t0 < 900.0, "only {done} of {FILES} completed after 15 min");
        };
        let cpu1 = cpu_by_process(pid);
        let cpu = cpu1.values().sum::<f64>() - cpu0.values().sum::<f64>();
        let m = app.client.execute("return window.__monitor", vec![]).await.unwrap();
        let (at_end, _) = tree_mem(pid, false);
        // What stays with 100,000 rows once the work is done (the web view's heap is given
        // back over time).
        tokio::time::sleep(Duration::from_secs(30)).await;
        let (settled, _) = tree_mem(pid, true);
        println!(
            "  queue batches: {}, the longest held the page {:.0} ms; over 30 ms [ms after the hand-over, ms, rows]: {}",
            m["queue"]["n"],
            m["queue"]["longest"].as_f64().unwrap_or(f64::NAN),
            m["queue"]["over_30"]
        );
        println!("  events: {} in all; large ones [event, ms after the hand-over, rows, reset]: {}", m["batches"], m["big"]);
        println!(
            "{FILES} files ({:.1} GiB) handed to the window: first body byte after {:.0} ms; all rows shown after {:.1} s; all completed after {:.1} s ({:.0} files/s)",
            bytes as f64 / (1u64 << 30) as f64,
            (first - t0) * 1000.0,
            rows_shown_at.map_or(f64::NAN, |t| t - t0),
            finished - t0,
            FILES as f64 / (finished - t0)
        );
        println!(
            "  window: longest main-thread block {:.0} ms ({} over 100 ms: [start ms after the hand-over, ms] {}); longest frame gap {:.0} ms ({} over 100 ms: {}; {} frames)",
            m["block"].as_f64().unwrap_or(f64::NAN),
            m["blocks_over_100"],
            m["long"],
            m["frame"].as_f64().unwrap_or(f64::NAN),
            m["frames_over_100"],
            m["long_frames"],
            m["frames"]
        );
        println!(
            "  memory (all processes): idle {:.0} MiB, peak {:.0} MiB ({:+.0}), at the end {:.0} MiB, 30 s later {:.0} MiB ({:+.0}); CPU {:.1} s ({})",
            idle as f64 / 1024.0,
            peak as f64 / 1024.0,
            (peak as f64 - idle as f64) / 1024.0,
            at_end as f64 / 1024.0,
            settled as f64 / 1024.0,
            (settled as f64 - idle as f64) / 1024.0,
            cpu,
            cpu_delta(&cpu0, &cpu1)
        );
        app.close().await;
    });
}

fn app_against_cli() {
    const SIZE: usize = 1 << 30;
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let file = dir.path().join("one-gib.bin");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&file).unwrap();
        let chunk = support::pattern(1 << 20, 5);
        for _ in 0..(SIZE >> 20) {
            f.write_all(&chunk).unwrap();
        }
    }
    let sink = Sink::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut cli_runs, mut app_runs) = (Vec::new(), Vec::new());
    // Alternating, so that the VM's slow minutes fall on both; the fastest runs say what
    // each can do when nothing else takes the cores, the medians what it does as they come.
    const RUNS: usize = 7;
    for run in 0..RUNS {
        // The CLI.
        sink.reset();
        let from = sink.seen();
        let data = tempfile::tempdir().unwrap();
        let mut child = support::cli(data.path())
            .args(["upload", "--plain", "--endpoint", &sink.endpoint()])
            .arg(&file)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
        unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        let _ = child.try_wait();
        assert_eq!(status, 0, "tusker-cli failed");
        let cpu = usage.ru_utime.tv_sec as f64
            + usage.ru_utime.tv_usec as f64 / 1e6
            + usage.ru_stime.tv_sec as f64
            + usage.ru_stime.tv_usec as f64 / 1e6;
        let (at, first) = sink.wait_line("FIRST_BYTE", from, Duration::from_secs(5));
        let (_, done) = sink.wait_line("COMPLETE", at - 1, Duration::from_secs(5));
        println!(
            "  run {run}: CLI {:.2} s from first to last byte, CPU {cpu:.2} s",
            done - first
        );
        cli_runs.push((done - first, cpu));

        // The app.
        sink.reset();
        let from = sink.seen();
        let data = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        seed(data.path(), &sink.endpoint());
        rt.block_on(async {
            let app = launch_ready(data.path(), home.path()).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let pid = app.app_pid().expect("the app runs") as u32;
            let before = cpu_by_process(pid);
            support::app::hand_over(data.path(), home.path(), &[&file]);
            let (at, first) = sink.wait_line("FIRST_BYTE", from, Duration::from_secs(30));
            let (_, done) = sink.wait_line("COMPLETE", at - 1, Duration::from_secs(120));
            // Let the window show the completion (its share of the work) before counting.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = cpu_by_process(pid);
            let cpu = after.values().sum::<f64>() - before.values().sum::<f64>();
            println!(
                "  run {run}: app {:.2} s from first to last byte, CPU (all processes) {cpu:.2} s: {}",
                done - first,
                cpu_delta(&before, &after)
            );
            app_runs.push((done - first, cpu));
            app.close().await;
        });
    }
    let median = |v: &mut Vec<(f64, f64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        (v[v.len() / 2], v[0])
    };
    let ((cli_t, cli_cpu), (cli_best, _)) = median(&mut cli_runs);
    let ((app_t, app_cpu), (app_best, _)) = median(&mut app_runs);
    let mb = SIZE as f64 / 1e6;
    println!(
        "1 GiB to the sink, medians of {RUNS}: CLI {:.0} MB/s (CPU {cli_cpu:.2} s), app {:.0} MB/s (CPU {app_cpu:.2} s): the app at {:.0}% of the CLI's throughput, CPU {:+.0}%; fastest runs: CLI {:.0} MB/s, app {:.0} MB/s ({:.0}%)",
        mb / cli_t,
        mb / app_t,
        100.0 * cli_t / app_t,
        100.0 * (app_cpu - cli_cpu) / cli_cpu,
        mb / cli_best,
        mb / app_best,
        100.0 * cli_best / app_best
    );
}

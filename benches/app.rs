//! Desktop app measurements (not a test: numbers for the README and issue notes).
//!
//!   xvfb-run -a -s "-screen 0 1280x800x24" cargo bench --bench app
//!
//! 1. Idle memory: the app (all its processes: the main one and WebKit's helpers) 5 s after
//!    launch with an empty queue; RSS and PSS (shared pages counted once).
//! 2. Launch to first resumed byte: a journal with 1,000 unfinished uploads, then launch; the
//!    time until the first body byte reaches the server (counted by the proxy in front of it).
//! 3. Memory with 100,000 rows: a journal of 100,000 paused uploads, then launch; every
//!    process's RSS twice a second for 30 s (the peak, and where it settles), against (1).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::proxy::FaultProxy;
use support::{write_file, TusServer};
use tusker_core::store::{NewUpload, Store};
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
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // The command name may contain spaces; fields after the last ')' are fixed.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        parent.insert(pid, ppid);
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
    let secrets = tusker_core::secrets::Secrets::open(data);
    let profile = tusker_core::profile::Profile {
        name: "Desktop".into(),
        endpoint: endpoint.to_string(),
        ..Default::default()
    };
    AppSettings::use_profile(&store, &secrets, &profile).unwrap();
}

fn main() {
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
                stamp: tusker_core::fingerprint::FileStamp {
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
    for run in 0..3 {
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

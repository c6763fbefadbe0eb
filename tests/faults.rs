//! Retry paths through the fault-injecting proxy in front of the real `@tus/server`: cut
//! connections, 5xx/423/429 with Retry-After, stalls, 413, checksum mismatches, a server
//! restart and a server that cannot be reached for a while.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::fixture::Fixture;
use support::proxy::{Action, FaultProxy};
use support::{write_file, TusServer};
use tusker_core::{Engine, EngineConfig, UploadId, UploadState, UploadView};

fn config(dir: &Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.upload.stall_timeout = Duration::from_secs(1);
    // A stalled body that fits in the socket buffers looks sent: the answer's own timeout
    // (3 min by default) then notices it. Short here, longer than the slow answer test's 3 s.
    c.upload.final_answer_timeout = Duration::from_secs(4);
    c.upload.retry.base = Duration::from_millis(100);
    c.upload.retry.max_delay = Duration::from_millis(800);
    c.upload.retry.max_attempts = 10;
    c
}

async fn wait_done(engine: &Engine, id: UploadId, timeout: Duration) -> UploadView {
    support::wait_view(engine, id, "an outcome", timeout, |v| v.state.is_terminal()).await
}

fn assert_uploaded(server: &TusServer, engine: &Engine, v: &UploadView, path: &Path) {
    assert_eq!(v.state, UploadState::Completed, "{v:#?}");
    assert!(
        server.stored(&support::url_of(engine, v.id)) == std::fs::read(path).unwrap(),
        "bytes differ"
    );
}

struct Rig {
    server: TusServer,
    proxy: FaultProxy,
    _files: tempfile::TempDir,
    _data: tempfile::TempDir,
    engine: Engine,
    file: PathBuf,
}

async fn rig(size: usize, cfg: impl FnOnce(&mut EngineConfig)) -> Rig {
    let Fixture(server, proxy, files, data, ..) = Fixture::new().proxied();
    let file = write_file(files.path(), "f.bin", size, size as u64);
    let mut c = config(data.path());
    cfg(&mut c);
    let engine = Engine::open(c).await.unwrap();
    Rig {
        server,
        proxy,
        _files: files,
        _data: data,
        engine,
        file,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cut_mid_body_resumes_from_the_servers_offset() {
    let r = rig(6 << 20, |_| {}).await;
    r.proxy.once("PATCH", 0, Action::DropAfter(1_500_000));
    r.proxy.once("PATCH", 1, Action::DropAfter(700_000));
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, Some(2 << 20)).await;
    let v = wait_done(&r.engine, id, Duration::from_secs(30)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    let log = r.proxy.log();
    let heads = log.iter().filter(|l| l.method == "HEAD").count();
    assert!(heads >= 2, "each cut is followed by HEAD: {log:#?}");
    // Nothing the server kept was sent twice beyond the cut requests themselves.
    let resent = r.proxy.forwarded() - (6 << 20);
    assert!(resent <= 1_500_000 + 700_000, "re-sent {resent}");
    assert_eq!(r.server.upload_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_the_waiting_state_is_shown() {
    let r = rig(3 << 20, |_| {}).await;
    let mut rx = r.engine.subscribe();
    r.proxy.once(
        "PATCH",
        0,
        Action::Respond {
            status: 503,
            headers: vec![("Retry-After".into(), "2".into())],
            body: "maintenance".into(),
        },
    );
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, Some(1 << 20)).await;
    let mut saw_wait = None;
    loop {
        let b = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap()
            .unwrap();
        for v in b.changed.iter().filter(|v| v.id == id) {
            if v.state == UploadState::WaitingToRetry {
                saw_wait = Some((
                    format!(
                        "{} | {}",
                        v.error.clone().unwrap(),
                        v.error_detail.clone().unwrap()
                    ),
                    v.retry_at_ms.unwrap(),
                ));
            }
        }
        if b.changed
            .iter()
            .any(|v| v.id == id && v.state.is_terminal())
        {
            break;
        }
    }
    let v = wait_done(&r.engine, id, Duration::from_secs(5)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    let (reason, _at) = saw_wait.expect("waiting_to_retry was shown");
    assert!(
        reason.starts_with("Server error (503) | ") && reason.contains("maintenance"),
        "{reason}"
    );
    let log = r.proxy.log();
    let i = log.iter().position(|l| l.status == 503).unwrap();
    let gap = log[i + 1].at - log[i].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "Retry-After: 2 honoured, gap {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_423_and_429_back_off_and_never_recreate() {
    let r = rig(3 << 20, |_| {}).await;
    for _ in 0..3 {
        r.proxy.once(
            "PATCH",
            0,
            Action::Respond {
                status: 423,
                headers: vec![],
                body: "locked".into(),
            },
        );
    }
    r.proxy.once(
        "PATCH",
        1,
        Action::Respond {
            status: 429,
            headers: vec![("Retry-After".into(), "1".into())],
            body: String::new(),
        },
    );
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, Some(1 << 20)).await;
    let v = wait_done(&r.engine, id, Duration::from_secs(30)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    assert_eq!(r.proxy.count("POST"), 1, "never recreated");
    // Backoff grows: the gaps between the 423 answers are not a storm.
    let log = r.proxy.log();
    let locked: Vec<_> = log
        .iter()
        .filter(|l| l.status == 423)
        .map(|l| l.at)
        .collect();
    assert_eq!(locked.len(), 3);
    for w in locked.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(40),
            "spaced retries: {:?}",
            w[1] - w[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_is_aborted_and_retried() {
    let r = rig(2 << 20, |_| {}).await;
    r.proxy
        .once("PATCH", 0, Action::Stall(Duration::from_secs(30)));
    let start = Instant::now();
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, Some(1 << 20)).await;
    let v = wait_done(&r.engine, id, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "stall detected long before the proxy gave up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_too_large_halves_the_chunk() {
    let r = rig(3 << 20, |c| c.upload.creation_with_upload = false).await;
    r.proxy.once(
        "PATCH",
        0,
        Action::Respond {
            status: 413,
            headers: vec![],
            body: "too large".into(),
        },
    );
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, None).await;
    let v = wait_done(&r.engine, id, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    let patches: Vec<_> = r
        .proxy
        .log()
        .into_iter()
        .filter(|l| l.method == "PATCH")
        .collect();
    let first = patches[0].content_length;
    assert!(
        patches[1..].iter().all(|p| p.content_length <= first / 2),
        "{patches:#?}"
    );
    // The journal keeps what the 413 taught, per endpoint: the next upload (and the next
    // launch, which reads the same journal) starts at the smaller size.
    let learned = r
        .engine
        .store()
        .learned_chunk(&r.proxy.endpoint())
        .unwrap()
        .expect("chunk size kept in the journal");
    assert!(learned <= first / 2);
    let before = r.proxy.log().len();
    let second = write_file(r._files.path(), "g.bin", 3 << 20, 77);
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &second, None).await;
    let v = wait_done(&r.engine, id, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &v, &second);
    let later: Vec<_> = r.proxy.log()[before..]
        .iter()
        .filter(|l| l.method == "PATCH")
        .cloned()
        .collect();
    assert!(later.len() >= 2, "{later:#?}");
    assert!(
        later.iter().all(|p| p.content_length <= learned),
        "{later:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_final_answer_is_waited_for_not_cut_off() {
    // The stall timeout is 1 s here; the server takes 3 s to answer the PATCH that carried
    // the whole file. The watchdog stops counting once the body is sent.
    let r = rig(300_000, |c| c.upload.creation_with_upload = false).await;
    r.proxy
        .once("PATCH", 0, Action::SlowAnswer(Duration::from_secs(3)));
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, None).await;
    let v = wait_done(&r.engine, id, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    assert_eq!(r.proxy.count("PATCH"), 1, "{:#?}", r.proxy.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_too_large_on_a_post_with_data_creates_without_data() {
    let r = rig(200_000, |c| c.upload.creation_with_upload = true).await;
    r.proxy.once(
        "POST",
        0,
        Action::Respond {
            status: 413,
            headers: vec![],
            body: String::new(),
        },
    );
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, None).await;
    let v = wait_done(&r.engine, id, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    let posts: Vec<_> = r
        .proxy
        .log()
        .into_iter()
        .filter(|l| l.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].content_length, 200_000);
    assert_eq!(posts[1].content_length, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_are_sent_and_a_mismatch_resends_the_chunk() {
    let r = rig((3 << 20) + 123, |c| c.upload.creation_with_upload = false).await;
    r.proxy.set_checksum_mode(true);
    r.proxy.once("PATCH", 1, Action::Corrupt);
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, Some(1 << 20)).await;
    let v = wait_done(&r.engine, id, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    let log = r.proxy.log();
    let patches: Vec<_> = log.iter().filter(|l| l.method == "PATCH").collect();
    assert!(
        patches.iter().all(|p| p
            .checksum
            .as_deref()
            .is_some_and(|c| c.starts_with("sha256 "))),
        "{patches:#?}"
    );
    let bad = patches.iter().position(|p| p.status == 460).expect("a 460");
    assert_eq!(
        patches[bad + 1].upload_offset,
        patches[bad].upload_offset,
        "same chunk again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_server_restart_and_an_unreachable_server() {
    let mut r = rig(8 << 20, |c| c.bandwidth = 4 << 20).await;
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, Some(1 << 20)).await;
    support::wait_until("progress", Duration::from_secs(20), || {
        r.engine.store().get(id).unwrap().acked_offset >= 2 << 20
    });
    r.server.restart();
    support::wait_until("more progress", Duration::from_secs(20), || {
        r.engine.store().get(id).unwrap().acked_offset >= 4 << 20
    });
    r.proxy.set_refuse(true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    r.proxy.set_refuse(false);
    r.engine.set_bandwidth(0).unwrap();
    let v = wait_done(&r.engine, id, Duration::from_secs(40)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    assert_eq!(r.server.upload_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_errors_fail_one_upload_and_the_rest_continue() {
    let r = rig(100_000, |c| c.upload.retry.max_attempts = 2).await;
    let other = write_file(r.file.parent().unwrap(), "other.bin", 50_000, 99);
    r.proxy.once(
        "POST",
        0,
        Action::Respond {
            status: 400,
            headers: vec![],
            body: "bad metadata".into(),
        },
    );
    let a = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, None).await;
    let va = wait_done(&r.engine, a, Duration::from_secs(20)).await;
    assert_eq!(va.state, UploadState::Failed);
    assert!(
        va.error.as_ref().unwrap().contains("400")
            && va.error_detail.as_ref().unwrap().contains("bad metadata")
    );
    let b = support::add_one(&r.engine, &r.proxy.endpoint(), &other, None).await;
    let vb = wait_done(&r.engine, b, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &vb, &other);

    // Unreachable for good: bounded retries, then a clear failure.
    r.proxy.set_refuse(true);
    let third = write_file(r.file.parent().unwrap(), "third.bin", 1000, 98);
    let c = support::add_one(&r.engine, &r.proxy.endpoint(), &third, None).await;
    let vc = wait_done(&r.engine, c, Duration::from_secs(20)).await;
    assert_eq!(vc.state, UploadState::Failed);
    assert!(
        vc.error
            .as_ref()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{:?}",
        vc.error
    );
    // And the user can retry it once the server is back.
    r.proxy.set_refuse(false);
    r.engine.retry(c).await.unwrap();
    let vc = wait_done(&r.engine, c, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &vc, &third);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_follow_a_location_on_another_host() {
    let r = rig(10_000, |c| c.upload.creation_with_upload = false).await;
    // A Location on another loopback address (another host as far as URLs go).
    let elsewhere = format!("http://127.0.0.2:{}/files/stolen", r.server.port);
    r.proxy.once(
        "POST",
        0,
        Action::Respond {
            status: 201,
            headers: vec![
                ("Location".into(), elsewhere.clone()),
                ("Tus-Resumable".into(), "1.0.0".into()),
            ],
            body: String::new(),
        },
    );
    let res = r
        .engine
        .add(tusker_core::AddRequest {
            paths: vec![r.file.clone()],
            endpoint: r.proxy.endpoint(),
            headers: [("Authorization".to_string(), "Bearer s3cr3t".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = match &res[0] {
        tusker_core::AddResult::Added { id, .. } => *id,
        other => panic!("{other:?}"),
    };
    let v = wait_done(&r.engine, id, Duration::from_secs(20)).await;
    assert_eq!(v.state, UploadState::Failed);
    assert_eq!(v.error_code.as_deref(), Some("host_not_allowed"));
    let e = v.error_detail.unwrap();
    assert!(e.contains("another host") && e.contains("127.0.0.2"), "{e}");
    assert!(
        r.engine.store().get(id).unwrap().upload_url.is_none(),
        "not recorded"
    );
    // Without secret headers, another host is fine (CDN-style upload hosts exist).
    let other = write_file(r.file.parent().unwrap(), "plain.bin", 1000, 5);
    let id2 = support::add_one(&r.engine, &r.proxy.endpoint(), &other, None).await;
    let v2 = wait_done(&r.engine, id2, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &v2, &other);
}

/// The proxy's log as a timeline (seconds since `t0`, request, upload id prefix, offset,
/// status), to see where a chaos run spent its time.
fn timeline(log: &[support::proxy::Logged], t0: Instant) -> String {
    let mut log: Vec<_> = log.iter().collect();
    log.sort_by_key(|l| l.at);
    log.iter()
        .map(|l| {
            let id = l.path.rsplit('/').next().unwrap_or("");
            format!(
                "{:>8.3} {:7} {:8} off={:?} len={} fwd={} status={}{}\n",
                l.at.saturating_duration_since(t0).as_secs_f64(),
                l.method,
                id.get(..8).unwrap_or(id),
                l.upload_offset,
                l.content_length,
                l.forwarded,
                l.status,
                if l.injected { " (injected)" } else { "" }
            )
        })
        .collect()
}

/// Fails a chaos run that stopped moving, with what is needed to see why: each upload's
/// state, the faults so far, whether the server is still alive, and the request timeline.
fn stuck(
    what: &str,
    snap: &[UploadView],
    proxy: &FaultProxy,
    server: &mut TusServer,
    started: Instant,
) -> ! {
    let states: Vec<String> = snap
        .iter()
        .map(|v| format!("{:?} {}/{} {:?}", v.state, v.acked, v.size, v.error))
        .collect();
    panic!(
        "{what} after {:.1?}: {states:#?}\nserver exited: {:?}\nfaults {:?}\n{}",
        started.elapsed(),
        server.exited(),
        proxy.faults(),
        timeline(&proxy.log(), started)
    );
}

/// The fault matrix at scale: a dozen uploads of mixed sizes through a proxy that injects a
/// random fault into a quarter of all requests (connection resets at random body offsets, 503
/// bursts, 429 with Retry-After, 423, 500, stalls while the server still holds the PATCH),
/// while the server process is restarted and then unreachable for two seconds. Every file
/// must arrive byte-exact and exactly once, the waiting state must carry its reason, and
/// retries must stay spaced by the backoff (no storm).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_faults_still_delivers_every_file_exactly_once() {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use support::proxy::Chaos;
    let seed: u64 = std::env::var("TUSKER_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    println!("chaos seed {seed} (TUSKER_CHAOS_SEED={seed} replays the fault choices)");
    let Fixture(mut server, proxy, files, data, ..) = Fixture::new().proxied();
    let sizes = [
        0usize,
        10,
        100_000,
        700_000,
        1 << 20,
        2 << 20,
        3 << 20,
        5 << 20,
        8 << 20,
        12 << 20,
        (1 << 20) + 1,
        4_000_000,
    ];
    let paths: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| write_file(files.path(), &format!("f{i}.bin"), n, 1000 + i as u64))
        .collect();
    let mut c = config(data.path());
    c.upload.stall_timeout = Duration::from_millis(800);
    c.upload.final_answer_timeout = Duration::from_secs(3);
    c.upload.retry.base = Duration::from_millis(100);
    c.upload.retry.max_delay = Duration::from_secs(1);
    // A quarter of requests fail, on top of 503 bursts, a restart and 2 s refused: with a
    // 1 s cap the default budget (12 failures in a row, about 10 s here) can run out.
    c.upload.retry.max_attempts = 30;
    c.upload.chunk_size = Some(512 << 10);
    c.bandwidth = 12 << 20;
    let engine = Engine::open(c).await.unwrap();
    let mut rx = engine.subscribe();
    let reasons = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let r2 = reasons.clone();
    // Awaited after the engine is gone (its events channel then closes), so a failed
    // assertion in here fails the test instead of dying with a detached task.
    let event_checks = tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let b = match rx.recv().await {
                Ok(b) => b,
                // Batches missed are not checked, but the ones after them still are.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            };
            for v in &b.changed {
                if v.state == UploadState::WaitingToRetry {
                    assert!(v.retry_at_ms.is_some(), "waiting without a time: {v:?}");
                    r2.lock()
                        .unwrap()
                        .insert(v.error.clone().expect("a reason"));
                }
            }
        }
    });
    proxy.set_chaos(Some(Chaos {
        seed,
        rate: 0.25,
        hold: Duration::from_secs(3),
    }));
    let started = Instant::now();
    let res = engine
        .add(tusker_core::AddRequest {
            paths: paths.clone(),
            endpoint: proxy.endpoint(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<UploadId> = res
        .iter()
        .map(|r| match r {
            tusker_core::AddResult::Added { id, .. } => *id,
            other => panic!("{other:?}"),
        })
        .collect();
    let total: u64 = sizes.iter().map(|&n| n as u64).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    // A third through: the server restarts; two thirds through: it is unreachable for 2 s.
    for (third, what) in [
        (1, "no progress under chaos"),
        (2, "no progress after the restart"),
    ] {
        while support::acked_total(&engine).await < total * third / 3 {
            if Instant::now() >= deadline || server.exited().is_some() {
                let snap = engine.snapshot().await.unwrap();
                stuck(what, &snap, &proxy, &mut server, started);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if third == 1 {
            server.restart();
        }
    }
    proxy.set_refuse(true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_refuse(false);
    let mut done = Vec::new();
    for (id, path) in ids.iter().zip(&paths) {
        let v = wait_done(&engine, *id, Duration::from_secs(120)).await;
        assert_uploaded(&server, &engine, &v, path);
        done.push(v);
    }
    let elapsed = started.elapsed();
    proxy.set_chaos(None);
    engine.shutdown().await.unwrap();
    // Every sender of the events is gone with the engine: the checks end and report.
    drop(engine);
    match tokio::time::timeout(Duration::from_secs(10), event_checks).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("the event checks did not run to the end: {e}"),
        Err(_) => panic!("the events channel stayed open after the engine was shut down"),
    }

    // Exactly once: one completed server upload per file (resets during a POST may leave
    // empty unfinished ones behind, which the journal never points at).
    let complete: Vec<_> = server
        .uploads()
        .into_iter()
        .filter(|u| u.complete())
        .collect();
    assert_eq!(complete.len(), paths.len(), "{complete:#?}");
    let recreated: i64 = done.iter().map(|v| v.recreated).sum();
    assert_eq!(recreated, 0, "no upload was started over on the server");

    // Spacing: after a failed request, the next request on the same upload waits for the
    // backoff (≥ half the 100 ms base) or the server's Retry-After.
    let log = proxy.log();
    let mut by_path: HashMap<&str, Vec<&support::proxy::Logged>> = HashMap::new();
    for l in &log {
        if l.method != "OPTIONS" && l.method != "POST" {
            by_path.entry(l.path.as_str()).or_default().push(l);
        }
    }
    let mut failed = 0;
    for reqs in by_path.values_mut() {
        // The log is in order of completion; the retry discipline is about start times.
        reqs.sort_by_key(|l| l.at);
        for w in reqs.windows(2) {
            let (a, b) = (w[0], w[1]);
            let failed_status = matches!(a.status, 423 | 429 | 500 | 503);
            if !failed_status {
                continue;
            }
            failed += 1;
            let gap = b.at.duration_since(a.at);
            let floor = if a.status == 429 {
                Duration::from_millis(950)
            } else {
                Duration::from_millis(45)
            };
            assert!(
                gap >= floor,
                "{} {} answered {} was retried after {gap:?}",
                a.method,
                a.path,
                a.status
            );
        }
    }
    if std::env::var_os("TUSKER_CHAOS_TRACE").is_some() {
        eprintln!("{}", timeline(&log, started));
    }
    let faults = proxy.faults();
    let injected: usize = faults.values().sum();
    let requests = log.len();
    let reasons = reasons.lock().unwrap().clone();
    let kinds: BTreeMap<&str, bool> = [("503", "503"), ("429", "429"), ("500", "500")]
        .into_iter()
        .map(|(k, needle)| (k, reasons.iter().any(|r| r.contains(needle))))
        .collect();
    println!(
        "fault matrix: {} files, {:.1} MiB in {elapsed:.1?}; {requests} requests, {injected} \
         faults injected {faults:?}, plus a server restart and 2 s of refused connections; \
         {failed} failed answers, each retried after its backoff; {} requests given up by \
         the client while the server worked; {} distinct waiting reasons shown; reasons by \
         status {kinds:?}",
        paths.len(),
        total as f64 / 1048576.0,
        proxy.abandoned(),
        reasons.len()
    );
    assert!(
        injected >= 10,
        "too few faults to mean anything: {faults:?}"
    );
    assert!(
        requests <= 6 * (injected + 60),
        "{requests} requests for {injected} faults: a retry storm"
    );
    // A wait shorter than the 100 ms event batch may never be shown; a Retry-After of a
    // second always is, with its reason.
    if faults.get("429 Retry-After: 1").is_some_and(|n| *n > 0) {
        assert!(
            reasons.iter().any(|r| r.contains("429")),
            "a 429 was never shown as the waiting reason: {reasons:#?}"
        );
    }
    for r in &reasons {
        assert!(
            !r.contains("/files/"),
            "a waiting reason carries an upload URL: {r}"
        );
    }
}

/// An empty file is created with a deferred length and finished by a PATCH that declares it
/// (so no POST ever completes an upload by itself). When that PATCH is cut, the HEAD that
/// follows tells whether the length is still deferred, and the upload completes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_file_is_declared_by_a_patch_even_after_a_cut() {
    let r = rig(0, |_| {}).await;
    r.proxy.once("PATCH", 0, Action::DropAfter(0));
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, None).await;
    let v = wait_done(&r.engine, id, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    let uploads = r.server.uploads();
    assert_eq!(uploads.len(), 1, "{uploads:#?}");
    assert!(uploads[0].complete(), "{uploads:#?}");
    let log = r.proxy.log();
    let post = log.iter().find(|l| l.method == "POST").unwrap();
    assert_eq!(post.content_length, 0);
    assert!(log.iter().filter(|l| l.method == "PATCH").count() >= 1);
}

/// An outage longer than the attempt budget: with network patience (the desktop app's
/// setting) an upload keeps waiting, showing why, and completes once the server can be
/// reached again; without it (the CLI's default) the same outage fails the upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_patience_waits_out_an_outage_longer_than_the_retry_budget() {
    let tight = |c: &mut EngineConfig| {
        c.upload.retry.max_attempts = 2;
        c.upload.retry.base = Duration::from_millis(50);
        c.upload.retry.max_delay = Duration::from_millis(200);
    };
    let r = rig(300_000, |c| {
        tight(c);
        c.upload.retry.network_patience = Some(Duration::from_secs(60));
    })
    .await;
    // The control: the same budget without patience, its own journal, the same proxy.
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    tight(&mut c);
    let impatient = Engine::open(c).await.unwrap();
    r.proxy.set_refuse(true);
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, None).await;
    let control = support::add_one(&impatient, &r.proxy.endpoint(), &r.file, None).await;
    let failed = wait_done(&impatient, control, Duration::from_secs(20)).await;
    assert_eq!(failed.state, UploadState::Failed, "{failed:#?}");
    assert!(failed.error.as_deref().unwrap().contains("gave up after"));
    // Well past the budget the patient upload still waits, and says why.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v = support::wait_view(&r.engine, id, "waiting", Duration::from_secs(5), |v| {
        v.state == UploadState::WaitingToRetry
    })
    .await;
    let reason = v.error.clone().unwrap_or_default();
    assert!(!reason.is_empty() && !reason.contains("gave up"), "{v:#?}");
    // A server that is still starting answers 503 twice once the network is back: waiting
    // for the network spent none of the budget (2), so that does not fail the upload.
    r.proxy.push(support::proxy::Rule {
        method: "POST",
        skip: 0,
        times: 2,
        action: Action::Respond {
            status: 503,
            headers: vec![],
            body: "starting".into(),
        },
    });
    r.proxy.set_refuse(false);
    let v = wait_done(&r.engine, id, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    println!("waited out the outage; the reason shown meanwhile: {reason}");
    impatient.shutdown().await.unwrap();
}

/// "Try now" ends a network wait at once: with a minute of backoff ahead, an upload whose
/// server can be reached again completes in seconds once asked. A busy server's Retry-After
/// is kept: the same call does not make a 503 with `Retry-After: 60` try early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_now_ends_a_network_wait_but_keeps_a_servers_retry_after() {
    let r = rig(300_000, |c| {
        c.upload.retry.base = Duration::from_secs(60);
        c.upload.retry.max_delay = Duration::from_secs(60);
        c.upload.retry.network_patience = Some(Duration::from_secs(600));
    })
    .await;
    r.proxy.set_refuse(true);
    let id = support::add_one(&r.engine, &r.proxy.endpoint(), &r.file, None).await;
    let v = support::wait_view(&r.engine, id, "waiting", Duration::from_secs(10), |v| {
        v.state == UploadState::WaitingToRetry
    })
    .await;
    // The proxy takes the connection and drops it: "network.reset".
    assert!(
        v.error_code
            .as_deref()
            .is_some_and(|c| c.starts_with("network.")),
        "{v:#?}"
    );
    r.proxy.set_refuse(false);
    // Not woken by the network coming back alone: still waiting its minute.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let v = support::view(&r.engine, id).await;
    assert_eq!(v.state, UploadState::WaitingToRetry, "{v:#?}");
    let asked = std::time::Instant::now();
    r.engine.try_now();
    let v = wait_done(&r.engine, id, Duration::from_secs(20)).await;
    assert_uploaded(&r.server, &r.engine, &v, &r.file);
    assert!(asked.elapsed() < Duration::from_secs(20));

    // A server that asked for a minute keeps it.
    r.proxy.push(support::proxy::Rule {
        method: "POST",
        skip: 0,
        times: 1,
        action: Action::Respond {
            status: 503,
            headers: vec![("Retry-After".into(), "60".into())],
            body: "busy".into(),
        },
    });
    let other = r.file.with_file_name("other.bin");
    std::fs::write(&other, support::pattern(50_000, 9)).unwrap();
    let busy = support::add_one(&r.engine, &r.proxy.endpoint(), &other, None).await;
    support::wait_view(&r.engine, busy, "waiting", Duration::from_secs(10), |v| {
        v.state == UploadState::WaitingToRetry
    })
    .await;
    r.engine.try_now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v = support::view(&r.engine, busy).await;
    assert_eq!(v.state, UploadState::WaitingToRetry, "{v:#?}");
    assert_eq!(v.error_code.as_deref(), Some("http.5xx"), "{v:#?}");
}

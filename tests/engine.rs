//! The engine against the real `@tus/server` over loopback (and, for faults, through the
//! fault-injecting proxy in front of it).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::fixture::Fixture;
use support::proxy::{Action, FaultProxy};
use support::{write_file, ServerOpts, TusServer};
use tusker_core::{AddRequest, AddResult, Engine, EngineConfig, UploadId, UploadState, UploadView};

fn config(dir: &Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.upload.stall_timeout = Duration::from_secs(3);
    c.upload.retry.base = Duration::from_millis(50);
    c.upload.retry.max_delay = Duration::from_millis(400);
    c.upload.retry.max_attempts = 8;
    c
}

fn request(endpoint: &str, paths: Vec<PathBuf>) -> AddRequest {
    AddRequest {
        paths,
        endpoint: endpoint.to_string(),
        ..Default::default()
    }
}

fn ids(results: &[AddResult]) -> Vec<UploadId> {
    results
        .iter()
        .map(|r| match r {
            AddResult::Added { id, .. } | AddResult::Resumed { id, .. } => *id,
            AddResult::Rejected { path, error } => panic!("{path} rejected: {error}"),
            AddResult::AlreadyUploaded { path, .. } => panic!("{path} already uploaded"),
            AddResult::Restarted { path, .. } => panic!("{path} restarted"),
        })
        .collect()
}

async fn wait_for(
    engine: &Engine,
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut(&HashMap<UploadId, UploadView>) -> bool,
) -> HashMap<UploadId, UploadView> {
    let deadline = Instant::now() + timeout;
    loop {
        let snap: HashMap<_, _> = engine
            .snapshot()
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.id, v))
            .collect();
        if cond(&snap) {
            return snap;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {snap:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_done(engine: &Engine, ids: &[UploadId]) -> HashMap<UploadId, UploadView> {
    wait_for(engine, "uploads to finish", Duration::from_secs(60), |s| {
        ids.iter().all(|id| s[id].state.is_terminal())
    })
    .await
}

fn assert_uploaded(server: &TusServer, engine: &Engine, view: &UploadView, path: &Path) {
    assert_eq!(view.state, UploadState::Completed, "{view:#?}");
    // A completed row no longer carries its URL: the journal keeps it.
    assert_eq!(view.upload_url, None);
    let url = &support::url_of(engine, view.id);
    let stored = server.stored(url);
    let local = std::fs::read(path).unwrap();
    assert!(
        stored == local,
        "server bytes differ from {}",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_files_of_many_sizes_byte_exact() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let sizes = [
        0usize,
        1,
        1000,
        1 << 20,
        (1 << 20) + 1,
        5 * (1 << 20) + 7,
        9_999_999,
    ];
    let paths: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| write_file(files.path(), &format!("f{i}.bin"), *s, i as u64))
        .collect();
    let engine = Engine::open(config(data.path())).await.unwrap();
    let mut req = request(&server.endpoint(), paths.clone());
    req.chunk_size = Some(3 * (1 << 20) + 5);
    let ids = ids(&engine.add(req).await.unwrap());
    let done = wait_done(&engine, &ids).await;
    for (id, p) in ids.iter().zip(&paths) {
        assert_uploaded(&server, &engine, &done[id], p);
        assert_eq!(done[id].acked, done[id].size);
    }
    // The journal agrees with what the UI saw.
    for id in &ids {
        let rec = engine.store().get(*id).unwrap();
        assert_eq!(rec.state, UploadState::Completed);
        assert_eq!(rec.acked_offset, rec.size);
    }
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_with_upload_is_used_when_turned_on_and_off_by_default() {
    let Fixture(server, proxy, files, data, ..) = Fixture::new().proxied();
    let small = write_file(files.path(), "small.txt", 10_000, 1);

    let mut cfg = config(data.path());
    cfg.upload.creation_with_upload = true;
    let engine = Engine::open(cfg).await.unwrap();
    let id = ids(&engine
        .add(request(&proxy.endpoint(), vec![small.clone()]))
        .await
        .unwrap())[0];
    let done = wait_done(&engine, &[id]).await;
    assert_uploaded(&server, &engine, &done[&id], &small);
    engine.shutdown().await.unwrap();
    drop(engine);
    let posts: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|l| l.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].content_length, 10_000,
        "the whole small file rides in the POST"
    );
    assert_eq!(proxy.count("PATCH"), 0);

    let data2 = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(data2.path())).await.unwrap();
    let other = write_file(files.path(), "other.txt", 10_000, 2);
    let id = ids(&engine
        .add(request(&proxy.endpoint(), vec![other.clone()]))
        .await
        .unwrap())[0];
    let done = wait_done(&engine, &[id]).await;
    assert_uploaded(&server, &engine, &done[&id], &other);
    let posts: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|l| l.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].content_length, 0);
    assert_eq!(proxy.count("PATCH"), 1);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_location_and_metadata_round_trip() {
    let server = TusServer::start_with(ServerOpts {
        relative_location: true,
        ..Default::default()
    });
    let files = tempfile::tempdir().unwrap();
    let p = write_file(files.path(), "Résumé 📄 final.pdf", 300_000, 3);
    let data = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(data.path())).await.unwrap();
    let mut req = request(&server.endpoint(), vec![p.clone()]);
    req.metadata = BTreeMap::from([
        (
            "project".to_string(),
            "Ünïcode, with commas and spaces".to_string(),
        ),
        ("empty".to_string(), String::new()),
    ]);
    let id = ids(&engine.add(req).await.unwrap())[0];
    let done = wait_done(&engine, &[id]).await;
    let url = support::url_of(&engine, id);
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "relative Location resolved: {url}"
    );
    assert_uploaded(&server, &engine, &done[&id], &p);
    let info = server.stored_info(&url);
    let meta = &info["metadata"];
    assert_eq!(meta["filename"], "Résumé 📄 final.pdf");
    assert_eq!(meta["filetype"], "application/pdf");
    assert_eq!(meta["project"], "Ünïcode, with commas and spaces");
    assert!(meta.get("empty").is_some(), "{meta}");
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_409_resumes_from_the_servers_offset() {
    let Fixture(server, proxy, files, data, ..) = Fixture::new().proxied();
    let p = write_file(files.path(), "a.bin", 4 << 20, 4);
    let engine = Engine::open(config(data.path())).await.unwrap();
    proxy.once(
        "PATCH",
        1,
        Action::Respond {
            status: 409,
            headers: vec![("Tus-Resumable".into(), "1.0.0".into())],
            body: "offset mismatch".into(),
        },
    );
    let mut req = request(&proxy.endpoint(), vec![p.clone()]);
    req.chunk_size = Some(1 << 20);
    let id = ids(&engine.add(req).await.unwrap())[0];
    let done = wait_done(&engine, &[id]).await;
    assert_uploaded(&server, &engine, &done[&id], &p);
    let log = proxy.log();
    let conflict = log
        .iter()
        .position(|l| l.status == 409)
        .expect("409 injected");
    assert_eq!(
        log[conflict + 1].method,
        "HEAD",
        "a 409 is followed by HEAD: {log:#?}"
    );
    assert_eq!(server.upload_count(), 1);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_upload_is_recreated_and_recorded() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let p = write_file(files.path(), "v.bin", 6 << 20, 5);
    let mut cfg = config(data.path());
    cfg.bandwidth = 4 << 20;
    let engine = Engine::open(cfg).await.unwrap();
    let mut req = request(&server.endpoint(), vec![p.clone()]);
    req.chunk_size = Some(1 << 20);
    let id = ids(&engine.add(req).await.unwrap())[0];
    let snap = wait_for(&engine, "some progress", Duration::from_secs(20), |s| {
        s[&id].acked >= 2 << 20
    })
    .await;
    engine.pause(id).await.unwrap();
    let old_url = snap[&id].upload_url.clone().unwrap();
    server.delete_stored(&old_url);
    engine.set_bandwidth(0).unwrap();
    engine.resume(id).await.unwrap();
    let done = wait_done(&engine, &[id]).await;
    assert_uploaded(&server, &engine, &done[&id], &p);
    assert_ne!(support::url_of(&engine, id), old_url);
    assert_eq!(done[&id].recreated, 1);
    assert_eq!(
        done[&id].note.as_deref(),
        Some("the server had lost this upload (expired or removed): sent again from the start")
    );
    assert_eq!(engine.store().get(id).unwrap().recreated, 1);
    engine.shutdown().await.unwrap();
}

/// A HEAD that shows another Upload-Length (or an offset past the file) cannot be this file's
/// upload: it is terminated first, then a new one is created, so nothing is left orphaned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_upload_of_another_length_is_terminated_then_recreated() {
    let Fixture(server, proxy, files, data, ..) = Fixture::new().proxied();
    let mut cfg = config(data.path());
    cfg.bandwidth = 4 << 20;
    let engine = Engine::open(cfg).await.unwrap();
    for (i, (length, offset)) in [("999", "0"), ("6291456", "7000000")]
        .into_iter()
        .enumerate()
    {
        let p = write_file(files.path(), &format!("m{i}.bin"), 6 << 20, 20 + i as u64);
        let mut req = request(&proxy.endpoint(), vec![p.clone()]);
        req.chunk_size = Some(1 << 20);
        let id = ids(&engine.add(req).await.unwrap())[0];
        let snap = wait_for(&engine, "some progress", Duration::from_secs(20), |s| {
            s[&id].acked >= 1 << 20
        })
        .await;
        engine.pause(id).await.unwrap();
        let old = snap[&id].upload_url.clone().unwrap();
        let old_path = old.rsplit('/').next().unwrap().to_string();
        proxy.once(
            "HEAD",
            0,
            Action::Respond {
                status: 200,
                headers: vec![
                    ("Upload-Length".into(), length.into()),
                    ("Upload-Offset".into(), offset.into()),
                    ("Tus-Resumable".into(), "1.0.0".into()),
                ],
                body: String::new(),
            },
        );
        let before = proxy.log().len();
        engine.resume(id).await.unwrap();
        let done = wait_done(&engine, &[id]).await;
        assert_uploaded(&server, &engine, &done[&id], &p);
        assert_ne!(support::url_of(&engine, id), old);
        let after: Vec<(String, String)> = proxy.log()[before..]
            .iter()
            .map(|l| (l.method.clone(), l.path.clone()))
            .collect();
        let delete = after
            .iter()
            .position(|(m, p)| m == "DELETE" && p.ends_with(&old_path))
            .unwrap_or_else(|| panic!("the old upload terminated: {after:?}"));
        let post = after.iter().position(|(m, _)| m == "POST").unwrap();
        assert!(
            delete < post,
            "terminated before the new one is created: {after:?}"
        );
        assert_eq!(support::server_offset(&old), None, "the old upload is gone");
    }
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_terminates_on_the_server() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let p = write_file(files.path(), "c.bin", 8 << 20, 6);
    let mut cfg = config(data.path());
    cfg.bandwidth = 2 << 20;
    let engine = Engine::open(cfg).await.unwrap();
    let id = ids(&engine
        .add(request(&server.endpoint(), vec![p]))
        .await
        .unwrap())[0];
    let snap = wait_for(&engine, "a server upload", Duration::from_secs(20), |s| {
        s[&id].upload_url.is_some()
    })
    .await;
    let url = snap[&id].upload_url.clone().unwrap();
    assert!(server.stored_path(&url).exists());
    engine.cancel(id).await.unwrap();
    // @tus/file-store removes the data, then the info file: wait for both.
    support::wait_until("the DELETE", Duration::from_secs(10), || {
        !server.stored_path(&url).exists() && server.upload_count() == 0
    });
    assert_eq!(
        engine.store().get(id).unwrap().state,
        UploadState::Cancelled
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readding_the_same_content_from_a_new_path_resumes_the_previous_upload() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let p = write_file(files.path(), "orig.bin", 6 << 20, 7);
    let mut cfg = config(data.path());
    cfg.bandwidth = 4 << 20;
    let engine = Engine::open(cfg.clone()).await.unwrap();
    let mut req = request(&server.endpoint(), vec![p.clone()]);
    req.chunk_size = Some(1 << 20);
    let id = ids(&engine.add(req).await.unwrap())[0];
    let snap = wait_for(&engine, "progress", Duration::from_secs(20), |s| {
        s[&id].acked >= 2 << 20
    })
    .await;
    let url = snap[&id].upload_url.clone().unwrap();
    engine.shutdown().await.unwrap();
    drop(engine);

    // Renamed and moved into another folder; the app restarts without auto-resume.
    let moved_dir = files.path().join("elsewhere");
    std::fs::create_dir(&moved_dir).unwrap();
    let moved = moved_dir.join("renamed.bin");
    std::fs::rename(&p, &moved).unwrap();
    let before = support::server_offset(&url).unwrap();
    assert!(before >= 2 << 20);

    cfg.bandwidth = 0;
    cfg.auto_resume = false;
    let engine = Engine::open(cfg).await.unwrap();
    let res = engine
        .add(request(&server.endpoint(), vec![moved.clone()]))
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![AddResult::Resumed {
            id,
            path: moved.display().to_string()
        }]
    );
    let done = wait_done(&engine, &[id]).await;
    assert_eq!(support::url_of(&engine, id), url, "same server upload");
    assert_uploaded(&server, &engine, &done[&id], &moved);
    assert_eq!(server.upload_count(), 1);
    assert_eq!(
        engine.store().get(id).unwrap().path,
        moved.display().to_string()
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_between_runs_is_never_appended_and_can_be_restarted() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let p = write_file(files.path(), "doc.bin", 6 << 20, 8);
    let mut cfg = config(data.path());
    cfg.bandwidth = 4 << 20;
    let engine = Engine::open(cfg.clone()).await.unwrap();
    let id = ids(&engine
        .add(request(&server.endpoint(), vec![p.clone()]))
        .await
        .unwrap())[0];
    wait_for(&engine, "progress", Duration::from_secs(20), |s| {
        s[&id].acked >= 1 << 20
    })
    .await;
    engine.shutdown().await.unwrap();
    drop(engine);

    // Same size, new content inside what the server already holds (an edit past it would
    // be proven and simply sent: tests/integrity.rs).
    std::thread::sleep(Duration::from_millis(20));
    let mut content = std::fs::read(&p).unwrap();
    let n = content.len();
    content[100..110].copy_from_slice(b"0123456789");
    std::fs::write(&p, &content).unwrap();

    cfg.bandwidth = 0;
    let engine = Engine::open(cfg).await.unwrap();
    let snap = wait_done(&engine, &[id]).await;
    assert_eq!(
        snap[&id].state,
        UploadState::FileChanged,
        "{:#?}",
        snap[&id]
    );
    assert_eq!(snap[&id].error_code.as_deref(), Some("file_changed"));
    assert!(snap[&id]
        .error_detail
        .as_ref()
        .unwrap()
        .contains("differ from those the server holds"));
    let old_url = snap[&id].upload_url.clone().unwrap();
    assert!(
        support::server_offset(&old_url).unwrap() < n as u64,
        "old upload not completed"
    );

    engine.restart(id).await.unwrap();
    let done = wait_done(&engine, &[id]).await;
    assert_uploaded(&server, &engine, &done[&id], &p);
    assert_ne!(support::url_of(&engine, id), old_url);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_modified_during_the_upload_is_proven_before_the_next_request() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let mut cfg = config(data.path());
    cfg.bandwidth = 4 << 20;
    let engine = Engine::open(cfg).await.unwrap();
    // Rewritten in place (same size) inside the bytes the server already has, then past them.
    for (name, at) in [("inside.bin", 100_000u64), ("past.bin", 6 << 20)] {
        let p = write_file(files.path(), name, 8 << 20, at);
        let mut req = request(&server.endpoint(), vec![p.clone()]);
        req.chunk_size = Some(1 << 20);
        let id = ids(&engine.add(req).await.unwrap())[0];
        wait_for(&engine, "progress", Duration::from_secs(20), |s| {
            s[&id].acked >= 1 << 20
        })
        .await;
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&[0xAB; 4096]).unwrap();
        }
        let done = wait_done(&engine, &[id]).await;
        let url = support::url_of(&engine, id);
        if name == "inside.bin" {
            assert_eq!(
                done[&id].state,
                UploadState::FileChanged,
                "{:#?}",
                done[&id]
            );
            assert!(
                support::server_offset(&url).unwrap() < 8 << 20,
                "never completed as a mix"
            );
        } else {
            // Proven prefix, new bytes sent as they are now: the file as it is, byte-exact.
            assert_uploaded(&server, &engine, &done[&id], &p);
        }
    }
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_upload_is_judged_by_the_server_and_recreated_without_a_wasted_patch() {
    let server = TusServer::start_with(ServerOpts {
        expire_ms: Some(1500),
        ..Default::default()
    });
    let proxy = FaultProxy::start(server.port);
    let files = tempfile::tempdir().unwrap();
    let p = write_file(files.path(), "e.bin", 6 << 20, 10);
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(data.path());
    cfg.bandwidth = 4 << 20;
    let engine = Engine::open(cfg).await.unwrap();
    let id = ids(&engine
        .add(request(&proxy.endpoint(), vec![p.clone()]))
        .await
        .unwrap())[0];
    let snap = wait_for(&engine, "progress", Duration::from_secs(20), |s| {
        s[&id].acked > 0
    })
    .await;
    engine.pause(id).await.unwrap();
    let old = snap[&id].upload_url.clone().unwrap();
    assert!(
        engine.store().get(id).unwrap().expires_at.is_some(),
        "Upload-Expires recorded"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = proxy.log().len();
    engine.set_bandwidth(0).unwrap();
    engine.resume(id).await.unwrap();
    let done = wait_done(&engine, &[id]).await;
    assert_uploaded(&server, &engine, &done[&id], &p);
    let old_path = old.rsplit('/').next().unwrap().to_string();
    let after: Vec<_> = proxy.log()[before..].to_vec();
    // The local clock never abandons an upload: the server is asked (HEAD), says it is gone,
    // and a new one is created; no PATCH goes to the expired one.
    assert_eq!(after[0].method, "HEAD", "{after:#?}");
    assert!(after[0].path.ends_with(&old_path));
    assert!(
        after
            .iter()
            .all(|l| !(l.method == "PATCH" && l.path.ends_with(&old_path))),
        "no PATCH to the expired upload: {after:#?}"
    );
    assert_eq!(after[1].method, "POST", "{after:#?}");
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_events_are_batched_and_never_go_backwards() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let p = write_file(files.path(), "p.bin", 6 << 20, 11);
    let mut cfg = config(data.path());
    cfg.bandwidth = 4 << 20;
    let engine = Engine::open(cfg).await.unwrap();
    let mut rx = engine.subscribe();
    let mut req = request(&server.endpoint(), vec![p]);
    req.chunk_size = Some(1 << 20);
    let id = ids(&engine.add(req).await.unwrap())[0];
    let start = Instant::now();
    let mut batches = 0u32;
    let mut last_acked = 0u64;
    let mut saw_in_flight = false;
    let mut saw_speed = false;
    loop {
        let b = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("events")
            .unwrap();
        batches += 1;
        for v in b.changed.iter().filter(|v| v.id == id) {
            assert!(
                v.acked >= last_acked,
                "acked went backwards: {} < {last_acked}",
                v.acked
            );
            last_acked = v.acked;
            saw_in_flight |= v.in_flight > 0;
            saw_speed |= v.speed > 0.0 && v.eta_secs.is_some();
        }
        if b.changed
            .iter()
            .any(|v| v.id == id && v.state == UploadState::Completed)
        {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert!(
        (batches as f64) <= secs * 10.0 + 3.0,
        "{batches} batches in {secs:.1}s: more than ~10 per second"
    );
    assert!(saw_in_flight, "in-flight estimate reported");
    assert!(saw_speed, "speed and ETA reported");
    assert_eq!(last_acked, 6 << 20);
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_pause_resume_and_reorder() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let paths: Vec<PathBuf> = (0..5)
        .map(|i| write_file(files.path(), &format!("q{i}.bin"), 3 << 20, 20 + i))
        .collect();
    let mut cfg = config(data.path());
    cfg.concurrency = 2;
    cfg.bandwidth = 3 << 20;
    let engine = Engine::open(cfg).await.unwrap();
    let mut rx = engine.subscribe();
    let ids = ids(&engine
        .add(request(&server.endpoint(), paths.clone()))
        .await
        .unwrap());
    // The last one jumps the queue.
    engine.reorder(ids[4], 0).await.unwrap();
    engine.pause(ids[0]).await.unwrap();
    let snap = engine.snapshot().await.unwrap();
    assert_eq!(snap[0].id, ids[4]);
    let watcher = tokio::spawn(async move {
        let mut states: HashMap<UploadId, UploadState> = HashMap::new();
        let mut max_running = 0;
        // Every start as the events show it, in order (a batch lists its rows in queue
        // order, the order the scheduler starts them in).
        let mut starts = Vec::new();
        while let Ok(b) = rx.recv().await {
            for v in &b.changed {
                if v.state == UploadState::Uploading
                    && states.get(&v.id) != Some(&UploadState::Uploading)
                {
                    starts.push(v.id);
                }
                states.insert(v.id, v.state);
            }
            let running = states
                .values()
                .filter(|s| **s == UploadState::Uploading)
                .count();
            max_running = max_running.max(running);
            if states.len() == 5 && states.values().all(|s| *s == UploadState::Completed) {
                break;
            }
        }
        (max_running, starts)
    });
    wait_for(&engine, "four to finish", Duration::from_secs(60), |s| {
        ids[1..]
            .iter()
            .all(|id| s[id].state == UploadState::Completed)
    })
    .await;
    assert_eq!(
        engine
            .snapshot()
            .await
            .unwrap()
            .iter()
            .find(|v| v.id == ids[0])
            .unwrap()
            .state,
        UploadState::Paused
    );
    engine.resume(ids[0]).await.unwrap();
    let done = wait_done(&engine, &ids).await;
    for (id, p) in ids.iter().zip(&paths) {
        assert_uploaded(&server, &engine, &done[id], p);
    }
    let (max_running, starts) = watcher.await.unwrap();
    assert!(max_running <= 2, "at most 2 at once, saw {max_running}");
    // The queue after the reorder is 4, 0, 1, 2, 3. The add started 0 and 1 at once (the
    // events may show 0's start or, when the pause came within the same batch, only its
    // pause); the pause of 0 gave its slot to 4, which jumped the queue, so 4 starts before
    // 2 and 3, which start in queue order as 1 and 4 finish; 0 runs again only once resumed,
    // after the other four.
    let first = |id: UploadId| starts.iter().position(|s| *s == id);
    let order: Vec<usize> = ids[1..]
        .iter()
        .map(|id| first(*id).unwrap_or_else(|| panic!("{id} never started: {starts:?}")))
        .collect();
    let (p1, p2, p3, p4) = (order[0], order[1], order[2], order[3]);
    assert!(
        p1 < p2 && p4 < p2 && p2 < p3,
        "start order {starts:?} of {ids:?}: ids[1] and ids[4] (it jumped the queue) before ids[2], ids[2] before ids[3]"
    );
    let zero: Vec<usize> = (0..starts.len()).filter(|i| starts[*i] == ids[0]).collect();
    let (last_zero, early_zero) = zero
        .split_last()
        .expect("the paused upload ran once resumed");
    assert!(
        *last_zero > p3,
        "the paused upload started before the others were done: {starts:?} of {ids:?}"
    );
    assert!(
        early_zero.iter().all(|i| *i < p4),
        "the paused upload ran again before it was resumed: {starts:?} of {ids:?}"
    );
    assert_eq!(
        engine.store().list().unwrap()[0].id,
        ids[4],
        "order persisted"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_are_rejected_one_by_one_and_the_rest_upload() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let good = write_file(files.path(), "dir/good.bin", 1000, 30);
    let fifo = files.path().join("dir/a.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let missing = files.path().join("nope.bin");
    let engine = Engine::open(config(data.path())).await.unwrap();
    let res = engine
        .add(request(
            &server.endpoint(),
            vec![files.path().join("dir"), missing.clone()],
        ))
        .await
        .unwrap();
    assert_eq!(res.len(), 3, "{res:#?}");
    let rejected: Vec<_> = res
        .iter()
        .filter_map(|r| match r {
            AddResult::Rejected { path, error } => Some((path.clone(), error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 2);
    assert!(rejected
        .iter()
        .any(|(p, e)| p.ends_with("a.fifo") && e.contains("not a regular file")));
    assert!(rejected
        .iter()
        .any(|(p, e)| p.ends_with("nope.bin") && e.contains("file missing")));
    let added: Vec<_> = res
        .iter()
        .filter_map(|r| match r {
            AddResult::Added { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let done = wait_done(&engine, &added).await;
    assert_uploaded(&server, &engine, &done[&added[0]], &good);

    // Invalid endpoints and metadata keys are refused up front with a clear error.
    let err = engine
        .add(request("not a url", vec![good.clone()]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid endpoint URL"), "{err}");
    let err = engine
        .add(request("ftp://host/files", vec![good.clone()]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not http or https"), "{err}");
    let mut req = request(&server.endpoint(), vec![good]);
    req.metadata.insert("bad key".into(), "v".into());
    assert!(engine
        .add(req)
        .await
        .unwrap_err()
        .to_string()
        .contains("invalid metadata key"));
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_on_the_same_data_dir_is_refused_by_name() {
    let data = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(data.path())).await.unwrap();
    let err = Engine::open(config(data.path()))
        .await
        .err()
        .expect("locked");
    let msg = err.to_string();
    assert!(msg.contains("in use by another Tusker process"), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_tus_or_too_small_fails_clearly() {
    let server = TusServer::start_with(ServerOpts {
        max_size: Some(1000),
        ..Default::default()
    });
    let proxy = FaultProxy::start(server.port);
    let files = tempfile::tempdir().unwrap();
    let big = write_file(files.path(), "big.bin", 5000, 40);
    let data = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(data.path())).await.unwrap();
    let id = ids(&engine
        .add(request(&server.endpoint(), vec![big.clone()]))
        .await
        .unwrap())[0];
    let done = wait_done(&engine, &[id]).await;
    assert_eq!(done[&id].state, UploadState::Failed);
    assert!(
        done[&id]
            .error
            .as_ref()
            .unwrap()
            .contains("the server takes at most 1000 B"),
        "{:?}",
        done[&id].error
    );

    // An HTML page where a tus server should be.
    proxy.once(
        "OPTIONS",
        0,
        Action::Respond {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: "<html>hello</html>".into(),
        },
    );
    // Without OPTIONS' word, the upload goes ahead with tus core; the POST is refused too.
    proxy.once(
        "POST",
        0,
        Action::Respond {
            status: 405,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: "<html>no</html>".into(),
        },
    );
    let small = write_file(files.path(), "small.bin", 10, 41);
    let id2 = ids(&engine
        .add(request(&proxy.endpoint(), vec![small]))
        .await
        .unwrap())[0];
    let done = wait_done(&engine, &[id2]).await;
    assert_eq!(done[&id2].state, UploadState::Failed);
    assert_eq!(done[&id2].error_code.as_deref(), Some("not_tus_server"));
    let e = done[&id2].error_detail.clone().unwrap();
    assert!(
        e.contains("is not a tus server")
            && e.contains("text/html")
            && e.contains("POST answered 405"),
        "{e}"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_412_names_the_servers_versions() {
    let server = TusServer::start();
    let proxy = FaultProxy::start(server.port);
    proxy.once(
        "OPTIONS",
        0,
        Action::Respond {
            status: 204,
            headers: vec![("Tus-Version".into(), "2.0.0".into())],
            body: String::new(),
        },
    );
    proxy.once(
        "POST",
        0,
        Action::Respond {
            status: 412,
            headers: vec![("Tus-Version".into(), "2.0.0,0.2.2".into())],
            body: String::new(),
        },
    );
    let files = tempfile::tempdir().unwrap();
    let f = write_file(files.path(), "v.bin", 10, 42);
    let data = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(data.path())).await.unwrap();
    let id = ids(&engine
        .add(request(&proxy.endpoint(), vec![f]))
        .await
        .unwrap())[0];
    let done = wait_done(&engine, &[id]).await;
    assert_eq!(done[&id].state, UploadState::Failed);
    assert_eq!(
        done[&id].error.as_deref(),
        Some("The server does not speak tus 1.0.0 (it speaks 2.0.0)")
    );
    let e = done[&id].error_detail.clone().unwrap();
    assert!(
        e.contains("does not support tus 1.0.0") && e.contains("2.0.0"),
        "{e}"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn clear_completed_keeps_the_history_and_the_proof_that_files_were_uploaded() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let done = write_file(files.path(), "done.bin", 2 << 20, 71);
    let waiting = write_file(files.path(), "waiting.bin", 100_000, 72);
    let mut c = config(data.path());
    c.bandwidth = 4 << 20;
    let engine = Engine::open(c).await.unwrap();
    let watched_from = Instant::now();
    let ids = ids(&engine
        .add(request(&server.endpoint(), vec![done.clone()]))
        .await
        .unwrap());
    let done_id = ids[0];
    support::wait_view(
        &engine,
        done_id,
        "done.bin completed",
        Duration::from_secs(30),
        |v| v.state == UploadState::Completed,
    )
    .await;
    let watched = watched_from.elapsed();
    engine.pause_all().await.unwrap();
    let waiting_id = support::add_one(&engine, &server.endpoint(), &waiting, None).await;
    engine.pause(waiting_id).await.unwrap();
    let mut events = engine.subscribe();

    // Only completed rows are cleared; an unfinished one cannot be.
    assert!(engine.clear(waiting_id).await.is_err());
    assert_eq!(engine.clear_completed().await.unwrap(), 1);
    let snap = engine.snapshot().await.unwrap();
    assert_eq!(snap.iter().map(|v| v.id).collect::<Vec<_>>(), [waiting_id]);
    let batch = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let b = events.recv().await.unwrap();
            if !b.removed.is_empty() {
                return b;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(batch.removed, [done_id]);

    // The history keeps the completion time, the time spent uploading (4 MiB/s limit: about
    // half a second for 2 MiB, so an average speed near the limit) and no retries.
    let history = engine.store().history(10).unwrap();
    assert_eq!(history.len(), 1);
    let h = &history[0];
    assert_eq!((h.id, h.retries), (done_id, 0));
    assert!(h.completed_at.is_some() && h.cleared_at.is_some());
    let avg = h.average_speed().unwrap();
    // The time spent uploading lies within the time this test watched the upload from its
    // add to its completion (a busy time that counted the pause or the queue would not), and
    // no upload beats the limit (at most a quarter second's burst on top: 8 MiB/s is wide).
    // A loaded machine makes both times longer, so no lower bound on the speed: that is a
    // benchmark's business. (50 ms: the journal's wall clock against this test's clock.)
    assert!(
        u128::from(h.busy_ms) <= watched.as_millis() + 50 && avg < 8.0 * 1048576.0,
        "average {avg} B/s over {} ms, watched for {watched:?}",
        h.busy_ms
    );
    engine.shutdown().await.unwrap();
    drop(engine);
    drop(events);

    // Not in the queue after a restart; the same content added again is recognised.
    let engine = Engine::open(config(data.path())).await.unwrap();
    let snap = engine.snapshot().await.unwrap();
    assert_eq!(snap.iter().map(|v| v.id).collect::<Vec<_>>(), [waiting_id]);
    // (The paused upload's POST may or may not have gone out before the pause: count what
    // the server holds now, and that adding the completed content again adds nothing.)
    let before = server.upload_count();
    assert!(before >= 1);
    let again = engine
        .add(request(&server.endpoint(), vec![done.clone()]))
        .await
        .unwrap();
    assert!(
        matches!(again[0], AddResult::AlreadyUploaded { id, .. } if id == done_id),
        "{again:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.upload_count(), before, "nothing sent again");
    engine.shutdown().await.unwrap();
}

//! Awkward input gets a clear error on that item and nothing else suffers: odd names,
//! symlinks, files that vanish while queued, and servers that answer with malformed headers.

mod support;

use std::path::Path;
use std::time::Duration;
use support::proxy::{Action, FaultProxy};
use support::{write_file, TusServer};
use tusker_core::{AddRequest, AddResult, Engine, EngineConfig, UploadId, UploadState};

fn config(dir: &Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.upload.stall_timeout = Duration::from_secs(3);
    c.upload.retry.base = Duration::from_millis(50);
    c.upload.retry.max_attempts = 3;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_names_upload_and_keep_their_names() {
    let server = TusServer::start();
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let long = format!("{}.bin", "ü".repeat(120)); // 245 bytes, near the 255-byte limit
    let names = [
        "line\nbreak.txt",
        "emoji 🐘🚀.png",
        "tab\tand,comma.csv",
        long.as_str(),
        ".hidden",
    ];
    let paths: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| write_file(files.path(), n, 1000 + i, i as u64))
        .collect();
    let engine = Engine::open(config(data.path())).await.unwrap();
    let res = engine
        .add(AddRequest {
            paths: paths.clone(),
            endpoint: server.endpoint(),
            ..Default::default()
        })
        .await
        .unwrap();
    for (r, (p, n)) in res.iter().zip(paths.iter().zip(names)) {
        let AddResult::Added { id, .. } = r else {
            panic!("{r:?}")
        };
        let v = support::wait_view(&engine, *id, "the upload", Duration::from_secs(20), |v| {
            v.state.is_terminal()
        })
        .await;
        assert_eq!(v.state, UploadState::Completed, "{n:?}: {v:#?}");
        let url = engine.store().get(*id).unwrap().upload_url.unwrap();
        assert!(server.stored(&url) == std::fs::read(p).unwrap());
        assert_eq!(server.stored_info(&url)["metadata"]["filename"], n);
    }
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_to_files_are_followed_and_linked_folders_are_not_descended() {
    let server = TusServer::start();
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let target = write_file(files.path(), "real/target.bin", 5000, 1);
    let dir = files.path().join("drop");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&target, dir.join("link.bin")).unwrap();
    std::os::unix::fs::symlink(files.path(), dir.join("loop")).unwrap();
    std::os::unix::fs::symlink(files.path().join("gone"), dir.join("dangling")).unwrap();
    let engine = Engine::open(config(data.path())).await.unwrap();
    let res = engine
        .add(AddRequest {
            paths: vec![dir],
            endpoint: server.endpoint(),
            ..Default::default()
        })
        .await
        .unwrap();
    let added: Vec<_> = res
        .iter()
        .filter_map(|r| match r {
            AddResult::Added { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let rejected: Vec<_> = res
        .iter()
        .filter_map(|r| match r {
            AddResult::Rejected { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(added.len(), 1, "only the linked file: {res:#?}");
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].contains("dangling symlink"), "{rejected:?}");
    let v = support::wait_view(
        &engine,
        added[0],
        "the upload",
        Duration::from_secs(20),
        |v| v.state.is_terminal(),
    )
    .await;
    assert_eq!(v.state, UploadState::Completed);
    let url = engine.store().get(added[0]).unwrap().upload_url.unwrap();
    assert!(server.stored(&url) == std::fs::read(&target).unwrap());
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_deleted_while_queued_is_missing_and_the_others_continue() {
    let server = TusServer::start();
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let first = write_file(files.path(), "first.bin", 4 << 20, 1);
    let second = write_file(files.path(), "second.bin", 1000, 2);
    let third = write_file(files.path(), "third.bin", 1000, 3);
    let mut c = config(data.path());
    c.concurrency = 1;
    c.bandwidth = 2 << 20;
    let engine = Engine::open(c).await.unwrap();
    let res = engine
        .add(AddRequest {
            paths: vec![first, second.clone(), third],
            endpoint: server.endpoint(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<UploadId> = res
        .iter()
        .map(|r| match r {
            AddResult::Added { id, .. } => *id,
            o => panic!("{o:?}"),
        })
        .collect();
    std::fs::remove_file(&second).unwrap();
    let v = support::wait_view(&engine, ids[1], "the upload", Duration::from_secs(5), |v| {
        v.state == UploadState::FileMissing
    })
    .await;
    assert!(v.error.unwrap().contains("second.bin"));
    engine.set_bandwidth(0).unwrap();
    for id in [ids[0], ids[2]] {
        let v = support::wait_view(&engine, id, "the upload", Duration::from_secs(20), |v| {
            v.state.is_terminal()
        })
        .await;
        assert_eq!(v.state, UploadState::Completed);
    }
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_offsets_from_the_server_fail_that_upload_clearly() {
    let server = TusServer::start();
    let proxy = FaultProxy::start(server.port);
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.upload.creation_with_upload = false;
    let engine = Engine::open(c).await.unwrap();
    for (i, (offset, expect)) in [
        ("abc", "not a non-negative integer"),
        ("-5", "not a non-negative integer"),
        ("999999999", "answered Upload-Offset 999999999"),
    ]
    .into_iter()
    .enumerate()
    {
        let f = write_file(files.path(), &format!("m{i}.bin"), 1000, i as u64);
        proxy.once(
            "PATCH",
            0,
            Action::Respond {
                status: 204,
                headers: vec![
                    ("Upload-Offset".into(), offset.into()),
                    ("Tus-Resumable".into(), "1.0.0".into()),
                ],
                body: String::new(),
            },
        );
        let id = support::add_one(&engine, &proxy.endpoint(), &f, None).await;
        let v = support::wait_view(&engine, id, "the upload", Duration::from_secs(20), |v| {
            v.state.is_terminal()
        })
        .await;
        assert_eq!(v.state, UploadState::Failed, "{offset}: {v:#?}");
        let e = v.error.unwrap();
        assert!(e.contains(expect), "{offset}: {e}");
        // The journal never took the bogus offset.
        assert_eq!(engine.store().get(id).unwrap().acked_offset, 0);
    }
    // The engine is fine afterwards.
    let ok = write_file(files.path(), "ok.bin", 1000, 9);
    let id = support::add_one(&engine, &proxy.endpoint(), &ok, None).await;
    let v = support::wait_view(&engine, id, "the upload", Duration::from_secs(20), |v| {
        v.state.is_terminal()
    })
    .await;
    assert_eq!(v.state, UploadState::Completed);
    engine.shutdown().await.unwrap();
}

//! Files changing under the queue while Tusker runs: the watcher makes the journal follow a
//! rename and stops an upload whose file was modified or deleted, at once.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{write_file, TusServer};
use tusker_core::{Engine, EngineConfig, UploadId, UploadState};

fn config(dir: &Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.bandwidth = 4 << 20;
    c.upload.stall_timeout = Duration::from_secs(3);
    c.upload.retry.base = Duration::from_millis(50);
    c
}

struct Rig {
    server: TusServer,
    files: tempfile::TempDir,
    _data: tempfile::TempDir,
    engine: Engine,
}

async fn rig() -> Rig {
    let server = TusServer::start();
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(data.path())).await.unwrap();
    Rig {
        server,
        files,
        _data: data,
        engine,
    }
}

/// Starts uploading `p` with no chunk size, so the rest goes in one PATCH and only the
/// watcher (not the stamp check before each request) can notice a change before the end;
/// returns once the first MiB is on the wire.
async fn start_one_patch_upload(r: &Rig, p: &Path) -> UploadId {
    let id = support::add_one(&r.engine, &r.server.endpoint(), p, None).await;
    support::wait_view(
        &r.engine,
        id,
        "bytes on the wire",
        Duration::from_secs(20),
        |v| v.acked + v.in_flight >= 1 << 20,
    )
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_renamed_during_the_upload_is_followed_and_completes() {
    let r = rig().await;
    let p = write_file(r.files.path(), "before.bin", 8 << 20, 1);
    let id = support::add_one(&r.engine, &r.server.endpoint(), &p, Some(1 << 20)).await;
    let v = support::wait_view(&r.engine, id, "progress", Duration::from_secs(20), |v| {
        v.acked >= 1 << 20
    })
    .await;
    let url = r.engine.store().get(id).unwrap().upload_url.unwrap();
    let sub = r.files.path().join("moved");
    std::fs::create_dir(&sub).unwrap();
    // Renamed within the folder, then the folder's file renamed again.
    let renamed: PathBuf = r.files.path().join("after.bin");
    std::fs::rename(&p, &renamed).unwrap();
    let v2 = support::wait_view(
        &r.engine,
        id,
        "the path to follow",
        Duration::from_secs(5),
        |v| v.path == renamed.display().to_string(),
    )
    .await;
    assert_eq!(v2.name, "after.bin");
    // Followed, not started over or stopped: the upload kept what the server acknowledged
    // before the rename and no state of a lost file showed up on the way.
    assert!(
        v2.acked >= v.acked,
        "progress went back from {} to {} at the rename",
        v.acked,
        v2.acked
    );
    assert!(
        !matches!(
            v2.state,
            UploadState::FileMissing | UploadState::FileChanged | UploadState::Failed
        ),
        "{v2:#?}"
    );
    r.engine.set_bandwidth(0).unwrap();
    let done = support::wait_view(&r.engine, id, "completion", Duration::from_secs(30), |v| {
        v.state.is_terminal()
    })
    .await;
    assert_eq!(done.state, UploadState::Completed, "{done:#?}");
    let rec = r.engine.store().get(id).unwrap();
    assert_eq!(
        rec.path,
        renamed.display().to_string(),
        "the journal follows the rename"
    );
    assert_eq!(
        rec.upload_url.as_deref(),
        Some(url.as_str()),
        "same server upload"
    );
    assert!(r.server.stored(&url) == std::fs::read(&renamed).unwrap());
    r.engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_deleted_during_the_upload_stops_it_as_missing() {
    let r = rig().await;
    let p = write_file(r.files.path(), "doomed.bin", 16 << 20, 2);
    let id = start_one_patch_upload(&r, &p).await;
    std::fs::remove_file(&p).unwrap();
    // "At once" is shown by what happened, not by a clock: the rest of the file goes in
    // one PATCH (about 4 s at the 4 MiB/s limit), and an open file that is deleted can still
    // be read to its end, so only the watcher can stop the upload before the server has it
    // all. The wait is long so that a loaded machine cannot fail it; the offset below fails
    // if the deletion was noticed only at the end.
    let v = support::wait_view(
        &r.engine,
        id,
        "file missing",
        Duration::from_secs(30),
        |v| v.state.is_terminal(),
    )
    .await;
    assert_eq!(v.state, UploadState::FileMissing, "{v:#?}");
    assert!(v.error.unwrap().contains("deleted or moved away"));
    let url = r.engine.store().get(id).unwrap().upload_url.unwrap();
    let offset = support::server_offset(&url).expect("the server upload is kept");
    assert!(
        offset < 16 << 20,
        "stopped mid-PATCH by the watcher, yet the server has all {offset} bytes"
    );
    r.engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_during_the_upload_stops_it_as_changed() {
    let r = rig().await;
    let p = write_file(r.files.path(), "live.log", 16 << 20, 3);
    let id = start_one_patch_upload(&r, &p).await;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"one more line\n").unwrap();
    }
    // As above: noticed at once means stopped before the one PATCH ended (the offset
    // checked below), whatever the machine's load makes of the clock.
    let v = support::wait_view(
        &r.engine,
        id,
        "file changed",
        Duration::from_secs(30),
        |v| v.state.is_terminal(),
    )
    .await;
    assert_eq!(v.state, UploadState::FileChanged, "{v:#?}");
    assert_eq!(v.error_code.as_deref(), Some("file_changed"));
    assert!(v.error_detail.unwrap().contains("modified"));
    let url = r.engine.store().get(id).unwrap().upload_url.unwrap();
    assert!(
        support::server_offset(&url).unwrap() < 16 << 20,
        "never completed"
    );
    r.engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_file_moved_to_another_watched_name_keeps_its_upload() {
    let r = rig().await;
    let p = write_file(r.files.path(), "paused.bin", 6 << 20, 4);
    let id = support::add_one(&r.engine, &r.server.endpoint(), &p, Some(1 << 20)).await;
    support::wait_view(&r.engine, id, "progress", Duration::from_secs(20), |v| {
        v.acked >= 1 << 20
    })
    .await;
    r.engine.pause(id).await.unwrap();
    let to = r.files.path().join("paused-renamed.bin");
    std::fs::rename(&p, &to).unwrap();
    support::wait_view(
        &r.engine,
        id,
        "the path to follow",
        Duration::from_secs(5),
        |v| v.path == to.display().to_string(),
    )
    .await;
    r.engine.set_bandwidth(0).unwrap();
    r.engine.resume(id).await.unwrap();
    let done = support::wait_view(&r.engine, id, "completion", Duration::from_secs(30), |v| {
        v.state.is_terminal()
    })
    .await;
    assert_eq!(done.state, UploadState::Completed, "{done:#?}");
    let url = r.engine.store().get(id).unwrap().upload_url.unwrap();
    assert!(r.server.stored(&url) == std::fs::read(&to).unwrap());
    assert_eq!(r.server.upload_count(), 1);
    r.engine.shutdown().await.unwrap();
}

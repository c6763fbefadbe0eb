//! Integrity: "same content" is decided by hashes of what was sent, never by a sample or a
//! timestamp. Each case runs against both real servers, `@tus/server` (with its file store)
//! and rustus 0.5.10, and compares the bytes each server stored with the file as it is now.
//!
//! The edits are adversarial: same size, inside the 64 KiB-sampled fingerprint's blind
//! middle, with the modification time set back to what it was.

mod support;

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use support::fixture::Fixture;
use support::servers::{AnyServer, Kind};
use support::write_file;
use tusker_core::{AddRequest, AddResult, Engine, EngineConfig, UploadId, UploadState, UploadView};

fn config(dir: &Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.upload.stall_timeout = Duration::from_secs(5);
    c.upload.retry.base = Duration::from_millis(50);
    c.upload.retry.max_delay = Duration::from_millis(400);
    c.upload.retry.max_attempts = 8;
    c
}

async fn add(engine: &Engine, endpoint: &str, path: &Path, chunk: Option<u64>) -> AddResult {
    let mut res = engine
        .add(AddRequest {
            paths: vec![path.to_path_buf()],
            endpoint: endpoint.to_string(),
            chunk_size: chunk,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(res.len(), 1, "{res:?}");
    res.remove(0)
}

fn id_of(r: &AddResult) -> UploadId {
    match r {
        AddResult::Added { id, .. }
        | AddResult::Resumed { id, .. }
        | AddResult::Restarted { id, .. }
        | AddResult::AlreadyUploaded { id, .. } => *id,
        AddResult::Rejected { path, error } => panic!("{path} rejected: {error}"),
    }
}

async fn wait_until(
    engine: &Engine,
    id: UploadId,
    what: &str,
    cond: impl Fn(&UploadView) -> bool,
) -> UploadView {
    support::wait_view(engine, id, what, Duration::from_secs(60), cond).await
}

async fn wait_terminal(engine: &Engine, id: UploadId) -> UploadView {
    wait_until(engine, id, "the upload to end", |v| v.state.is_terminal()).await
}

/// The server holds exactly the file's current bytes under the upload's URL.
fn assert_exact(server: &AnyServer, engine: &Engine, v: &UploadView, path: &Path) {
    assert_eq!(v.state, UploadState::Completed, "{v:#?}");
    // A completed row no longer carries its URL: the journal keeps it.
    assert_eq!(v.upload_url, None);
    let url = &support::url_of(engine, v.id);
    let stored = server.stored(url);
    let local = std::fs::read(path).unwrap();
    assert_eq!(
        stored.len(),
        local.len(),
        "{}: stored length",
        server.name()
    );
    if let Some(i) = stored.iter().zip(&local).position(|(a, b)| a != b) {
        panic!(
            "{}: the server holds other bytes than the file at offset {i} (a mix)",
            server.name()
        );
    }
}

/// Overwrites `bytes` at `at` without changing the size, then sets the modification time
/// back to what it was: only the ctime (and the content) tell.
fn edit_keeping_mtime(path: &Path, at: u64, bytes: &[u8]) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
    f.set_modified(mtime).unwrap();
}

fn touch(path: &Path) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
}

/// Starts an upload limited to `rate` bytes/s and stops the engine (as a quit) once the
/// server confirmed at least `at_least` bytes. Returns the upload id and its server URL.
async fn partial_upload(
    data: &Path,
    endpoint: &str,
    path: &Path,
    at_least: u64,
) -> (UploadId, String) {
    let engine = open(data, false, 4 << 20).await;
    let id = id_of(&add(&engine, endpoint, path, Some(1 << 20)).await);
    let v = wait_until(&engine, id, "partial progress", |v| v.acked >= at_least).await;
    assert!(v.acked < v.size, "finished too soon: {v:#?}");
    let url = v.upload_url.clone().unwrap();
    engine.shutdown().await.unwrap();
    drop(engine);
    (id, url)
}

async fn reopen(data: &Path, auto_resume: bool) -> Engine {
    open(data, auto_resume, 0).await
}

async fn open(data: &Path, auto_resume: bool, bandwidth: u64) -> Engine {
    let mut cfg = config(data);
    cfg.auto_resume = auto_resume;
    cfg.bandwidth = bandwidth;
    // The previous engine's lock goes with its last handle; give its task a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Engine::open(cfg.clone()).await {
            Ok(e) => return e,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

macro_rules! both_servers {
    ($($name:ident),* $(,)?) => {
        mod tus_node {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Node).await
                }
            )*
        }
        mod rustus {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Rustus).await
                }
            )*
        }
    };
}

both_servers!(
    a_middle_edit_after_completion_is_uploaded_again_and_a_touch_is_not,
    an_edit_inside_the_sent_bytes_while_closed_restarts_on_readd,
    an_edit_inside_the_sent_bytes_while_closed_is_file_changed_on_relaunch,
    a_touch_while_closed_resumes_without_resending,
    an_edit_past_the_sent_bytes_resumes_and_sends_the_new_bytes,
    a_rename_plus_edit_restarts_and_a_rename_alone_resumes,
    a_touch_during_the_upload_goes_on_without_resending,
);

/// The "skipped" case: same size, same first and last 64 KiB, other middle, the
/// mtime set back. Re-adding it must upload it again; touching it must not.
async fn a_middle_edit_after_completion_is_uploaded_again_and_a_touch_is_not(kind: Kind) {
    let Fixture(server, _, files, data, ..) = Fixture::any(kind);
    let p = write_file(files.path(), "report.bin", 3 << 20, 1);
    let engine = Engine::open(config(data.path())).await.unwrap();
    let first = id_of(&add(&engine, &server.endpoint(), &p, None).await);
    let v = wait_terminal(&engine, first).await;
    assert_exact(&server, &engine, &v, &p);
    let first_url = support::url_of(&engine, v.id);

    // Touched only: the same content, proven by its hash, is not sent twice.
    touch(&p);
    let r = add(&engine, &server.endpoint(), &p, None).await;
    assert_eq!(
        r,
        AddResult::AlreadyUploaded {
            id: first,
            path: p.display().to_string()
        }
    );

    edit_keeping_mtime(&p, (3 << 20) / 2, b"twenty bytes changed");
    let r = add(&engine, &server.endpoint(), &p, None).await;
    let AddResult::Added { id: second, .. } = r else {
        panic!("a changed file must be uploaded again, got {r:?}");
    };
    assert_ne!(second, first);
    let v = wait_terminal(&engine, second).await;
    assert_exact(&server, &engine, &v, &p);
    assert_ne!(Some(&support::url_of(&engine, v.id)), Some(&first_url));
    // The journal records the hash of what was sent; it differs from the first version's.
    let a = engine.store().get(first).unwrap().content_hash.unwrap();
    let b = engine.store().get(second).unwrap().content_hash.unwrap();
    assert_ne!(a, b);
    assert_eq!(tusker_core::identity::proof::hash_file(&p).unwrap().0, b);
    engine.shutdown().await.unwrap();
}

/// The "mixed" case: an edit inside the bytes the server already holds, made while
/// the app was closed, then the file is added again. A new upload of the current content,
/// the old server upload terminated.
async fn an_edit_inside_the_sent_bytes_while_closed_restarts_on_readd(kind: Kind) {
    let Fixture(server, _, files, data, ..) = Fixture::any(kind);
    let p = write_file(files.path(), "video.bin", 8 << 20, 2);
    let (id, old_url) = partial_upload(data.path(), &server.endpoint(), &p, 3 << 20).await;
    edit_keeping_mtime(&p, (1 << 20) + 10, b"edited while closed");

    let engine = reopen(data.path(), false).await;
    let r = add(&engine, &server.endpoint(), &p, None).await;
    assert_eq!(
        r,
        AddResult::Restarted {
            id,
            path: p.display().to_string()
        }
    );
    let v = wait_terminal(&engine, id).await;
    assert_exact(&server, &engine, &v, &p);
    assert_ne!(
        Some(&support::url_of(&engine, v.id)),
        Some(&old_url),
        "a new server upload"
    );
    support::wait_until("the old upload terminated", Duration::from_secs(10), || {
        support::server_offset(&old_url).is_none()
    });
    engine.shutdown().await.unwrap();
}

/// The same edit, then a relaunch that resumes by itself (no re-add): `file changed`, with
/// nothing appended to the server upload; Restart then uploads the current content.
async fn an_edit_inside_the_sent_bytes_while_closed_is_file_changed_on_relaunch(kind: Kind) {
    let Fixture(server, _, files, data, ..) = Fixture::any(kind);
    let p = write_file(files.path(), "video.bin", 8 << 20, 3);
    let (id, old_url) = partial_upload(data.path(), &server.endpoint(), &p, 3 << 20).await;
    let held = support::server_offset(&old_url).unwrap();
    edit_keeping_mtime(&p, 2 << 20, b"x");

    let engine = reopen(data.path(), true).await;
    let v = wait_terminal(&engine, id).await;
    assert_eq!(v.state, UploadState::FileChanged, "{v:#?}");
    assert_eq!(v.error_code.as_deref(), Some("file_changed"));
    let err = v.error_detail.clone().unwrap();
    assert!(err.contains("differ from those the server holds"), "{err}");
    assert_eq!(
        support::server_offset(&old_url),
        Some(held),
        "nothing appended"
    );

    engine.restart(id).await.unwrap();
    let v = wait_terminal(&engine, id).await;
    assert_exact(&server, &engine, &v, &p);
    engine.shutdown().await.unwrap();
}

/// Touched while closed (mtime and ctime move, content the same): the relaunch proves the
/// server's bytes and resumes on the same server upload, sending each byte once.
async fn a_touch_while_closed_resumes_without_resending(kind: Kind) {
    let Fixture(server, proxy, files, data, ..) = Fixture::any(kind).proxied();
    let p = write_file(files.path(), "photo.bin", 6 << 20, 4);
    let (id, url) = partial_upload(data.path(), &proxy.endpoint(), &p, 2 << 20).await;
    let held = support::server_offset(&url).unwrap();
    let sent_before = proxy.forwarded();
    touch(&p);

    let engine = reopen(data.path(), true).await;
    let v = wait_terminal(&engine, id).await;
    assert_eq!(
        Some(&support::url_of(&engine, v.id)),
        Some(&url),
        "the same server upload"
    );
    assert_exact(&server, &engine, &v, &p);
    let resent = proxy.forwarded() - sent_before;
    assert_eq!(
        resent,
        (6 << 20) - held,
        "only the bytes the server lacked were sent after the touch"
    );
    let rec = engine.store().get(id).unwrap();
    let now = tusker_core::identity::fingerprint::stamp(&p).unwrap();
    assert_eq!(rec.stamp(), now, "the proven stamp is the journal's now");
    engine.shutdown().await.unwrap();
}

/// Touched while it uploads (the watcher sees a write, the stamp moves): the worker proves
/// the sent bytes before its next request and goes on; each byte reaches the server once.
async fn a_touch_during_the_upload_goes_on_without_resending(kind: Kind) {
    let Fixture(server, proxy, files, data, ..) = Fixture::any(kind).proxied();
    let p = write_file(files.path(), "live.bin", 6 << 20, 12);
    let engine = open(data.path(), true, 3 << 20).await;
    let id = id_of(&add(&engine, &proxy.endpoint(), &p, Some(1 << 20)).await);
    wait_until(&engine, id, "progress", |v| v.acked >= 1 << 20).await;
    touch(&p);
    let v = wait_until(&engine, id, "progress after the touch", |v| {
        v.acked >= 3 << 20 || v.state.is_terminal()
    })
    .await;
    assert!(
        !v.state.is_terminal() || v.state == UploadState::Completed,
        "{v:#?}"
    );
    engine.set_bandwidth(0).unwrap();
    let v = wait_terminal(&engine, id).await;
    assert_exact(&server, &engine, &v, &p);
    // Bytes of accepted PATCHes (rustus refuses the first, too large, one with 413).
    let accepted: u64 = proxy
        .log()
        .iter()
        .filter(|l| l.method == "PATCH" && (200..300).contains(&l.status))
        .map(|l| l.forwarded)
        .sum();
    assert_eq!(accepted, 6 << 20, "every byte sent once");
    assert_eq!(proxy.count("POST"), 1, "one server upload");
    let rec = engine.store().get(id).unwrap();
    assert_eq!(
        rec.stamp(),
        tusker_core::identity::fingerprint::stamp(&p).unwrap()
    );
    engine.shutdown().await.unwrap();
}

/// An edit past what the server holds (same size): the prefix is proven, the upload
/// resumes on the same server upload and the server ends with the file as it is now.
async fn an_edit_past_the_sent_bytes_resumes_and_sends_the_new_bytes(kind: Kind) {
    let Fixture(server, _, files, data, ..) = Fixture::any(kind);
    let p = write_file(files.path(), "log.bin", 8 << 20, 5);
    let (id, url) = partial_upload(data.path(), &server.endpoint(), &p, 2 << 20).await;
    let held = support::server_offset(&url).unwrap();
    assert!(held < 7 << 20);
    edit_keeping_mtime(&p, 7 << 20, b"appended later, same size");

    let engine = reopen(data.path(), false).await;
    let r = add(&engine, &server.endpoint(), &p, None).await;
    assert_eq!(
        r,
        AddResult::Resumed {
            id,
            path: p.display().to_string()
        }
    );
    let v = wait_terminal(&engine, id).await;
    assert_eq!(Some(&support::url_of(&engine, v.id)), Some(&url));
    assert_exact(&server, &engine, &v, &p);
    engine.shutdown().await.unwrap();
}

/// Renamed and edited inside the sent bytes while closed, then the new name is added: the
/// old name is gone, so this is the same file, changed: restarted under its new name. A
/// rename alone resumes the same server upload.
async fn a_rename_plus_edit_restarts_and_a_rename_alone_resumes(kind: Kind) {
    let Fixture(server, _, files, data, ..) = Fixture::any(kind);
    let a = write_file(files.path(), "a.bin", 6 << 20, 6);
    let b = write_file(files.path(), "b.bin", 6 << 20, 7);
    let (id_a, url_a) = partial_upload(data.path(), &server.endpoint(), &a, 2 << 20).await;
    let (id_b, url_b) = partial_upload(data.path(), &server.endpoint(), &b, 2 << 20).await;

    let a2 = files.path().join("a renamed.bin");
    std::fs::rename(&a, &a2).unwrap();
    edit_keeping_mtime(&a2, 100_000, b"renamed and edited");
    let b2: PathBuf = files.path().join("sub/b moved.bin");
    std::fs::create_dir_all(b2.parent().unwrap()).unwrap();
    std::fs::rename(&b, &b2).unwrap();

    let engine = reopen(data.path(), false).await;
    let ra = add(&engine, &server.endpoint(), &a2, None).await;
    assert_eq!(
        ra,
        AddResult::Restarted {
            id: id_a,
            path: a2.display().to_string()
        }
    );
    let rb = add(&engine, &server.endpoint(), &b2, None).await;
    assert_eq!(
        rb,
        AddResult::Resumed {
            id: id_b,
            path: b2.display().to_string()
        }
    );
    let va = wait_terminal(&engine, id_a).await;
    let vb = wait_terminal(&engine, id_b).await;
    assert_exact(&server, &engine, &va, &a2);
    assert_exact(&server, &engine, &vb, &b2);
    assert_ne!(Some(&support::url_of(&engine, va.id)), Some(&url_a));
    assert_eq!(Some(&support::url_of(&engine, vb.id)), Some(&url_b));
    let mut by_id: HashMap<UploadId, String> = HashMap::new();
    for v in engine.snapshot().await.unwrap() {
        by_id.insert(v.id, v.path);
    }
    assert_eq!(by_id[&id_a], a2.display().to_string());
    engine.shutdown().await.unwrap();
}

/// A copy of a file with an unfinished upload, still beside the original, is another file
/// with its own upload (same sample, same size: only its path tells), and the same path
/// twice in one add is one upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_is_its_own_upload_and_one_path_twice_is_one() {
    let server = AnyServer::start(Kind::Node);
    let files = tempfile::tempdir().unwrap();
    let a = write_file(files.path(), "a.bin", 4 << 20, 13);
    let data = tempfile::tempdir().unwrap();
    let (id_a, _) = partial_upload(data.path(), &server.endpoint(), &a, 1 << 20).await;
    let copy = files.path().join("copy of a.bin");
    std::fs::copy(&a, &copy).unwrap();
    let engine = reopen(data.path(), false).await;
    let r = add(&engine, &server.endpoint(), &copy, None).await;
    let AddResult::Added { id: id_copy, .. } = r else {
        panic!("a copy must get its own upload, got {r:?}");
    };
    assert_ne!(id_copy, id_a);
    assert_eq!(
        engine.store().get(id_a).unwrap().path,
        a.display().to_string(),
        "the original keeps its upload"
    );
    let twice = write_file(files.path(), "twice.bin", 1000, 14);
    let res = engine
        .add(AddRequest {
            paths: vec![twice.clone(), twice.clone()],
            endpoint: server.endpoint(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<UploadId> = res.iter().map(id_of).collect();
    assert_eq!(ids[0], ids[1], "{res:?}");
    assert!(matches!(res[1], AddResult::Resumed { .. }), "{res:?}");
    engine.resume(id_a).await.unwrap();
    for id in [id_a, id_copy, ids[0]] {
        let v = wait_terminal(&engine, id).await;
        let path = engine.store().get(id).unwrap().path;
        assert_exact(&server, &engine, &v, Path::new(&path));
    }
    engine.shutdown().await.unwrap();
}

/// The server loses bytes it had confirmed (its stored file cut short while the upload was
/// paused): progress goes back, visibly, the lost bytes are counted and sent again, and the
/// upload ends byte-exact on the same server upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_the_server_lost_are_shown_counted_and_sent_again() {
    let support::servers::AnyServer::Node(server) = AnyServer::start(Kind::Node) else {
        unreachable!()
    };
    let files = tempfile::tempdir().unwrap();
    let p = write_file(files.path(), "lost.bin", 6 << 20, 11);
    let data = tempfile::tempdir().unwrap();
    let (id, url) = partial_upload(data.path(), &server.endpoint(), &p, 3 << 20).await;
    let held = support::server_offset(&url).unwrap();
    // @tus/file-store's offset is the size of its data file.
    let keep = (1 << 20) + 12345;
    std::fs::OpenOptions::new()
        .write(true)
        .open(server.stored_path(&url))
        .unwrap()
        .set_len(keep)
        .unwrap();
    let engine = reopen(data.path(), true).await;
    let v = wait_terminal(&engine, id).await;
    assert_eq!(v.state, UploadState::Completed, "{v:#?}");
    assert_eq!(
        Some(&support::url_of(&engine, v.id)),
        Some(&url),
        "the same server upload"
    );
    assert!(server.stored(&url) == std::fs::read(&p).unwrap());
    assert_eq!(v.resent, held - keep, "{v:#?}");
    let note = v.note.clone().expect("a note says why progress went back");
    assert!(note.contains("lost data it had confirmed"), "{note}");
    assert_eq!(engine.store().get(id).unwrap().resent, held - keep);
    engine.shutdown().await.unwrap();
}

/// A crash right after the server acknowledged a PATCH leaves the server holding bytes the
/// journal never recorded. An edit inside exactly those bytes while the CLI is closed can be
/// proven by nothing: the next run starts a new server upload instead of appending to a mix.
/// Then the issue's own "skipped" and "mixed" steps through the CLI.
#[test]
fn cli_never_trusts_bytes_past_the_journal_after_an_edit() {
    for kind in [Kind::Node, Kind::Rustus] {
        let Fixture(server, _, files, data, ..) = Fixture::any(kind);
        let p = write_file(files.path(), "big.bin", 6 << 20, 9);
        let out = support::output_within(
            support::cli(data.path())
                .env("TUSKER_CRASH_AT", "patch-acked:3")
                .args(["upload", "--plain", "--chunk-size", "1MiB", "--endpoint"])
                .arg(server.endpoint())
                .arg(&p),
            Duration::from_secs(60),
        );
        assert!(!out.status.success(), "the crash point must abort the CLI");
        let rows = support::list_json(data.path());
        let journalled = rows[0]["offset"].as_u64().unwrap();
        let held = support::server_offset(rows[0]["upload_url"].as_str().unwrap()).unwrap();
        assert!(journalled > 0 && held > journalled, "{held} {rows:?}");
        // The edit lands in what the server acknowledged but the journal never recorded.
        edit_keeping_mtime(&p, journalled + (held - journalled) / 2, b"unproven");
        let out = support::output_within(
            support::cli(data.path())
                .args(["upload", "--plain", "--endpoint"])
                .arg(server.endpoint())
                .arg(&p),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{}: {}",
            server.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = support::list_json(data.path());
        assert_eq!(rows.len(), 1, "{rows:?}");
        let store = tusker_core::journal::Store::open(&data.path().join("journal.sqlite")).unwrap();
        let rec = store.get(rows[0]["id"].as_i64().unwrap()).unwrap();
        assert_eq!(rec.state, UploadState::Completed);
        let stored = server.stored(rec.upload_url.as_ref().unwrap());
        assert!(
            stored == std::fs::read(&p).unwrap(),
            "{}: the server must hold the current file, not a mix",
            server.name()
        );
        assert_eq!(rec.recreated, 1, "a new server upload was created");
        drop(store);

        // Same size, twenty bytes in the middle, after completion: uploaded again, never
        // "already uploaded".
        edit_keeping_mtime(&p, 3 << 20, b"twenty bytes changed");
        let out = support::output_within(
            support::cli(data.path())
                .args(["upload", "--plain", "--endpoint"])
                .arg(server.endpoint())
                .arg(&p),
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("already uploaded"), "{stderr}");
        let store = tusker_core::journal::Store::open(&data.path().join("journal.sqlite")).unwrap();
        let newest = store
            .list()
            .unwrap()
            .into_iter()
            .max_by_key(|r| r.id)
            .unwrap();
        assert!(server.stored(newest.upload_url.as_ref().unwrap()) == std::fs::read(&p).unwrap());
    }
}

//! Awkward input gets a clear error on that item and nothing else suffers: odd names,
//! symlinks, files that vanish while queued, servers that answer with malformed headers, a
//! sparse file over 4 GiB, TLS and DNS failures, unreadable files and folders, and a journal
//! that is damaged or whose disk is full.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::fixture::Fixture;
use support::proxy::{Action, Rule};
use support::write_file;
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
    let Fixture(server, _, files, data, ..) = Fixture::new();
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
async fn symlinks_leading_out_of_a_dropped_folder_are_skipped_with_a_notice() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let outside = write_file(files.path(), "real/target.bin", 5000, 1);
    let dir = files.path().join("drop");
    let inner = write_file(&dir, "inner.bin", 3000, 2);
    std::os::unix::fs::symlink(&inner, dir.join("inside-link.bin")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("outside-link.bin")).unwrap();
    std::os::unix::fs::symlink(files.path(), dir.join("loop")).unwrap();
    std::os::unix::fs::symlink(files.path().join("gone"), dir.join("dangling")).unwrap();
    let engine = Engine::open(config(data.path())).await.unwrap();
    let add = |paths: Vec<std::path::PathBuf>| {
        engine.add(AddRequest {
            paths,
            endpoint: server.endpoint(),
            again: true,
            ..Default::default()
        })
    };
    let res = add(vec![dir.clone()]).await.unwrap();
    let added: Vec<_> = res
        .iter()
        .filter_map(|r| match r {
            AddResult::Added { id, path } => Some((*id, path.clone())),
            _ => None,
        })
        .collect();
    let mut rejected: Vec<_> = res
        .iter()
        .filter_map(|r| match r {
            AddResult::Rejected { path, error } => Some((path.clone(), error.clone())),
            _ => None,
        })
        .collect();
    rejected.sort();
    // A link to a file inside the folder is followed to its target and recorded there (no
    // link stays in an upload's path): the same file as inner.bin, so one upload, which the
    // link's entry finds already queued.
    let names: Vec<String> = added
        .iter()
        .map(|(id, _)| engine.store().get(*id).unwrap().name)
        .collect();
    assert_eq!(names, ["inner.bin"], "{res:#?}");
    let target = std::fs::canonicalize(&inner).unwrap().display().to_string();
    assert!(
        res.iter().any(
            |r| matches!(r, AddResult::Resumed { id, path } if *id == added[0].0 && *path == target)
        ),
        "{res:#?}"
    );
    assert_eq!(rejected.len(), 3, "{rejected:#?}");
    assert!(rejected[0].1.contains("dangling symlink"), "{rejected:?}");
    assert!(
        rejected[1].1.contains("a symlink to a folder"),
        "{rejected:?}"
    );
    assert!(
        rejected[2].1.contains("leads outside the dropped folder")
            && rejected[2].1.contains("target.bin"),
        "{rejected:?}"
    );
    // A symlink dropped by itself is followed.
    let res = add(vec![dir.join("outside-link.bin")]).await.unwrap();
    assert!(matches!(res[0], AddResult::Added { .. }), "{res:?}");
    for (id, _) in &added {
        let v = support::wait_view(&engine, *id, "the upload", Duration::from_secs(20), |v| {
            v.state.is_terminal()
        })
        .await;
        assert_eq!(v.state, UploadState::Completed);
    }
    let url = engine.store().get(added[0].0).unwrap().upload_url.unwrap();
    assert!(server.stored(&url) == std::fs::read(&inner).unwrap());
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_deleted_while_queued_is_missing_and_the_others_continue() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
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
    assert_eq!(
        v.error.as_deref(),
        Some("The file is gone (deleted or moved away): put it back, then Retry")
    );
    assert!(v.error_detail.unwrap().contains("second.bin"));
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
async fn malformed_offsets_from_the_server_are_checked_with_head_then_fail_clearly() {
    let Fixture(server, proxy, files, data, ..) = Fixture::new().proxied();
    let mut c = config(data.path());
    c.upload.creation_with_upload = false;
    let engine = Engine::open(c).await.unwrap();
    let bogus = |offset: &str| Action::Respond {
        status: 204,
        headers: vec![
            ("Upload-Offset".into(), offset.into()),
            ("Tus-Resumable".into(), "1.0.0".into()),
        ],
        body: String::new(),
    };
    for (i, (offset, expect)) in [
        ("abc", "not a non-negative integer"),
        ("-5", "not a non-negative integer"),
        ("999999999", "answered Upload-Offset 999999999"),
        ("0", "answered Upload-Offset 0"),
    ]
    .into_iter()
    .enumerate()
    {
        // Once: the answer is not believed, HEAD says what the server holds (nothing: the
        // proxy answered in its place), and the upload goes on from there.
        let f = write_file(files.path(), &format!("once{i}.bin"), 1000, i as u64);
        let before = proxy.log().len();
        proxy.once("PATCH", 0, bogus(offset));
        let id = support::add_one(&engine, &proxy.endpoint(), &f, None).await;
        let v = support::wait_view(&engine, id, "the upload", Duration::from_secs(20), |v| {
            v.state.is_terminal()
        })
        .await;
        assert_eq!(v.state, UploadState::Completed, "{offset}: {v:#?}");
        assert!(server.stored(&support::url_of(&engine, v.id)) == std::fs::read(&f).unwrap());
        let methods: Vec<String> = proxy.log()[before..]
            .iter()
            .map(|l| l.method.clone())
            .collect();
        let bad = methods.iter().position(|m| m == "PATCH").unwrap();
        assert_eq!(methods[bad + 1], "HEAD", "{offset}: {methods:?}");

        // Every time: it fails after a bounded number of answers, naming the answer, and
        // the journal never took the bogus offset.
        let f = write_file(files.path(), &format!("always{i}.bin"), 1000, i as u64 + 50);
        proxy.push(Rule {
            method: "PATCH",
            skip: 0,
            times: 4,
            action: bogus(offset),
        });
        let id = support::add_one(&engine, &proxy.endpoint(), &f, None).await;
        let v = support::wait_view(&engine, id, "the upload", Duration::from_secs(20), |v| {
            v.state.is_terminal()
        })
        .await;
        assert_eq!(v.state, UploadState::Failed, "{offset}: {v:#?}");
        assert_eq!(
            v.error_code.as_deref(),
            Some("bad_answer"),
            "{offset}: {v:#?}"
        );
        let e = v.error_detail.unwrap();
        assert!(
            e.contains(expect) && e.contains("4 answers in a row"),
            "{offset}: {e}"
        );
        assert_eq!(engine.store().get(id).unwrap().acked_offset, 0);
        proxy.clear_rules();
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

async fn add_all(engine: &Engine, endpoint: &str, paths: Vec<PathBuf>) -> Vec<AddResult> {
    engine
        .add(AddRequest {
            paths,
            endpoint: endpoint.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
}

fn added(r: &AddResult) -> UploadId {
    match r {
        AddResult::Added { id, .. } => *id,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_file_over_4_gib_crosses_the_32_bit_boundary_intact() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let size: u64 = (4 << 30) + (1 << 20) + 7;
    let path = files.path().join("sparse.img");
    {
        let mut f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        // Marks at the start, across the 4 GiB line, and at the very end; zeros between.
        for at in [0u64, (1 << 32) - 2048, size - 4096] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&support::pattern(4096, at)).unwrap();
        }
    }
    let engine = Engine::open(config(data.path())).await.unwrap();
    let id = added(&add_all(&engine, &server.endpoint(), vec![path.clone()]).await[0]);
    let t = Instant::now();
    let v = support::wait_view(&engine, id, "completed", Duration::from_secs(600), |v| {
        v.state.is_terminal()
    })
    .await;
    assert_eq!(v.state, UploadState::Completed, "{v:#?}");
    assert_eq!(v.acked, size);
    let stored = server.stored_path(&support::url_of(&engine, v.id));
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), size);
    let (mut a, mut b) = (
        std::fs::File::open(&path).unwrap(),
        std::fs::File::open(&stored).unwrap(),
    );
    let (mut x, mut y) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    let mut at = 0u64;
    while at < size {
        let n = ((size - at) as usize).min(x.len());
        a.read_exact(&mut x[..n]).unwrap();
        b.read_exact(&mut y[..n]).unwrap();
        assert!(x[..n] == y[..n], "bytes differ in the 8 MiB block at {at}");
        at += n as u64;
    }
    println!("{size} bytes (sparse) uploaded in {:?}", t.elapsed());
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_final_and_say_tls_and_the_rest_continue() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    // A server with a self-signed certificate (openssl s_server), and https spoken to a
    // plain-http port.
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        ])
        .arg("/CN=127.0.0.1")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command is needed for this test (apt-get install openssl)");
    assert!(st.success());
    // It takes a port of its own (0), found among its sockets: a port picked here and handed
    // over could be taken by another process in between.
    let mut tls = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", "127.0.0.1:0"])
        .arg("-key")
        .arg(&key)
        .arg("-cert")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let port = support::listening_port(&mut tls, "openssl s_server", Duration::from_secs(10));
    let a = write_file(files.path(), "a.bin", 1000, 1);
    let b = write_file(files.path(), "b.bin", 1000, 2);
    let c = write_file(files.path(), "c.bin", 1000, 3);
    let engine = Engine::open(config(data.path())).await.unwrap();
    let mut events = engine.subscribe();
    let self_signed =
        added(&add_all(&engine, &format!("https://127.0.0.1:{port}/files"), vec![a]).await[0]);
    let plain = added(
        &add_all(
            &engine,
            &format!("https://127.0.0.1:{}/files", server.port),
            vec![b],
        )
        .await[0],
    );
    let good = added(&add_all(&engine, &server.endpoint(), vec![c.clone()]).await[0]);
    for (id, what) in [(self_signed, "certificate"), (plain, "")] {
        let v = support::wait_view(&engine, id, "failed", Duration::from_secs(20), |v| {
            v.state.is_terminal()
        })
        .await;
        assert_eq!(v.state, UploadState::Failed, "{v:#?}");
        assert_eq!(v.error_code.as_deref(), Some("tls"), "{v:#?}");
        let e = v.error_detail.unwrap();
        assert!(e.contains("TLS error") && e.contains(what), "{e}");
        // Not retried (rather than a clock, which a loaded machine stretches): an error
        // that was retried ends "gave up after N attempts", and waits in between.
        assert!(!e.contains("gave up after"), "a TLS error was retried: {e}");
        println!("{e}");
    }
    let mut waited = Vec::new();
    loop {
        match events.try_recv() {
            Ok(b) => waited.extend(
                b.changed
                    .iter()
                    .filter(|v| {
                        (v.id == self_signed || v.id == plain)
                            && v.state == UploadState::WaitingToRetry
                    })
                    .map(|v| v.id),
            ),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(_) => break,
        }
    }
    assert!(
        waited.is_empty(),
        "TLS errors are not retried: {waited:?} waited to retry"
    );
    let v = support::wait_view(&engine, good, "done", Duration::from_secs(20), |v| {
        v.state.is_terminal()
    })
    .await;
    assert_eq!(v.state, UploadState::Completed);
    assert!(server.stored(&support::url_of(&engine, v.id)) == std::fs::read(&c).unwrap());
    engine.shutdown().await.unwrap();
    let _ = tls.kill();
    let _ = tls.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_waits_with_the_reason_then_fails() {
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let a = write_file(files.path(), "a.bin", 1000, 1);
    let engine = Engine::open(config(data.path())).await.unwrap();
    let mut rx = engine.subscribe();
    let id = added(&add_all(&engine, "http://tusker-test-host.invalid/files", vec![a]).await[0]);
    let mut waiting = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let b = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let Some(v) = b.changed.iter().find(|v| v.id == id) {
            if v.state == UploadState::WaitingToRetry {
                waiting = Some((v.error.clone(), v.error_detail.clone()));
            }
            if v.state.is_terminal() {
                break v.clone();
            }
        }
    };
    assert_eq!(v.state, UploadState::Failed);
    let (text, detail) = waiting.expect("the waiting state was shown");
    let (text, detail) = (text.unwrap(), detail.unwrap());
    assert!(
        text.starts_with("Can't find tusker-test-host.invalid:80"),
        "{text}"
    );
    assert!(detail.contains("dns error"), "{detail}");
    assert!(v.error.unwrap().contains("gave up after"));
    engine.shutdown().await.unwrap();
}

/// Runs the CLI as user `nobody` (the tests run as root, who may read anything).
fn cli_as_nobody(data: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(support::cli_bin())
        .env("TUSKER_DATA_DIR", data)
        .env_remove("RUST_LOG");
    c
}

#[test]
fn unreadable_files_and_folders_are_rejected_by_name_and_the_rest_upload() {
    use std::os::unix::fs::PermissionsExt;
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let chmod =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    chmod(files.path(), 0o755);
    chmod(data.path(), 0o777);
    let ok = write_file(files.path(), "tree/ok.bin", 5000, 1);
    let secret = write_file(files.path(), "tree/secret.bin", 5000, 2);
    let locked_dir = files.path().join("tree/private");
    write_file(&locked_dir, "inside.bin", 5000, 3);
    chmod(&files.path().join("tree"), 0o755);
    chmod(&ok, 0o644);
    chmod(&secret, 0o600);
    chmod(&locked_dir, 0o700);
    let out = cli_as_nobody(data.path())
        .args(["upload", "--plain", "--endpoint", &server.endpoint()])
        .arg(files.path().join("tree"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "one item failed: {err}");
    assert!(
        err.lines()
            .any(|l| l.contains("secret.bin") && l.contains("ermission denied")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("private") && l.contains("ermission denied")),
        "{err}"
    );
    let rows = support::list_json(data.path());
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["state"], "completed");
    assert!(server.stored(rows[0]["upload_url"].as_str().unwrap()) == std::fs::read(&ok).unwrap());
}

#[test]
fn a_damaged_journal_is_named_and_left_untouched() {
    let data = tempfile::tempdir().unwrap();
    let journal = data.path().join("journal.sqlite");
    let junk = support::pattern(64 << 10, 9);
    std::fs::write(&journal, &junk).unwrap();
    for args in [
        vec!["list"],
        vec!["resume"],
        vec![
            "upload",
            "--endpoint",
            "http://127.0.0.1:9/files",
            "/etc/hostname",
        ],
    ] {
        let out = support::cli(data.path()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("the journal is damaged"), "{args:?}: {err}");
        assert!(
            err.contains(journal.to_str().unwrap()),
            "{args:?}: names the file: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(std::fs::read(&journal).unwrap() == junk, "left untouched");
}

/// A small tmpfs mounted over a directory for as long as it lives (the tests run as root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(
            st.success(),
            "this test mounts a small tmpfs and needs root (it runs as root in CI)"
        );
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_under_the_journal_stops_cleanly_and_nothing_is_lost() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let disk = Tmpfs::mount(data.path(), "320k");
    let first: Vec<PathBuf> = (0..5)
        .map(|i| write_file(files.path(), &format!("first/{i}.bin"), 10_000, i))
        .collect();
    let upload = |paths: &[PathBuf]| {
        support::cli(data.path())
            .args(["upload", "--plain", "--endpoint", &server.endpoint()])
            .args(paths)
            .output()
            .unwrap()
    };
    let out = upload(&first);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let more: Vec<PathBuf> = (0..300)
        .map(|i| write_file(files.path(), &format!("more/{i}.bin"), 1_000, 100 + i))
        .collect();
    let out = upload(&more);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "the disk never filled: {err}");
    assert!(!err.contains("panicked"), "{err}");
    // The catalogue's sentence (the engine's own log line is for -v).
    assert!(
        err.contains("The disk holding Tusker's journal is full: free some space"),
        "{err}"
    );
    println!(
        "{}",
        err.lines().find(|l| l.contains("disk holding")).unwrap()
    );
    // Space is back: everything from before is still there, and the rest completes.
    disk.resize("64m");
    let out = upload(&more);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = support::list_json(data.path());
    assert_eq!(rows.len(), 305);
    for r in &rows {
        assert_eq!(r["state"], "completed", "{r}");
    }
    let complete = server
        .uploads()
        .into_iter()
        .filter(|u| u.complete())
        .count();
    assert_eq!(complete, 305, "each file once");
}

/// Another program holding the journal's write lock (a backup tool, an `sqlite3` shell)
/// pauses journal writes: uploads wait with that reason instead of failing, the engine keeps
/// answering, and once the lock is gone every file completes once and the journal catches
/// up with the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_locked_by_another_program_waits_and_nothing_is_lost() {
    use std::io::BufRead;
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let paths: Vec<PathBuf> = (0..4)
        .map(|i| write_file(files.path(), &format!("f{i}.bin"), 3 << 20, 40 + i))
        .collect();
    let mut c = config(data.path());
    c.upload.chunk_size = Some(256 << 10);
    c.upload.retry.max_attempts = 20;
    c.upload.retry.max_delay = Duration::from_millis(500);
    c.bandwidth = 4 << 20;
    let engine = Engine::open(c).await.unwrap();
    let mut rx = engine.subscribe();
    let reasons = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let r2 = reasons.clone();
    tokio::spawn(async move {
        while let Ok(b) = rx.recv().await {
            for v in &b.changed {
                if let (Some(e), Some(d)) = (&v.error, &v.error_detail) {
                    r2.lock().unwrap().push(format!("{:?}: {e} | {d}", v.state));
                }
            }
        }
    });
    let ids: Vec<UploadId> = add_all(&engine, &server.endpoint(), paths.clone())
        .await
        .iter()
        .map(added)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while support::acked_total(&engine).await == 0 {
        assert!(Instant::now() < deadline, "no upload started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Python's sqlite3 takes the write lock and keeps it for 4 s.
    let mut locker = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(4)\n\
             c.execute('COMMIT')\n",
        ])
        .arg(data.path().join("journal.sqlite"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the foreign locker");
    let mut line = String::new();
    std::io::BufReader::new(locker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let locked_at = Instant::now();
    let before = support::acked_total(&engine).await;
    // The engine keeps answering while the journal is held.
    let mut slowest = Duration::ZERO;
    while locked_at.elapsed() < Duration::from_secs(3) {
        let t = Instant::now();
        engine.snapshot().await.unwrap();
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(locker.wait().unwrap().success());
    let mut done = Vec::new();
    for id in &ids {
        let v = support::wait_view(&engine, *id, "an end", Duration::from_secs(60), |v| {
            v.state.is_terminal()
        })
        .await;
        done.push(v);
    }
    engine.shutdown().await.unwrap();
    for (v, p) in done.iter().zip(&paths) {
        assert_eq!(v.state, UploadState::Completed, "{v:#?}");
        assert!(server.stored(&support::url_of(&engine, v.id)) == std::fs::read(p).unwrap());
    }
    let reasons = reasons.lock().unwrap().clone();
    assert!(
        reasons.iter().any(|r| r.starts_with("WaitingToRetry")
            && r.contains("Another program holds Tusker's journal")
            && r.contains("locked by another program")),
        "the wait for the journal was never shown: {reasons:#?} (acked {before} when locked)"
    );
    let complete = server
        .uploads()
        .into_iter()
        .filter(|u| u.complete())
        .count();
    assert_eq!(complete, paths.len(), "each file completed once");
    // The journal caught up: every row completed, with its full offset.
    let rows = support::list_json(data.path());
    assert_eq!(rows.len(), paths.len());
    for r in &rows {
        assert_eq!(r["state"], "completed", "{r}");
        assert_eq!(r["offset"], r["size"], "{r}");
    }
    println!(
        "journal held by another program for 4 s: {} waits shown, slowest engine answer \
         meanwhile {slowest:?}",
        reasons
            .iter()
            .filter(|r| r.contains("locked by another program"))
            .count()
    );
    // By design an answer may wait for one journal write that waits out the lock once
    // (500 ms, the journal's busy wait); an engine that stopped answering waits for the
    // 4 s lock, or for a 500 ms wait per worker in turn (2 s with four). 1.5 s sits between
    // the two, with a second of margin for a loaded 2-core machine.
    assert!(
        slowest < Duration::from_millis(1500),
        "the engine stopped answering while the journal was held: {slowest:?}"
    );
}

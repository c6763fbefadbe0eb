//! The holes of issue 25, one test each, against the real servers (@tus/server, rustus) with
//! logging proxies in front of them. A proxy listening on another loopback address
//! (127.0.0.2, 127.0.0.3) is another host as URLs go: a second server, or a host the person
//! never named. Each test fails on the code before its fix.

mod support;

use std::path::Path;
use std::time::Duration;
use support::fixture::Fixture;
use support::proxy::FaultProxy;
use support::servers::{AnyServer, Kind};
use support::{cli, list_json, output_within, write_file};
use tusker_core::profiles::profile::Profile;
use tusker_core::{AddRequest, AddResult, Engine, EngineConfig, UploadState};

fn config(dir: &Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.upload.stall_timeout = Duration::from_secs(3);
    c.upload.retry.base = Duration::from_millis(50);
    c.upload.retry.max_delay = Duration::from_millis(400);
    c.upload.retry.max_attempts = 3;
    c
}

fn run_cli(data: &Path, args: &[&str]) -> std::process::Output {
    output_within(cli(data).args(args), Duration::from_secs(60))
}

/// What a watched folder handed to the queue next (its other events are a failure here).
async fn next_added(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<tusker_core::watch::folder::WatchEvent>,
) -> Vec<AddResult> {
    match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
        Ok(Some(tusker_core::watch::folder::WatchEvent::Added { results, .. })) => results,
        other => panic!("{other:?}"),
    }
}

/// The same server upload, addressed through `proxy` (a URL a service's API handed over).
fn through(url: &str, server_port: u16, proxy: &FaultProxy, ip: &str) -> String {
    url.replace(
        &format!("127.0.0.1:{server_port}/"),
        &format!("{ip}:{}/", proxy.port),
    )
}

/// Hole 1 (high): cancel and remove of an upload whose URL came from a service sent DELETE
/// with the profile's secrets to that URL, even after the person refused its host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_1_cancel_and_remove_send_no_secret_to_a_refused_or_unknown_host() {
    for kind in [Kind::Node, Kind::Rustus] {
        let Fixture(server, _, files, data, ..) = Fixture::any(kind);
        let api = FaultProxy::start(server.port());
        // The service's upload host, where the token was never given: it logs what arrives.
        let elsewhere = FaultProxy::start_on("127.0.0.2", server.port());
        let token = "Bearer sekrit-for-the-api-only";
        let out = run_cli(
            data.path(),
            &[
                "profile",
                "set",
                "svc",
                "--endpoint",
                &api.endpoint(),
                "--header",
                &format!("Authorization: {token}"),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let client = tusker_core::tus::client::TusClient::new();
        let direct = tusker_core::tus::client::parse_endpoint(&server.endpoint()).unwrap();
        let grant = tusker_core::tus::gate::Grant::default();
        let mut ids = Vec::new();
        for (i, name) in ["cancelled.bin", "removed.bin"].iter().enumerate() {
            let file = write_file(files.path(), name, 300_000, 70 + i as u64);
            let created = client
                .create(&direct, &grant, Some(300_000), "", None)
                .await
                .unwrap();
            let url = through(&created.url, server.port(), &elsewhere, "127.0.0.2");
            let out = run_cli(
                data.path(),
                &[
                    "upload",
                    "--plain",
                    "--profile",
                    "svc",
                    "--upload-url",
                    &url,
                    file.to_str().unwrap(),
                ],
            );
            assert_eq!(
                out.status.code(),
                Some(1),
                "{}: host not allowed",
                server.name()
            );
            let rows = list_json(data.path());
            let row = rows.iter().find(|r| r["name"] == *name).unwrap();
            assert_eq!(row["asks_host"], "127.0.0.2", "{row:#?}");
            ids.push(row["id"].as_i64().unwrap());
        }
        // The person refuses that host for the profile.
        let out = run_cli(
            data.path(),
            &["profile", "allow-host", "svc", "127.0.0.2", "--refuse"],
        );
        assert!(out.status.success());
        let out = run_cli(data.path(), &["cancel", &ids[0].to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run_cli(data.path(), &["remove", &ids[1].to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            elsewhere.carried("sekrit").is_empty(),
            "{}: the token reached the refused host: {:#?}",
            server.name(),
            elsewhere.carried("sekrit")
        );
        assert_eq!(
            elsewhere.count("DELETE"),
            0,
            "{}: no DELETE sent there",
            server.name()
        );
        let rows = list_json(data.path());
        let cancelled = rows.iter().find(|r| r["id"] == ids[0]).unwrap();
        assert_eq!(cancelled["state"], "cancelled");
        let said = cancelled["error"].as_str().unwrap_or("");
        assert!(
            said.contains("not deleted") && said.contains("127.0.0.2"),
            "the row says the DELETE was not sent: {said:?}"
        );
        assert!(
            !rows.iter().any(|r| r["id"] == ids[1]),
            "removed all the same"
        );
        assert!(api.carried("sekrit").iter().all(|l| l.method != "DELETE"));
    }
}

/// Hole 2 (medium): an upload made on server A read its headers from the profile as it is
/// now, so after the profile moved to B with B's token, the old upload sent B's token to A.
/// The same for a running app's watched folder after a CLI edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_2_an_upload_keeps_its_server_and_never_gets_a_moved_profiles_token() {
    let server = AnyServer::start(Kind::Node);
    // Two servers as URLs go, each logging what reaches it.
    let a = FaultProxy::start_on("127.0.0.1", server.port());
    let b = FaultProxy::start_on("127.0.0.3", server.port());
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let watched = tempfile::tempdir().unwrap();
    let mut cfg = config(data.path());
    cfg.bandwidth = 256 * 1024;
    let engine = Engine::open(cfg).await.unwrap();
    let set = |endpoint: &str, token: &str| {
        let out = run_cli(
            data.path(),
            &[
                "profile",
                "set",
                "work",
                "--endpoint",
                endpoint,
                "--header",
                &format!("Authorization: Bearer {token}"),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    set(&a.endpoint(), "token-for-a");
    let profile = engine.store().profile_by_name("work").unwrap().unwrap();

    // A slow upload on A, paused halfway; a watched folder of the same profile.
    let big = write_file(files.path(), "big.bin", 2 << 20, 81);
    let r = engine
        .add(AddRequest {
            paths: vec![big.clone()],
            ..AddRequest::to_profile(&profile)
        })
        .await
        .unwrap();
    let AddResult::Added { id: big_id, .. } = r[0] else {
        panic!("{r:?}")
    };
    support::wait_view(
        &engine,
        big_id,
        "bytes on A",
        Duration::from_secs(20),
        |v| v.acked > 0,
    )
    .await;
    engine.pause(big_id).await.unwrap();
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let watch = tusker_core::watch::folder::FolderWatch::start(
        engine.clone(),
        tusker_core::watch::folder::WatchSpec {
            dir: watched.path().to_path_buf(),
            request: AddRequest::to_profile(&profile),
            ignore: tusker_core::watch::folder::IgnoreRules::defaults(),
            settle: Duration::from_millis(300),
        },
        tx,
    )
    .unwrap();
    write_file(watched.path(), "first.bin", 50_000, 82);
    let first = next_added(&mut events).await;
    let AddResult::Added { id: first_id, .. } = first[0] else {
        panic!("{first:?}")
    };
    support::wait_view(
        &engine,
        first_id,
        "first.bin on A",
        Duration::from_secs(20),
        |v| v.state == UploadState::Completed,
    )
    .await;

    // The profile moves to B with B's token, from the CLI beside the running engine.
    set(&b.endpoint(), "token-for-b");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    engine.resume(big_id).await.unwrap();
    let v = support::wait_view(
        &engine,
        big_id,
        "needs sign-in",
        Duration::from_secs(20),
        |v| v.state.is_terminal(),
    )
    .await;
    assert_eq!(v.state, UploadState::NeedsSignIn, "{:?}", v.error);
    let said = v.error.unwrap_or_default();
    assert!(
        said.contains("127.0.0.1") && said.contains("127.0.0.3"),
        "the row says why: {said}"
    );
    // The watched folder's next file goes where the profile points now, with its token.
    write_file(watched.path(), "second.bin", 50_000, 83);
    let second = next_added(&mut events).await;
    let AddResult::Added { id: second_id, .. } = second[0] else {
        panic!("{second:?}")
    };
    let v = support::wait_view(
        &engine,
        second_id,
        "second.bin on B",
        Duration::from_secs(20),
        |v| v.state.is_terminal(),
    )
    .await;
    assert_eq!(v.state, UploadState::Completed, "{:?}", v.error);
    assert!(v.endpoint.contains("127.0.0.3"), "{}", v.endpoint);
    watch.stop().await;
    engine.shutdown().await.unwrap();

    assert!(
        a.carried("token-for-b").is_empty(),
        "B's token reached A: {:#?}",
        a.carried("token-for-b")
    );
    assert!(b.carried("token-for-a").is_empty(), "A's token reached B");
    assert!(!a.carried("token-for-a").is_empty() && !b.carried("token-for-b").is_empty());
    let rows = list_json(data.path());
    assert_eq!(rows.len(), 3, "{rows:#?}");
}

/// Hole 4 (medium): two profiles on one endpoint that differ by a tenant header or by
/// metadata (Supabase's `bucketName`) shared identity: the second was skipped as the
/// first's "already uploaded", or resumed into the first's server upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_4_already_uploaded_and_resume_stay_within_one_destination() {
    for kind in [Kind::Node, Kind::Rustus] {
        let Fixture(server, _, files, data, ..) = Fixture::any(kind);
        let mut cfg = config(data.path());
        cfg.bandwidth = 512 * 1024;
        let engine = Engine::open(cfg).await.unwrap();
        let profile = |name: &str, tenant: &str, bucket: &str| Profile {
            name: name.into(),
            endpoint: server.endpoint(),
            headers: std::collections::BTreeMap::from([(
                "X-Tenant".to_string(),
                tenant.to_string(),
            )])
            .into(),
            metadata: std::collections::BTreeMap::from([(
                "bucketName".to_string(),
                bucket.to_string(),
            )]),
            ..Default::default()
        };
        let mut ids = Vec::new();
        for p in [
            profile("photos", "acme", "photos"),
            profile("videos", "acme", "videos"),
            profile("other-tenant", "globex", "photos"),
            profile("photos-again", "acme", "photos"),
        ] {
            let id = engine.save_profile(&p).unwrap();
            ids.push(engine.store().profile(id).unwrap().unwrap());
        }
        let add = |p: &Profile, path: std::path::PathBuf, again: bool| {
            let engine = engine.clone();
            let req = AddRequest {
                paths: vec![path],
                again,
                ..AddRequest::to_profile(p)
            };
            async move { engine.add(req).await.unwrap().remove(0) }
        };
        let done = |id| {
            support::wait_view(&engine, id, "completed", Duration::from_secs(30), |v| {
                v.state.is_terminal()
            })
        };
        // Sent to one tenant's bucket.
        let file = write_file(files.path(), "shared.bin", 300_000, 91);
        let AddResult::Added { id: first, .. } = add(&ids[0], file.clone(), false).await else {
            panic!()
        };
        assert_eq!(done(first).await.state, UploadState::Completed);
        // Another bucket, another tenant: new uploads, not "already uploaded".
        for p in &ids[1..3] {
            match add(p, file.clone(), false).await {
                AddResult::Added { id, .. } => {
                    assert_eq!(done(id).await.state, UploadState::Completed, "{}", p.name)
                }
                other => panic!("{} on {}: {other:?}", p.name, server.name()),
            }
        }
        // The same destination (same endpoint, headers and metadata, no credentials) under
        // another profile's name: already uploaded; unless asked to send it again.
        assert!(matches!(
            add(&ids[3], file.clone(), false).await,
            AddResult::AlreadyUploaded { .. }
        ));
        assert!(matches!(
            add(&ids[0], file.clone(), true).await,
            AddResult::Added { .. }
        ));

        // An unfinished upload of one tenant is not resumed by another.
        let big = write_file(files.path(), "big.bin", 3 << 20, 92);
        let AddResult::Added { id: big_a, .. } = add(&ids[0], big.clone(), false).await else {
            panic!()
        };
        support::wait_view(&engine, big_a, "bytes sent", Duration::from_secs(20), |v| {
            v.acked > 0
        })
        .await;
        engine.pause(big_a).await.unwrap();
        match add(&ids[2], big.clone(), false).await {
            AddResult::Added { id, .. } => assert_ne!(id, big_a),
            other => panic!(
                "resumed into another tenant's upload on {}: {other:?}",
                server.name()
            ),
        }
        assert!(matches!(
            add(&ids[0], big.clone(), false).await,
            AddResult::Resumed { id, .. } if id == big_a
        ));
        engine.shutdown().await.unwrap();
    }
}

/// Hole 3 (medium): a file waiting to settle in a watched folder was swapped for a symlink to
/// a secret (`ln -s …; mv -T`) and uploaded under the old name: the scan skipped links, the
/// hand-over followed them. Now nothing of a watched or dropped folder is opened through a
/// link, and a file swapped between the look and the send is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_3_a_watched_file_swapped_for_a_link_is_never_uploaded() {
    let server = AnyServer::start(Kind::Node);
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let watched = tempfile::tempdir().unwrap();
    let secret = write_file(home.path(), "id_rsa", 3_000, 101);
    let secret_bytes = std::fs::read(&secret).unwrap();
    let engine = Engine::open(config(data.path())).await.unwrap();
    let mut profile = Profile {
        name: "w".into(),
        endpoint: server.endpoint(),
        ..Default::default()
    };
    profile.id = engine.save_profile(&profile).unwrap();
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let watch = tusker_core::watch::folder::FolderWatch::start(
        engine.clone(),
        tusker_core::watch::folder::WatchSpec {
            dir: watched.path().to_path_buf(),
            request: AddRequest::to_profile(&profile),
            ignore: tusker_core::watch::folder::IgnoreRules::new::<&str>(&[]).unwrap(),
            settle: Duration::from_millis(800),
        },
        tx,
    )
    .unwrap();
    // Arrives, then (while it settles) is swapped for a link to the key.
    let report = write_file(watched.path(), "report.pdf", 3_000, 102);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tmp = watched.path().join("swap.tmp");
    std::os::unix::fs::symlink(&secret, &tmp).unwrap();
    std::fs::rename(&tmp, &report).unwrap();
    // A plain file beside it still goes.
    let plain = write_file(watched.path(), "plain.bin", 2_000, 103);
    let mut added = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if let tusker_core::watch::folder::WatchEvent::Added { results, .. } = ev {
            added.extend(results);
        }
    }
    assert!(
        added
            .iter()
            .all(|r| !matches!(r, AddResult::Added { path, .. } if path.ends_with("report.pdf"))),
        "{added:#?}"
    );
    let plain_id = added
        .iter()
        .find_map(|r| match r {
            AddResult::Added { id, path } if path.ends_with("plain.bin") => Some(*id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{added:#?}"));
    support::wait_view(
        &engine,
        plain_id,
        "plain.bin",
        Duration::from_secs(20),
        |v| v.state == UploadState::Completed,
    )
    .await;

    // The hand-over's own race: examined as a file, swapped, then opened. Refused by name.
    let late = write_file(watched.path(), "late.doc", 3_000, 104);
    let examined = tusker_core::platform::FileId::of(&std::fs::symlink_metadata(&late).unwrap());
    let tmp = watched.path().join("swap2.tmp");
    std::os::unix::fs::symlink(&secret, &tmp).unwrap();
    std::fs::rename(&tmp, &late).unwrap();
    let results = engine
        .add(AddRequest {
            paths: vec![late.clone()],
            examined: std::collections::BTreeMap::from([(late.clone(), examined)]),
            ..AddRequest::to_profile(&profile)
        })
        .await
        .unwrap();
    match &results[..] {
        [AddResult::Rejected { path, error }] => {
            assert_eq!(path, &late.display().to_string());
            assert!(
                error.contains("not followed") || error.contains("replaced"),
                "{error}"
            );
        }
        other => panic!("{other:#?}"),
    }
    // A dropped folder: a link inside leading out of it is skipped, the rest goes.
    let dropped = tempfile::tempdir().unwrap();
    write_file(dropped.path(), "photo.jpg", 2_500, 105);
    std::os::unix::fs::symlink(&secret, dropped.path().join("key.jpg")).unwrap();
    std::os::unix::fs::symlink(home.path(), dropped.path().join("home")).unwrap();
    let results = engine
        .add(AddRequest {
            paths: vec![dropped.path().to_path_buf()],
            ..AddRequest::to_profile(&profile)
        })
        .await
        .unwrap();
    let rejected: Vec<&String> = results
        .iter()
        .filter_map(|r| match r {
            AddResult::Rejected { path, .. } => Some(path),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 2, "{results:#?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    watch.stop().await;
    engine.shutdown().await.unwrap();
    // Whatever went, the key's bytes never reached the server.
    let mut stored = 0;
    for r in list_json(data.path()) {
        if let Some(url) = r["upload_url"].as_str() {
            stored += 1;
            assert_ne!(server.stored(url), secret_bytes, "{r:#?}");
        }
    }
    assert!(stored >= 2);
    let _ = plain;
}

/// Hole 6 (medium): a 2,000-level folder overflowed the stack of the recursive walk, and the
/// saved drop was replayed into the same crash at every start and `resume`.
#[test]
fn hole_6_a_deep_folder_neither_crashes_nor_is_replayed_into_the_same_crash() {
    use std::os::unix::process::ExitStatusExt;
    let server = AnyServer::start(Kind::Node);
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let deep = files.path().join("deep");
    std::fs::create_dir(&deep).unwrap();
    write_file(&deep, "top.bin", 5_000, 111);
    let mut at = deep.clone();
    for _ in 0..2000 {
        at = at.join("d");
        std::fs::create_dir(&at).unwrap();
    }
    let out = run_cli(
        data.path(),
        &[
            "upload",
            "--plain",
            "--endpoint",
            &server.endpoint(),
            deep.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "crashed: {stderr}");
    assert_eq!(out.status.code(), Some(1), "one entry refused: {stderr}");
    assert!(stderr.contains("folders deep"), "{stderr}");
    let rows = list_json(data.path());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "completed");

    // A drop whose walk kills the process each time: walked three times at most, then
    // named and given up; the rest of the queue goes on.
    let folder = files.path().join("folder");
    for i in 0..5 {
        write_file(&folder, &format!("f{i}.bin"), 1_000, 120 + i);
    }
    let crashing = |args: &[&str]| {
        output_within(
            cli(data.path())
                .env("TUSKER_CRASH_AT", "walking:4")
                .args(args),
            Duration::from_secs(60),
        )
    };
    let out = crashing(&[
        "upload",
        "--plain",
        "--endpoint",
        &server.endpoint(),
        folder.to_str().unwrap(),
    ]);
    assert!(
        out.status.signal().is_some(),
        "the walk was to crash: {out:?}"
    );
    for _ in 0..2 {
        let out = crashing(&["resume", "--plain"]);
        assert!(
            out.status.signal().is_some(),
            "the replay crashed again: {out:?}"
        );
    }
    let out = crashing(&["resume", "--plain"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        None,
        "replayed into the same crash: {stderr}"
    );
    assert!(stderr.contains("stopped 3 times"), "{stderr}");
    let out = run_cli(data.path(), &["resume", "--plain"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("stopped"), "given up once: {stderr}");
    assert_eq!(out.status.signal(), None);

    // A malformed crash point is an error, not a run without crashes.
    let out = output_within(
        cli(data.path())
            .env("TUSKER_CRASH_AT", "walkin:1")
            .args(["resume"]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(70), "{out:?}");
}

/// Low: secrets an older build kept in plain text in the journal move to the keyring and
/// leave no copy in the journal's files (free pages, the write-ahead log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_secrets_moved_out_of_the_journal_leave_no_copy_in_its_files() {
    let data = tempfile::tempdir().unwrap();
    let secret = "legacy-plain-secret-8f3a";
    {
        let store = tusker_core::journal::Store::open(&data.path().join("journal.sqlite")).unwrap();
        // Enough rows that the profile's page is one of many.
        store
            .save_profile(&Profile {
                name: "old".into(),
                endpoint: "http://127.0.0.1:9/files".into(),
                headers: std::collections::BTreeMap::from([(
                    "Authorization".to_string(),
                    format!("Bearer {secret}"),
                )])
                .into(),
                ..Default::default()
            })
            .unwrap();
        store
            .set_setting(
                "app",
                &format!(
                    r#"{{"endpoint":"http://127.0.0.1:9/files","headers":{{"X-Api-Key":"{secret}-2"}}}}"#
                ),
            )
            .unwrap();
    }
    let raw = |p: &Path| {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let f = std::path::PathBuf::from(format!("{}{suffix}", p.display()));
            all.extend(std::fs::read(&f).unwrap_or_default());
        }
        all
    };
    let journal = data.path().join("journal.sqlite");
    let has = |bytes: &[u8]| bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
    assert!(
        has(&raw(&journal)),
        "the test wrote the secret in plain text"
    );
    let engine = Engine::open(EngineConfig::new(data.path())).await.unwrap();
    // In the files while the engine still runs, and after.
    assert!(!has(&raw(&journal)), "a copy stayed in the journal's files");
    engine.shutdown().await.unwrap();
    drop(engine);
    assert!(!has(&raw(&journal)), "a copy stayed in the journal's files");
    let store = tusker_core::journal::Store::open(&journal).unwrap();
    let p = store.profile_by_name("old").unwrap().unwrap();
    assert!(p.headers["Authorization"].starts_with("secret-ref:"));
}

/// Low: `tusker-cli profile set` is the first command on a machine: its data dir is made,
/// for this user alone.
#[test]
fn profile_set_works_on_a_fresh_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("new/data");
    let out = run_cli(
        &data,
        &[
            "profile",
            "set",
            "p",
            "--endpoint",
            "http://127.0.0.1:9/files",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let out = run_cli(&data, &["profile", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("http://127.0.0.1:9/files"));
}

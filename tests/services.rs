//! Real services' habits, against the real @tus/server behind an auth gateway (the fault
//! proxy in gateway mode): bearer tokens that live about a second, 401 without a valid one,
//! and OPTIONS answered 405. Credentials come from profiles, read at request time.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::fixture::Fixture;
use support::proxy::FaultProxy;
use support::{write_file, TusServer};
use tusker_core::profiles::profile::Profile;
use tusker_core::{AddRequest, AddResult, Engine, EngineConfig, UploadState};

fn config(dir: &Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.upload.stall_timeout = Duration::from_secs(3);
    c.upload.retry.base = Duration::from_millis(50);
    c.upload.retry.max_delay = Duration::from_millis(400);
    c.upload.retry.max_attempts = 3;
    c.upload.chunk_size = Some(512 * 1024);
    c
}

/// Writes a fresh token (valid for `life`) into `file` every `every` until dropped: what a
/// token service a header command asks would hand out.
struct TokenMint {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenMint {
    fn start(
        proxy: Arc<FaultProxy>,
        file: std::path::PathBuf,
        life: Duration,
        every: Duration,
    ) -> TokenMint {
        let write = move |proxy: &FaultProxy| {
            let t = proxy.issue_token(life);
            let tmp = file.with_extension("tmp");
            std::fs::write(&tmp, format!("Authorization: Bearer {t}\n")).unwrap();
            std::fs::rename(&tmp, &file).unwrap();
        };
        write(&proxy);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(every);
                write(&proxy);
            }
        });
        TokenMint {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenMint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn add(engine: &Engine, profile: &Profile, id: i64, path: std::path::PathBuf) -> i64 {
    let r = engine
        .add(AddRequest {
            paths: vec![path],
            endpoint: profile.endpoint.clone(),
            profile_id: Some(id),
            ..Default::default()
        })
        .await
        .unwrap();
    match &r[0] {
        AddResult::Added { id, .. } => *id,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_from_a_header_command_behind_a_gateway_without_options() {
    let Fixture(server, proxy, _, data, ..) = Fixture::new().proxied_shared();
    proxy.set_gateway(true);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    // Tokens live 1 s and a new one is minted every 400 ms; the upload takes several seconds
    // (bandwidth limited), so tokens expire between its requests.
    let _mint = TokenMint::start(
        proxy.clone(),
        token_file.clone(),
        Duration::from_secs(1),
        Duration::from_millis(400),
    );
    let file = write_file(dir.path(), "video.bin", 6 << 20, 7);
    let mut cfg = config(data.path());
    cfg.bandwidth = 2 << 20;
    let engine = Engine::open(cfg).await.unwrap();
    let profile = Profile {
        name: "gateway".into(),
        endpoint: proxy.endpoint(),
        header_command: Some(format!("cat {}", token_file.display())),
        ..Default::default()
    };
    let pid = engine.save_profile(&profile).unwrap();
    let id = add(&engine, &profile, pid, file.clone()).await;
    let v = support::wait_view(&engine, id, "completed", Duration::from_secs(60), |v| {
        v.state.is_terminal()
    })
    .await;
    assert_eq!(v.state, UploadState::Completed, "{:?}", v.error);
    assert_eq!(v.profile.as_deref(), Some("gateway"));
    let url = engine.store().get(id).unwrap().upload_url.unwrap();
    assert_eq!(
        server.stored(&url),
        std::fs::read(&file).unwrap(),
        "byte-exact"
    );
    let log = proxy.log();
    let refused = log.iter().filter(|l| l.status == 401).count();
    assert!(
        refused >= 1,
        "tokens expired during the upload: {refused} refusals"
    );
    assert_eq!(proxy.count("POST"), 1, "never created again");
    assert_eq!(v.recreated, 0);
    assert_eq!(
        proxy.count("OPTIONS"),
        1,
        "asked once, answered 405, went ahead"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_waits_for_sign_in_and_a_profile_edit_continues_it() {
    let Fixture(server, proxy, _, data, ..) = Fixture::new().proxied_shared();
    proxy.set_gateway(false);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "doc.bin", 4 << 20, 8);
    let mut cfg = config(data.path());
    cfg.bandwidth = 2 << 20;
    let engine = Engine::open(cfg).await.unwrap();
    let token = proxy.issue_token(Duration::from_millis(700));
    let mut profile = Profile {
        name: "static".into(),
        endpoint: proxy.endpoint(),
        headers: BTreeMap::from([("Authorization".into(), format!("Bearer {token}"))]).into(),
        ..Default::default()
    };
    let pid = engine.save_profile(&profile).unwrap();
    let id = add(&engine, &profile, pid, file.clone()).await;
    let v = support::wait_view(&engine, id, "needs sign-in", Duration::from_secs(30), |v| {
        v.state.is_terminal()
    })
    .await;
    assert_eq!(v.state, UploadState::NeedsSignIn, "{:?}", v.error);
    assert!(
        v.error.as_deref().unwrap_or("").contains("401"),
        "{:?}",
        v.error
    );
    assert!(
        v.acked > 0 && v.acked < v.size,
        "some bytes went before the token expired"
    );
    // Nothing in the journal's upload row holds the token.
    assert!(engine.store().get(id).unwrap().headers.is_empty());
    // The user signs in again: a new token in the profile.
    let token = proxy.issue_token(Duration::from_secs(600));
    profile
        .headers
        .insert("Authorization".into(), format!("Bearer {token}"));
    engine.save_profile(&profile).unwrap();
    let v = support::wait_view(&engine, id, "completed", Duration::from_secs(60), |v| {
        v.state == UploadState::Completed || v.state == UploadState::Failed
    })
    .await;
    assert_eq!(v.state, UploadState::Completed, "{:?}", v.error);
    let url = engine.store().get(id).unwrap().upload_url.unwrap();
    assert_eq!(
        server.stored(&url),
        std::fs::read(&file).unwrap(),
        "byte-exact"
    );
    assert_eq!(proxy.count("POST"), 1, "the same server upload went on");
    engine.shutdown().await.unwrap();
}

#[test]
fn cli_kill_mid_upload_then_resume_with_the_header_command() {
    let Fixture(server, proxy, _, data, ..) = Fixture::new().proxied_shared();
    proxy.set_gateway(true);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let _mint = TokenMint::start(
        proxy.clone(),
        token_file.clone(),
        Duration::from_secs(1),
        Duration::from_millis(400),
    );
    let file = write_file(dir.path(), "big.bin", 8 << 20, 9);
    let mut child = support::cli(data.path())
        .args([
            "upload",
            "--plain",
            "--bandwidth",
            "2MiB",
            "--chunk-size",
            "512KiB",
        ])
        .arg("--endpoint")
        .arg(proxy.endpoint())
        .arg("--header-command")
        .arg(format!("cat {}", token_file.display()))
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    support::wait_until("a MiB acknowledged", Duration::from_secs(30), || {
        support::list_json(data.path())
            .first()
            .and_then(|r| r["offset"].as_u64())
            .is_some_and(|o| o >= 1 << 20)
    });
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    child.wait().unwrap();
    // The tokens the killed run had are expired by now; `resume` runs the stored command.
    std::thread::sleep(Duration::from_millis(1200));
    let out = support::output_within(
        support::cli(data.path()).args(["resume", "--plain"]),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "resume failed: {stderr}");
    let rows = support::list_json(data.path());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "completed");
    let url = rows[0]["upload_url"].as_str().unwrap();
    assert_eq!(
        server.stored(url),
        std::fs::read(&file).unwrap(),
        "byte-exact"
    );
    assert_eq!(proxy.count("POST"), 1, "resumed, not created again");
    // No token reached any file of the data dir (journal, WAL, logs) or the output: only
    // the command that prints them is stored.
    for entry in std::fs::read_dir(data.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(9).any(|w| w == b"Bearer to"),
                "a token in {}",
                path.display()
            );
        }
    }
    assert!(!stderr.contains("Bearer"), "{stderr}");
}

#[test]
fn check_says_it_goes_ahead_without_options() {
    let Fixture(_server, proxy, _, data, ..) = Fixture::new().proxied();
    proxy.set_gateway(true);
    let out = support::output_within(
        support::cli(data.path()).arg("check").arg(proxy.endpoint()),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("405") && stderr.contains("tus core"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_uploads_into_an_upload_url_a_service_created() {
    let server = TusServer::start();
    let proxy = FaultProxy::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "clip.bin", 3 << 20, 11);
    // What a service's API does for its client: create the upload, hand over its URL.
    let client = tusker_core::tus::client::TusClient::new();
    let endpoint = tusker_core::tus::client::parse_endpoint(&server.endpoint()).unwrap();
    let headers = tusker_core::tus::gate::Grant::default();
    let created = client
        .create(&endpoint, &headers, Some(3 << 20), "", None)
        .await
        .unwrap();
    // Through the proxy, so its requests are counted.
    let url = created
        .url
        .replace(&format!(":{}/", server.port), &format!(":{}/", proxy.port));
    let data = tempfile::tempdir().unwrap();
    let out = support::output_within(
        support::cli(data.path())
            .args(["upload", "--plain", "--upload-url", &url])
            .arg(&file),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(server.stored(&created.url), std::fs::read(&file).unwrap());
    assert_eq!(proxy.count("POST"), 0, "no upload created by Tusker");
    assert_eq!(server.upload_count(), 1);

    // A URL for another length is refused, naming why; the service's upload is left alone.
    let other = client
        .create(&endpoint, &headers, Some(5), "", None)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = support::output_within(
        support::cli(data.path())
            .args(["upload", "--plain", "--upload-url", &other.url])
            .arg(&file),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    let rows = support::list_json(data.path());
    let error = rows[0]["error"].as_str().unwrap_or("");
    assert!(
        error.contains("upload URL") && error.contains("3145728 bytes"),
        "{rows:#?}"
    );
    assert_eq!(server.upload_count(), 2);
}

/// Cloudflare Stream's habit: the creation POST on the API host answers with a Location on
/// an upload host. With secrets in the profile that host is asked about once; the answer is
/// remembered in the profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_on_another_host_is_asked_about_once_and_the_answer_remembered() {
    let Fixture(server, proxy, _, data, ..) = Fixture::new().proxied();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(data.path())).await.unwrap();
    // The API host (the proxy) answers the POST itself, with an upload the "service" made on
    // the upload host: the real server, named `localhost` (another host as URLs go).
    let elsewhere = |len: u64| support::location_elsewhere(&server, &proxy, len);
    let profile = |name: &str| Profile {
        name: name.into(),
        endpoint: proxy.endpoint(),
        headers: BTreeMap::from([("Authorization".to_string(), "Bearer api-token".to_string())])
            .into(),
        ..Default::default()
    };
    let failed = |id| {
        support::wait_view(&engine, id, "failed", Duration::from_secs(20), |v| {
            v.state.is_terminal()
        })
    };

    // Allowed: the same upload goes on (a new POST, which lands on the upload host).
    let a = profile("Stream");
    let a_id = engine.save_profile(&a).unwrap();
    let first = write_file(dir.path(), "first.bin", 1 << 20, 21);
    let url = elsewhere(1 << 20).await;
    let id = add(&engine, &a, a_id, first.clone()).await;
    let v = failed(id).await;
    assert_eq!(
        (v.state, v.asks_host.as_deref()),
        (UploadState::Failed, Some("localhost")),
        "{:?}",
        v.error
    );
    assert!(
        v.error
            .as_deref()
            .unwrap()
            .contains("profile allow-host \"Stream\" localhost"),
        "the CLI's way is named: {:?}",
        v.error
    );
    let url_after_allow = elsewhere(1 << 20).await;
    engine.answer_host(id, true).unwrap();
    let v = support::wait_view(&engine, id, "completed", Duration::from_secs(20), |v| {
        v.state.is_terminal()
    })
    .await;
    assert_eq!(v.state, UploadState::Completed, "{:?}", v.error);
    assert_eq!(v.asks_host, None);
    assert_eq!(
        server.stored(&url_after_allow),
        std::fs::read(&first).unwrap()
    );
    assert!(
        server.stored(&url).is_empty(),
        "the refused Location got nothing"
    );
    let saved = engine.store().profile(a_id).unwrap().unwrap();
    assert_eq!(saved.allowed_hosts, vec!["localhost".to_string()]);

    // Refused: the question goes away, and the next upload fails without asking again.
    let b = profile("Careful");
    let b_id = engine.save_profile(&b).unwrap();
    let second = write_file(dir.path(), "second.bin", 1000, 22);
    elsewhere(1000).await;
    let id = add(&engine, &b, b_id, second).await;
    assert_eq!(failed(id).await.asks_host.as_deref(), Some("localhost"));
    engine.answer_host(id, false).unwrap();
    support::wait_view(
        &engine,
        id,
        "the question gone",
        Duration::from_secs(10),
        |v| v.asks_host.is_none(),
    )
    .await;
    let third = write_file(dir.path(), "third.bin", 1000, 23);
    elsewhere(1000).await;
    let id = add(&engine, &b, b_id, third).await;
    let v = failed(id).await;
    assert_eq!(
        (v.state, v.asks_host.as_deref()),
        (UploadState::Failed, None)
    );
    assert!(v.error.unwrap().contains("chose not to upload"));
    assert_eq!(
        engine.store().profile(b_id).unwrap().unwrap().refused_hosts,
        vec!["localhost".to_string()]
    );
    engine.shutdown().await.unwrap();
}

/// The CLI's side of another host: the failure names the command that allows it; after it,
/// `resume` completes the upload there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_names_the_command_that_allows_another_host_and_resume_then_completes() {
    let Fixture(server, proxy, _, data, ..) = Fixture::new().proxied();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "clip.bin", 1 << 20, 24);
    let mut urls = Vec::new();
    for _ in 0..2 {
        urls.push(support::location_elsewhere(&server, &proxy, 1 << 20).await);
    }
    let cli = |args: &[&str]| {
        let out = support::output_within(
            support::cli(data.path())
                .args(args)
                .env("TUSKER_HEADERS", "Authorization: Bearer cli-token"),
            Duration::from_secs(60),
        );
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let endpoint = proxy.endpoint();
    let (code, stderr) = cli(&["profile", "set", "Stream", "--endpoint", &endpoint]);
    assert_eq!(code, Some(0), "{stderr}");
    let path = file.display().to_string();
    let (code, stderr) = cli(&["upload", "--plain", "--profile", "Stream", &path]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("tusker-cli profile allow-host \"Stream\" localhost"),
        "{stderr}"
    );
    assert!(!stderr.contains("cli-token"), "{stderr}");
    let (code, stderr) = cli(&["profile", "allow-host", "Stream", "localhost"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("1 failed upload"), "{stderr}");
    let (code, stderr) = cli(&["resume", "--plain"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(server.stored(&urls[1]), std::fs::read(&file).unwrap());
    assert!(server.stored(&urls[0]).is_empty());
}

/// A gateway that moved the creation endpoint (307) to another host the profile lists: the
/// POST is sent there, and the upload completes on the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_307_from_the_gateway_is_followed_to_a_host_the_profile_allows() {
    let Fixture(server, proxy, _, data, ..) = Fixture::new().proxied();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(data.path())).await.unwrap();
    let moved = format!("http://localhost:{}/files", server.port);
    for _ in 0..2 {
        proxy.once(
            "POST",
            0,
            support::proxy::Action::Respond {
                status: 307,
                headers: vec![("Location".into(), moved.clone())],
                body: String::new(),
            },
        );
    }
    let profile = |name: &str, allowed: Vec<String>| Profile {
        name: name.into(),
        endpoint: proxy.endpoint(),
        headers: BTreeMap::from([("Authorization".to_string(), "Bearer t".to_string())]).into(),
        allowed_hosts: allowed,
        ..Default::default()
    };
    let done = |id| {
        support::wait_view(&engine, id, "an end", Duration::from_secs(30), |v| {
            v.state.is_terminal()
        })
    };
    // Not listed: refused, asked about, nothing sent there.
    let strict = profile("Strict", vec![]);
    let strict_id = engine.save_profile(&strict).unwrap();
    let a = write_file(dir.path(), "a.bin", 1 << 20, 25);
    let id = add(&engine, &strict, strict_id, a).await;
    let v = done(id).await;
    assert_eq!(
        (v.state, v.asks_host.as_deref()),
        (UploadState::Failed, Some("localhost"))
    );
    assert_eq!(server.upload_count(), 0);
    // Listed: followed.
    let open = profile("Moved", vec!["localhost".into()]);
    let open_id = engine.save_profile(&open).unwrap();
    let b = write_file(dir.path(), "b.bin", 1 << 20, 26);
    let id = add(&engine, &open, open_id, b.clone()).await;
    let v = done(id).await;
    assert_eq!(v.state, UploadState::Completed, "{:?}", v.error);
    let url = engine.store().get(id).unwrap().upload_url.unwrap();
    assert!(url.starts_with("http://localhost:"), "{url}");
    assert_eq!(server.stored(&url), std::fs::read(&b).unwrap());
    assert_eq!(proxy.count("POST"), 2, "each POST met the gateway once");
    engine.shutdown().await.unwrap();
}

/// A proxy in front of rustus (which honours X-HTTP-Method-Override) that refuses PATCH and
/// DELETE: without the override nothing gets through; with it the upload completes and a
/// cancel terminates it on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_blocks_patch_is_passed_with_the_method_override() {
    let server = support::servers::RustusServer::start();
    let proxy = FaultProxy::start(server.port);
    for method in ["PATCH", "DELETE"] {
        proxy.push(support::proxy::Rule {
            method,
            skip: 0,
            times: u32::MAX,
            action: support::proxy::Action::Respond {
                status: 405,
                headers: vec![],
                body: "method not allowed here".into(),
            },
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(data.path());
    // rustus takes at most 256 KiB per PATCH.
    cfg.upload.chunk_size = Some(256 * 1024);
    let engine = Engine::open(cfg).await.unwrap();
    let done = |id| {
        support::wait_view(&engine, id, "an end", Duration::from_secs(30), |v| {
            v.state.is_terminal()
        })
    };
    let plain = Profile {
        name: "Plain".into(),
        endpoint: proxy.endpoint(),
        ..Default::default()
    };
    let plain_id = engine.save_profile(&plain).unwrap();
    let a = write_file(dir.path(), "a.bin", 1 << 20, 27);
    let id = add(&engine, &plain, plain_id, a).await;
    let v = done(id).await;
    assert_eq!(v.state, UploadState::Failed);
    assert!(v.error.as_deref().unwrap().contains("405"), "{:?}", v.error);

    let overriding = Profile {
        name: "Override".into(),
        method_override: true,
        ..plain.clone()
    };
    let over_id = engine.save_profile(&overriding).unwrap();
    let b = write_file(dir.path(), "b.bin", (1 << 20) + 5, 28);
    let id = add(&engine, &overriding, over_id, b.clone()).await;
    let v = done(id).await;
    assert_eq!(v.state, UploadState::Completed, "{:?}", v.error);
    let url = engine.store().get(id).unwrap().upload_url.unwrap();
    assert_eq!(server.stored(&url), std::fs::read(&b).unwrap());
    assert_eq!(
        proxy.count("PATCH"),
        1,
        "only the refused one from the plain profile"
    );

    // Cancel (DELETE, sent as POST) terminates on the server.
    let c = write_file(dir.path(), "c.bin", 4 << 20, 29);
    engine.set_bandwidth(256 * 1024).unwrap();
    let id = add(&engine, &overriding, over_id, c).await;
    support::wait_view(
        &engine,
        id,
        "some bytes sent",
        Duration::from_secs(30),
        |v| v.acked > 0,
    )
    .await;
    let url = engine.store().get(id).unwrap().upload_url.unwrap();
    engine.cancel(id).await.unwrap();
    let client = tusker_core::tus::client::TusClient::new();
    let headers = tusker_core::tus::gate::Grant::default();
    let direct = url.replace(&format!(":{}/", proxy.port), &format!(":{}/", server.port));
    let mut gone = false;
    for _ in 0..50 {
        if client.head(&direct, &headers).await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the upload was terminated on the server");
    assert_eq!(proxy.count("DELETE"), 0, "no DELETE reached the proxy");
    engine.shutdown().await.unwrap();
}

/// Renaming a profile (what the window's Save does: rename, then save) keeps its uploads and
/// their secrets, and the rows show the new name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_profile_keeps_its_uploads_and_secrets_and_rows_show_the_new_name() {
    let Fixture(server, proxy, _, data, ..) = Fixture::new().proxied();
    proxy.set_gateway(false);
    let token = proxy.issue_token(Duration::from_secs(600));
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(data.path())).await.unwrap();
    let old = Profile {
        name: "Old".into(),
        endpoint: proxy.endpoint(),
        headers: BTreeMap::from([("Authorization".to_string(), format!("Bearer {token}"))]).into(),
        ..Default::default()
    };
    let pid = engine.save_profile(&old).unwrap();
    let file = write_file(dir.path(), "kept.bin", 2 << 20, 30);
    let id = add(&engine, &old, pid, file.clone()).await;
    engine.pause(id).await.unwrap();
    // The window sends the stored (sealed) headers back for secrets it withheld.
    let stored = engine.store().profile(pid).unwrap().unwrap();
    engine.store().rename_profile("Old", "New").unwrap();
    let renamed_id = engine
        .save_profile(&Profile {
            name: "New".into(),
            ..stored
        })
        .unwrap();
    assert_eq!(renamed_id, pid, "the same profile");
    support::wait_view(&engine, id, "the new name", Duration::from_secs(5), |v| {
        v.profile.as_deref() == Some("New")
    })
    .await;
    engine.resume(id).await.unwrap();
    let v = support::wait_view(&engine, id, "completed", Duration::from_secs(30), |v| {
        v.state.is_terminal()
    })
    .await;
    assert_eq!(v.state, UploadState::Completed, "{:?}", v.error);
    let url = engine.store().get(id).unwrap().upload_url.unwrap();
    assert_eq!(server.stored(&url), std::fs::read(&file).unwrap());
    assert!(engine.store().profile_by_name("Old").unwrap().is_none());

    // A new profile under the old name, with its own token, leaves the renamed one's alone.
    engine
        .save_profile(&Profile {
            name: "Old".into(),
            endpoint: proxy.endpoint(),
            headers: BTreeMap::from([("Authorization".to_string(), "Bearer other".to_string())])
                .into(),
            ..Default::default()
        })
        .unwrap();
    let renamed = engine.store().profile(pid).unwrap().unwrap();
    let fresh = tusker_core::profiles::secrets::Secrets::open(data.path());
    assert_eq!(
        fresh.open_headers(&renamed.headers).unwrap()["Authorization"],
        format!("Bearer {token}")
    );
    engine.shutdown().await.unwrap();
}

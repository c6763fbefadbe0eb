//! Secrets in the OS keyring, for real: a GNOME keyring (Secret Service) unlocked on the test
//! session's D-Bus, as `scripts/test.sh` starts it through `scripts/with-keyring.sh`. Without
//! one these tests fail, saying how to run them.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use support::proxy::FaultProxy;
use support::{write_file, TusServer};
use tusker_core::secrets::Secrets;
use tusker_core::{AddRequest, AddResult, AppSettings, Engine, EngineConfig, UploadState};

fn require_keyring(secrets: &Secrets) {
    assert!(
        secrets.in_keyring(),
        "no unlocked OS keyring on this D-Bus session: run the tests through scripts/test.sh \
         (or: dbus-run-session -- scripts/with-keyring.sh cargo test --test secrets)"
    );
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_saved_in_the_app_is_in_the_keyring_and_in_no_file() {
    let server = TusServer::start();
    let proxy = FaultProxy::start(server.port);
    proxy.set_gateway(false);
    let token = proxy.issue_token(Duration::from_secs(600));
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "a.bin", 3 << 20, 3);
    let engine = Engine::open(EngineConfig::new(data.path())).await.unwrap();
    require_keyring(engine.secrets());

    // What the window's Save does (commands/settings.rs): the settings, then their profile.
    let mut s = AppSettings::load(engine.store(), engine.secrets()).unwrap();
    s.endpoint = proxy.endpoint();
    s.headers
        .insert("Authorization".into(), format!("Bearer {token}"));
    s.save(engine.store(), engine.secrets()).unwrap();
    let pid = engine.save_profile(&s.profile()).unwrap();

    // The gateway lets only that token through: the upload completing proves the secret came
    // back from the keyring when the requests were made.
    let r = engine
        .add(AddRequest {
            paths: vec![file.clone()],
            endpoint: s.endpoint.clone(),
            profile_id: Some(pid),
            ..Default::default()
        })
        .await
        .unwrap();
    let AddResult::Added { id, .. } = r[0] else {
        panic!("{r:?}")
    };
    let v = support::wait_view(&engine, id, "completed", Duration::from_secs(60), |v| {
        v.state.is_terminal()
    })
    .await;
    assert_eq!(v.state, UploadState::Completed, "{:?}", v.error);
    let url = engine.store().get(id).unwrap().upload_url.unwrap();
    assert_eq!(server.stored(&url), std::fs::read(&file).unwrap());
    engine.shutdown().await.unwrap();
    drop(engine);

    // No file under the data dir holds the token (journal, WAL, logs, anything).
    for f in files(data.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token is in {}",
            f.display()
        );
    }
    assert!(
        !data.path().join("secrets.json").exists(),
        "no fallback file with a keyring"
    );
    // The keyring has it: a fresh handle (nothing cached) reads the settings back whole.
    let store = tusker_core::store::Store::open(&data.path().join("journal.sqlite")).unwrap();
    let again = AppSettings::load(&store, &Secrets::open(data.path())).unwrap();
    assert_eq!(again.headers["Authorization"], format!("Bearer {token}"));

    // This user's alone: the data dir 0700, the journal and its WAL 0600.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.path()), 0o700);
    for f in ["journal.sqlite", "journal.sqlite-wal"] {
        let p = data.path().join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
}

#[tokio::test]
async fn secrets_stored_in_plain_text_by_an_older_build_move_to_the_keyring() {
    let data = tempfile::tempdir().unwrap();
    {
        // What a build before the keyring wrote: the value itself in the settings.
        let store = tusker_core::store::Store::open(&data.path().join("journal.sqlite")).unwrap();
        store
            .set_setting(
                "app",
                r#"{"endpoint":"http://127.0.0.1:9/files","headers":{"Authorization":"Bearer legacy-42"}}"#,
            )
            .unwrap();
    }
    let engine = Engine::open(EngineConfig::new(data.path())).await.unwrap();
    require_keyring(engine.secrets());
    let raw = engine.store().setting("app").unwrap().unwrap();
    assert!(!raw.contains("legacy-42"), "{raw}");
    let s = AppSettings::load(engine.store(), engine.secrets()).unwrap();
    assert_eq!(s.headers["Authorization"], "Bearer legacy-42");
    engine.shutdown().await.unwrap();
}

//! Secrets in the OS keyring, for real: a GNOME keyring (Secret Service) unlocked on the test
//! session's D-Bus, as `scripts/test.sh` starts it through `scripts/with-keyring.sh`. Without
//! one these tests fail, saying how to run them.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use support::fixture::Fixture;
use support::write_file;
use tusker_core::profiles::profile::Profile;
use tusker_core::profiles::secrets::Secrets;
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
    let Fixture(server, proxy, _, data, ..) = Fixture::new().proxied();
    proxy.set_gateway(false);
    let token = proxy.issue_token(Duration::from_secs(600));
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "a.bin", 3 << 20, 3);
    let engine = Engine::open(EngineConfig::new(data.path())).await.unwrap();
    require_keyring(engine.secrets());

    // What the window's Save does (commands/profiles.rs).
    let profile = Profile {
        name: "Desktop".into(),
        endpoint: proxy.endpoint(),
        headers: BTreeMap::from([("Authorization".to_string(), format!("Bearer {token}"))]).into(),
        ..Default::default()
    };
    let pid = engine.save_profile(&profile).unwrap();
    // A password in an endpoint URL is a secret too.
    let password = "hunter2-in-the-url";
    engine
        .save_profile(&Profile {
            name: "Basic".into(),
            endpoint: format!("https://bob:{password}@files.example/tus/"),
            ..Default::default()
        })
        .unwrap();

    // The gateway lets only that token through: the upload completing proves the secret came
    // back from the keyring when the requests were made.
    let r = engine
        .add(AddRequest {
            paths: vec![file.clone()],
            endpoint: profile.endpoint.clone(),
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

    // No file under the data dir holds the token or the password (journal, WAL, logs,
    // anything).
    for f in files(data.path()) {
        let bytes = std::fs::read(&f).unwrap();
        for secret in [token.as_str(), password] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret is in {}",
                f.display()
            );
        }
    }
    assert!(
        !data.path().join("secrets.json").exists(),
        "no fallback file with a keyring"
    );
    // The keyring has it: a fresh handle (nothing cached) reads the settings back whole.
    let store = tusker_core::journal::Store::open(&data.path().join("journal.sqlite")).unwrap();
    let fresh = Secrets::open(data.path());
    let open = |name: &str| {
        let p = store.profile_by_name(name).unwrap().unwrap();
        (p.endpoint.clone(), fresh.open_headers(&p.headers).unwrap())
    };
    assert_eq!(
        open("Desktop").1["Authorization"],
        format!("Bearer {token}")
    );
    let (endpoint, headers) = open("Basic");
    assert_eq!(endpoint, "https://files.example/tus/");
    // base64("bob:hunter2-in-the-url")
    assert_eq!(
        headers["Authorization"],
        "Basic Ym9iOmh1bnRlcjItaW4tdGhlLXVybA=="
    );

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
        let store = tusker_core::journal::Store::open(&data.path().join("journal.sqlite")).unwrap();
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
    // They became the Desktop profile, which drops go to, its secret in the keyring.
    let s = AppSettings::load(engine.store()).unwrap();
    assert_eq!(s.drop_profile.as_deref(), Some("Desktop"));
    let p = engine.store().profile_by_name("Desktop").unwrap().unwrap();
    assert_eq!(p.endpoint, "http://127.0.0.1:9/files");
    assert!(!serde_json::to_string(&p).unwrap().contains("legacy-42"));
    let h = engine.secrets().open_headers(&p.headers).unwrap();
    assert_eq!(h["Authorization"], "Bearer legacy-42");
    engine.shutdown().await.unwrap();
}

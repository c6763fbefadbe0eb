//! Parallel parts (concatenation) through the real servers: rustus 0.5.10 joins partial
//! uploads (with checksums per PATCH); @tus/server 2.4.5 has no concatenation and gets one
//! stream. The CLI is killed at each phase of a parted upload, and `resume` finishes it:
//! the server's final holds the file byte-exact, and the parts are terminated.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use support::servers::RustusServer;
use support::{cli, list_json, output_within, pattern, wait_for, TusServer};

const SIZE: usize = (9 << 20) + 77;

fn parted(endpoint: &str, file: &Path) -> std::process::Command {
    parted_in(endpoint, file, "1MiB")
}

/// [`parted`] with PATCH bodies of `chunk`.
fn parted_in(endpoint: &str, file: &Path, chunk: &str) -> std::process::Command {
    let data = file.parent().unwrap().join("data");
    let mut cmd = cli(&data);
    cmd.args(["-v", "upload", "--endpoint", endpoint])
        .args([
            "--parts",
            "4",
            "--parts-min-size",
            "1MiB",
            "--parallel",
            "4",
        ])
        .args(["--chunk-size", chunk, "--plain"])
        .arg(file);
    cmd
}

/// Files rustus keeps in its data directory, by size.
fn rustus_files(server: &RustusServer) -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir(server.dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    sizes.sort();
    sizes
}

/// Log text without its colours.
fn plain(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

fn setup(seed: u64) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let content = pattern(SIZE, seed);
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &content).unwrap();
    (dir, file, content)
}

#[test]
fn rustus_gets_four_parts_joined_byte_exact_and_the_parts_go() {
    let server = RustusServer::start();
    let (dir, file, content) = setup(3);
    let out = output_within(
        &mut parted(&server.endpoint(), &file),
        Duration::from_secs(60),
    );
    let log = plain(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("sending the file as parallel parts id=1 parts=4"),
        "{log}"
    );
    let rows = list_json(&dir.path().join("data"));
    assert_eq!(rows[0]["state"], "completed");
    let url = rows[0]["upload_url"].as_str().unwrap();
    assert!(server.stored(url) == content, "the final holds the file");
    // The parts were terminated: rustus keeps only the final.
    assert_eq!(rustus_files(&server), vec![SIZE as u64]);
    // Its content hash is the one the file gets in one stream.
    let store = tusker_core::journal::Store::open(&dir.path().join("data/journal.sqlite")).unwrap();
    let (hash, _) = tusker_core::identity::proof::hash_file(&file).unwrap();
    assert_eq!(store.list().unwrap()[0].content_hash, Some(hash));
    assert!(store
        .parts(rows[0]["id"].as_i64().unwrap())
        .unwrap()
        .is_empty());
}

#[test]
fn a_kill_at_every_phase_of_a_parted_upload_resumes_to_one_final() {
    // (crash point, what rustus holds afterwards, by size). A part whose POST answer was
    // lost stays there empty and unreachable (the part POSTed beside it may be answered in
    // the same instant); a lost final answer is the one documented window for a second copy
    // of the file. Bodies of 256 KiB, which rustus takes: this test is about the crash phases,
    // not the 413s (the test above has those).
    for (point, held) in [
        ("part-created:3", vec![0, SIZE as u64]),
        ("patch-acked:5", vec![SIZE as u64]),
        ("final-posting:1", vec![SIZE as u64]),
        ("final-answered:1", vec![SIZE as u64, SIZE as u64]),
    ] {
        let server = RustusServer::start();
        let (dir, file, content) = setup(point.len() as u64);
        let mut first = parted_in(&server.endpoint(), &file, "256KiB");
        let log = dir.path().join("first.log");
        first
            .env("TUSKER_CRASH_AT", point)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = first.spawn().unwrap();
        let Some(st) = wait_for(&mut child, Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!(
                "{point}: the CLI did not end within 60 s:\n{}",
                plain(&std::fs::read(&log).unwrap_or_default())
            );
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGABRT), "{point}: {st:?}");
        let data = dir.path().join("data");
        let mut resume = cli(&data);
        resume.args(["resume", "--plain", "--parallel", "4"]);
        let out = output_within(&mut resume, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = list_json(&data);
        assert_eq!(rows[0]["state"], "completed", "{point}");
        let url = rows[0]["upload_url"].as_str().unwrap();
        assert!(server.stored(url) == content, "{point}: byte-exact");
        let mut now = rustus_files(&server);
        if point.starts_with("part-created") && now.len() == 3 && now[1] == 0 {
            now.remove(0);
        }
        assert_eq!(now, held, "{point}");
        let store = tusker_core::journal::Store::open(&data.join("journal.sqlite")).unwrap();
        let id = rows[0]["id"].as_i64().unwrap();
        assert!(store.parts(id).unwrap().is_empty(), "{point}: parts let go");
        let (hash, _) = tusker_core::identity::proof::hash_file(&file).unwrap();
        assert_eq!(store.list().unwrap()[0].content_hash, Some(hash), "{point}");
    }
}

#[test]
fn tus_node_server_without_concatenation_gets_one_stream() {
    let server = TusServer::start();
    let (dir, file, content) = setup(9);
    let out = output_within(
        &mut parted(&server.endpoint(), &file),
        Duration::from_secs(60),
    );
    let log = plain(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("parallel parts"), "{log}");
    let rows = list_json(&dir.path().join("data"));
    let url = rows[0]["upload_url"].as_str().unwrap();
    assert!(server.stored(url) == content);
    assert_eq!(server.upload_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_terminates_every_part_and_the_queue_counts_connections() {
    use tusker_core::{AddRequest, AddResult, Engine, EngineConfig, UploadState};
    let server = RustusServer::start();
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..2)
        .map(|i| {
            let p = dir.path().join(format!("f{i}.bin"));
            std::fs::write(&p, pattern(SIZE, 40 + i)).unwrap();
            p
        })
        .collect();
    let mut config = EngineConfig::new(dir.path().join("data"));
    config.concurrency = 4;
    config.bandwidth = 2 << 20;
    config.upload.parts = 4;
    config.upload.parts_min_size = 1 << 20;
    let engine = Engine::open(config).await.unwrap();
    let added = engine
        .add(AddRequest {
            paths: files.clone(),
            endpoint: server.endpoint(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = added
        .iter()
        .map(|r| match r {
            AddResult::Added { id, .. } => *id,
            r => panic!("{r:?}"),
        })
        .collect();
    let store = engine.store().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let parts = store.parts(ids[0]).unwrap();
        if parts.len() == 4 && parts.iter().all(|p| p.url.is_some() && p.acked > 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "parts never started: {parts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Four connections in use by the first file: the second waits.
    let snap = engine.snapshot().await.unwrap();
    let second = snap.iter().find(|v| v.id == ids[1]).unwrap();
    assert_eq!(second.state, UploadState::Queued, "{second:?}");
    assert!(store.parts(ids[1]).unwrap().is_empty());
    assert_eq!(rustus_files(&server).len(), 4);
    engine.cancel(ids[0]).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // The second file takes the connections and is split in turn; the first one's parts go.
    loop {
        let first_gone = store.parts(ids[0]).unwrap().is_empty();
        let second = store.parts(ids[1]).unwrap();
        let urls: Vec<_> = second.iter().filter_map(|p| p.url.clone()).collect();
        let ids_on_server: Vec<String> = std::fs::read_dir(server.dir.path().join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let only_second = ids_on_server
            .iter()
            .all(|f| urls.iter().any(|u| u.ends_with(f.as_str())));
        if first_gone && urls.len() == 4 && only_second {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cancelled parts stay on the server: {ids_on_server:?} vs {urls:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.shutdown().await.unwrap();
}

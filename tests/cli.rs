//! The `tusker-cli` binary against the real `@tus/server`: the scripted interface (exit codes,
//! `list --json`), folders, headers, the data-dir lock, and resume after a kill.

mod support;

use std::process::Stdio;
use std::time::Duration;
use support::fixture::Fixture;
use support::{cli, list_json, output_within, write_file, ServerOpts, TusServer};

#[test]
fn uploads_a_folder_recursively_and_lists_the_journal() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let a = write_file(files.path(), "top/a.bin", 2 << 20, 1);
    let b = write_file(files.path(), "top/sub/deeper/b with space.txt", 12_345, 2);
    let c = write_file(files.path(), "top/sub/c.bin", 0, 3);
    let out = cli(data.path())
        .args([
            "upload",
            "--endpoint",
            &server.endpoint(),
            "--chunk-size",
            "512KiB",
            "--parallel",
            "2",
            "--metadata",
            "team=ops",
        ])
        .arg(files.path().join("top"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3 completed, 0 failed"), "{stdout}");
    let rows = list_json(data.path());
    assert_eq!(rows.len(), 3);
    for p in [&a, &b, &c] {
        let row = rows
            .iter()
            .find(|r| r["path"] == p.display().to_string())
            .unwrap_or_else(|| panic!("{} listed", p.display()));
        assert_eq!(row["state"], "completed");
        assert_eq!(row["offset"], row["size"]);
        let url = row["upload_url"].as_str().unwrap();
        assert!(server.stored(url) == std::fs::read(p).unwrap());
        assert_eq!(server.stored_info(url)["metadata"]["team"], "ops");
    }
    // The table form names the columns.
    let table = cli(data.path()).arg("list").output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("STATE") && table.contains("completed"),
        "{table}"
    );
}

#[test]
fn exit_code_is_nonzero_when_any_item_fails_but_the_rest_complete() {
    let server = TusServer::start_with(ServerOpts {
        max_size: Some(10_000),
        ..Default::default()
    });
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let ok = write_file(files.path(), "ok.bin", 5_000, 1);
    let big = write_file(files.path(), "big.bin", 50_000, 2);
    let out = cli(data.path())
        .args(["upload", "--endpoint", &server.endpoint()])
        .args([&ok, &big])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 completed, 1 failed"), "{stdout}");
    assert!(
        stdout.contains("1 × The file is 48.8 KiB; the server takes at most 9.8 KiB"),
        "{stdout}"
    );
    let rows = list_json(data.path());
    let state = |p: &std::path::Path| {
        rows.iter()
            .find(|r| r["path"] == p.display().to_string())
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state(&ok), "completed");
    assert_eq!(state(&big), "failed");
}

/// A bug that panics inside one upload's worker fails that upload with a clear error; it
/// neither hangs the queue (its slot is freed) nor stops the other uploads.
#[test]
fn a_panicking_upload_fails_alone_and_the_queue_goes_on() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let paths: Vec<_> = (0..4)
        .map(|i| write_file(files.path(), &format!("f{i}.bin"), 300_000, 10 + i))
        .collect();
    let out = output_within(
        cli(data.path())
            .env("TUSKER_CRASH_AT", "patch-acked:1:panic")
            // One slot: a slot the panic kept would stop everything after it.
            .args([
                "upload",
                "--endpoint",
                &server.endpoint(),
                "--parallel",
                "1",
            ])
            .args(&paths),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("3 completed, 1 failed"), "{stdout}");
    assert!(stdout.contains("internal error"), "{stdout}");
    let rows = list_json(data.path());
    let failed: Vec<_> = rows.iter().filter(|r| r["state"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{rows:#?}");
    for r in rows.iter().filter(|r| r["state"] == "completed") {
        let p = std::path::Path::new(r["path"].as_str().unwrap());
        assert!(server.stored(r["upload_url"].as_str().unwrap()) == std::fs::read(p).unwrap());
    }
}

#[test]
fn bad_arguments_get_clear_errors() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let f = write_file(files.path(), "x", 10, 1);
    let out = cli(data.path())
        .args(["upload", "--endpoint", "definitely not a url"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"definitely not a url\" is not a usable http(s) URL"),
        "{err}"
    );
    let out = cli(data.path())
        .args([
            "upload",
            "--endpoint",
            "http://127.0.0.1:9/files",
            "--chunk-size",
            "8 furlongs",
        ])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown size unit"));
    let out = cli(data.path())
        .args([
            "upload",
            "--endpoint",
            "http://127.0.0.1:9/files",
            "--header",
            "NoColonHere",
        ])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not 'Name: value'"));
}

#[test]
fn headers_are_sent_but_secrets_never_printed() {
    let Fixture(_server, proxy, files, data, ..) = Fixture::new().proxied();
    let f = write_file(files.path(), "s.bin", 3 << 20, 1);
    let out = cli(data.path())
        .args([
            "-vv",
            "upload",
            "--endpoint",
            &proxy.endpoint(),
            "--chunk-size",
            "1MiB",
        ])
        .args([
            "--header",
            "Authorization: Bearer s3cr3t-t0ken",
            "--header",
            "X-Team: blue",
        ])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("request"), "debug logging was on: {all}");
    assert!(!all.contains("s3cr3t"), "secret leaked into output");
    assert!(
        all.contains("X-Team") || all.contains("x-team"),
        "non-secret headers are logged"
    );
    let log = proxy.log();
    assert!(!log.is_empty());
    assert!(
        log.iter()
            .all(|l| l.authorization.as_deref() == Some("Bearer s3cr3t-t0ken")),
        "every request carries the header"
    );
    let listing = String::from_utf8_lossy(
        &cli(data.path())
            .args(["list", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    assert!(!listing.contains("s3cr3t"));
}

#[test]
fn one_process_per_data_dir_and_resume_after_kill() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let f = write_file(files.path(), "k.bin", 16 << 20, 5);
    let mut first = cli(data.path())
        .args([
            "upload",
            "--endpoint",
            &server.endpoint(),
            "--bandwidth",
            "4MiB",
            "--chunk-size",
            "2MiB",
        ])
        .arg(&f)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::wait_until("the first upload to start", Duration::from_secs(20), || {
        list_json(data.path())
            .first()
            .is_some_and(|r| r["offset"].as_u64().unwrap() > 0)
    });
    let second = cli(data.path())
        .args(["upload", "--endpoint", &server.endpoint()])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("in use by another Tusker process")
            && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    unsafe {
        libc::kill(first.id() as i32, libc::SIGKILL);
    }
    first.wait().unwrap();
    let row = &list_json(data.path())[0];
    assert_eq!(
        row["state"], "uploading",
        "a killed process leaves its state behind"
    );
    let out = cli(data.path()).arg("resume").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = &list_json(data.path())[0];
    assert_eq!(row["state"], "completed");
    assert!(server.stored(row["upload_url"].as_str().unwrap()) == std::fs::read(&f).unwrap());
    assert_eq!(server.upload_count(), 1);
    // Nothing left: resume says so and succeeds.
    let out = cli(data.path()).arg("resume").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to resume"));
}

#[test]
fn sigterm_pauses_cleanly_and_resume_finishes() {
    let Fixture(server, _, files, data, ..) = Fixture::new();
    let f = write_file(files.path(), "t.bin", 12 << 20, 6);
    let mut child = cli(data.path())
        .args([
            "upload",
            "--endpoint",
            &server.endpoint(),
            "--bandwidth",
            "4MiB",
        ])
        .arg(&f)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::wait_until("progress", Duration::from_secs(20), || {
        list_json(data.path())
            .first()
            .is_some_and(|r| r["offset"].as_u64().unwrap() > 0)
    });
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130));
    assert_eq!(
        list_json(data.path())[0]["state"],
        "queued",
        "journalled for the next start"
    );
    let out = cli(data.path()).arg("resume").output().unwrap();
    assert!(out.status.success());
    let row = &list_json(data.path())[0];
    assert!(server.stored(row["upload_url"].as_str().unwrap()) == std::fs::read(&f).unwrap());
}

#[test]
fn check_says_in_words_what_the_server_offers_and_json_for_scripts() {
    let server = TusServer::start();
    let data = tempfile::tempdir().unwrap();
    let out = cli(data.path())
        .args(["check", &server.endpoint()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("a tus server (versions 1.0.0)"), "{stdout}");
    assert!(stdout.contains("extensions: creation"), "{stdout}");
    assert!(
        stdout.contains("Tusker will:")
            && stdout.contains("delete cancelled uploads on the server"),
        "{stdout}"
    );
    let out = cli(data.path())
        .args(["check", "--json", &server.endpoint()])
        .output()
        .unwrap();
    let caps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(caps["versions"][0], "1.0.0");
}

#[test]
fn a_server_nobody_runs_is_said_in_words_and_the_summary_groups_by_cause() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let a = write_file(files.path(), "a.bin", 1000, 1);
    let b = write_file(files.path(), "b.bin", 1000, 2);
    let port = support::free_port();
    let out = output_within(
        cli(data.path())
            .args([
                "-v",
                "upload",
                "--plain",
                "--endpoint",
                &format!("http://127.0.0.1:{port}/files"),
                "--max-retries",
                "1",
                "--retry-base-ms",
                "10",
            ])
            .args([&a, &b]),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let sentence =
        format!("Can't reach 127.0.0.1:{port}: connection refused (is the server running?)");
    assert!(
        stdout.contains("0 completed, 2 failed")
            && stdout.contains(&format!("  2 × {sentence}; gave up after")),
        "{stdout}"
    );
    // The short lines never carry the error chain; -v gives it.
    for line in stdout.lines() {
        assert!(!line.contains("tcp connect error"), "{line}");
    }
    assert!(stderr.contains("tcp connect error"), "{stderr}");
}

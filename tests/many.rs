//! A dropped folder of many small files survives kills while it is taken in and while it
//! uploads: every file ends up on the real server (@tus/server) byte-exact, exactly once
//! (checked by SHA-256 over the server's store). The full-size run (100,000 files) is a
//! benchmark (`tests/bench/many.py`); this one keeps CI short.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{cli, wait_for, TusServer};

const FILES: usize = 2_000;

#[test]
fn a_folder_survives_kills_during_the_drop_and_the_uploads() {
    let server = TusServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let drop = tmp.path().join("drop");
    let want = support::write_folder(&drop, FILES);
    let data = tmp.path().join("data");

    // 1. Killed while the folder is taken in: inside the journal transaction of its third
    //    batch, with the first batches already uploading.
    let mut first = cli(&data);
    first
        .args(["upload", "--plain", "--parallel", "8", "--endpoint"])
        .arg(server.endpoint())
        .arg(&drop)
        .env("TUSKER_CRASH_AT", "insert-uncommitted:300")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = first.spawn().unwrap();
    let st = wait_for(&mut child, Duration::from_secs(60)).expect("the CLI ended");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGABRT), "{st:?}");
    let queued = support::list_json(&data).len();
    assert!(queued > 0 && queued < FILES, "{queued} rows after the kill");

    // 2. `resume` takes the rest of the drop in, and is SIGKILLed while uploading.
    let mut second = cli(&data);
    second
        .args(["resume", "--plain", "--parallel", "8"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = second.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.uploads().iter().filter(|u| u.complete()).count() < FILES / 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "resume ended before the kill"
        );
        assert!(Instant::now() < deadline, "uploads never reached half");
        std::thread::sleep(Duration::from_millis(10));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    child.wait().unwrap();

    // 3. `resume` to the end.
    // (Its progress lines would fill a pipe nobody reads: they go to a file.)
    let log = tmp.path().join("resume.log");
    let mut third = cli(&data);
    third
        .args(["resume", "--plain", "--parallel", "8"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = third.spawn().unwrap();
    let st = wait_for(&mut child, Duration::from_secs(120));
    if st.is_none() {
        let _ = child.kill();
    }
    assert!(
        st.is_some_and(|s| s.success()),
        "{st:?}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let rows = support::list_json(&data);
    assert_eq!(rows.len(), FILES, "every file has one row");
    assert!(rows.iter().all(|r| r["state"] == "completed"));

    // Every file's content is on the server exactly once, complete.
    support::assert_each_once(&want, &server);
}

//! Crash safety: `tusker-cli upload` on a 200 MiB file is SIGKILLed at random instants while
//! it sends, then `tusker-cli resume` continues. Each kill must fall mid-transfer (the run
//! moved the server's offset, which is still short of the size), the file must arrive
//! byte-exact, and after each kill at most one chunk may be sent again. Bytes are counted by
//! the proxy in front of the real server. `TUSKER_CRASH_SEED` replays the kill instants.

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::fixture::Fixture;
use support::{cli, list_json, write_file};

const SIZE: usize = 200 << 20;
const CHUNK: u64 = 8 << 20;
const KILLS: usize = 5;

#[test]
fn sigkill_at_random_points_loses_at_most_one_chunk_each_time() {
    let Fixture(server, proxy, files, data, ..) = Fixture::new().proxied();
    let f = write_file(files.path(), "crash.bin", SIZE, 77);
    let seed: u64 = std::env::var("TUSKER_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash seed {seed} (TUSKER_CRASH_SEED={seed} replays the kill instants)");
    let mut rng = StdRng::seed_from_u64(seed);
    let common = ["--bandwidth", "96MiB", "--plain"];
    let mut report = Vec::new();
    // The server's offset before each run (nothing before the first).
    let mut offset_before = 0u64;
    for kill in 0..KILLS {
        let mut cmd = cli(data.path());
        if kill == 0 {
            cmd.args([
                "upload",
                "--endpoint",
                &proxy.endpoint(),
                "--chunk-size",
                "8MiB",
            ])
            .args(common)
            .arg(&f);
        } else {
            cmd.arg("resume").args(common);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The kill instant counts from the first body bytes of this run (a start slowed by
        // a loaded machine must not push the kill before the transfer). At most 300 ms at
        // 96 MiB/s is under 30 MiB a run, so five runs cannot finish the 200 MiB.
        let at_spawn = proxy.forwarded();
        let deadline = Instant::now() + Duration::from_secs(30);
        while proxy.forwarded() == at_spawn {
            assert!(
                Instant::now() < deadline,
                "run {kill} sent nothing in 30 s (exited: {:?})",
                child.try_wait()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let delay = Duration::from_millis(rng.gen_range(0..300));
        std::thread::sleep(delay);
        let before_kill = proxy.forwarded();
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let rows = list_json(data.path());
        let journal = rows[0]["offset"].as_u64().unwrap();
        // Body bytes flowed, so the upload was created and its URL journalled.
        let url = rows[0]["upload_url"]
            .as_str()
            .expect("the journal has the server upload's URL once bytes were sent");
        let server_off = support::server_offset(url).expect("the server upload exists");
        report.push(format!(
            "kill {kill} {delay:?} into the transfer: forwarded {before_kill}, journal offset \
             {journal}, server offset {offset_before} -> {server_off}"
        ));
        assert!(
            journal <= server_off,
            "the journal never claims more than the server has"
        );
        // Mid-transfer: this run got bytes acknowledged by the server, but not all of them.
        assert!(
            offset_before < server_off && server_off < SIZE as u64,
            "kill {kill} did not fall mid-transfer: the server's offset went from \
             {offset_before} to {server_off} of {SIZE}"
        );
        assert_ne!(
            rows[0]["state"], "completed",
            "kill {kill} came after the end"
        );
        offset_before = server_off;
    }
    let out = cli(data.path())
        .arg("resume")
        .args(common)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = list_json(data.path());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "completed");
    let url = rows[0]["upload_url"].as_str().unwrap();
    assert!(
        server.stored(url) == std::fs::read(&f).unwrap(),
        "byte-exact after {KILLS} kills"
    );
    let resent = proxy.forwarded() - SIZE as u64;
    for line in &report {
        println!("{line}");
    }
    println!(
        "crash test: {KILLS} kills, {resent} bytes re-sent in total ({:.2} MiB, {:.2} MiB per kill), {} server uploads (orphans from kills during creation: {})",
        resent as f64 / 1048576.0,
        resent as f64 / 1048576.0 / KILLS as f64,
        server.upload_count(),
        server.upload_count() - 1
    );
    assert!(
        resent <= KILLS as u64 * CHUNK,
        "re-sent {resent} bytes over {KILLS} kills: more than one chunk per kill"
    );
}

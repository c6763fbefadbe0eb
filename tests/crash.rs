//! Crash safety: `tusker-cli upload` on a 200 MiB file is SIGKILLed at random instants, then
//! `tusker-cli resume` continues. The file must arrive byte-exact, and after each kill at most
//! one chunk may be sent again. Bytes are counted by the proxy in front of the real server.

mod support;

use rand::Rng;
use std::process::Stdio;
use std::time::Duration;
use support::proxy::FaultProxy;
use support::{cli, list_json, write_file, TusServer};

const SIZE: usize = 200 << 20;
const CHUNK: u64 = 8 << 20;
const KILLS: usize = 5;

#[test]
fn sigkill_at_random_points_loses_at_most_one_chunk_each_time() {
    let server = TusServer::start();
    let proxy = FaultProxy::start(server.port);
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let f = write_file(files.path(), "crash.bin", SIZE, 77);
    let mut rng = rand::thread_rng();
    let common = ["--bandwidth", "96MiB", "--plain"];
    let mut report = Vec::new();
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
        let delay = Duration::from_millis(rng.gen_range(30..1200));
        std::thread::sleep(delay);
        let before_kill = proxy.forwarded();
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let rows = list_json(data.path());
        let journal = rows[0]["offset"].as_u64().unwrap();
        let server_off = rows[0]["upload_url"]
            .as_str()
            .and_then(support::server_offset);
        report.push(format!(
            "kill {kill} after {delay:?}: forwarded {before_kill}, journal offset {journal}, server offset {server_off:?}"
        ));
        if let Some(s) = server_off {
            assert!(
                journal <= s,
                "the journal never claims more than the server has"
            );
        }
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

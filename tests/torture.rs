//! Crash torture. Rounds of files of mixed sizes (0 B to 24 MiB) go to the real `@tus/server`
//! through the counting proxy while the client is killed over and over: SIGKILL at random
//! instants, and aborts at the named crash points a random kill rarely hits (the server answered
//! a POST but the journal has no URL yet; the server acknowledged a PATCH but the journal has
//! the old offset; a journal transaction not yet committed). After every kill the journal must
//! still open, hold every row it held before, and never claim more than the server has. At the
//! end every file must be on the server byte-exact, exactly once, every crash point used must
//! have fired, and the bytes sent twice must stay within what the kills could have cut off.
//!
//! `TUSKER_TORTURE_KILLS` sets the number of kills (CI runs the default; scripts/torture.sh
//! runs long ones) and `TUSKER_TORTURE_SEED` replays a run.

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::fixture::Fixture;
use support::proxy::FaultProxy;
use support::{cli, list_json, wait_for, write_file, TusServer};

/// One test at a time: the app test and the CLI test both want the CPU.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const ROUND: &[usize] = &[
    0,
    1,
    4096,
    4097,
    100_000,
    1 << 20,
    4 << 20,
    (4 << 20) + 1,
    9 << 20,
    24 << 20,
];

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seeded_rng() -> StdRng {
    let seed = env_num("TUSKER_TORTURE_SEED", rand::random::<u32>() as u64);
    println!("torture seed {seed} (TUSKER_TORTURE_SEED={seed} replays the kill instants)");
    StdRng::seed_from_u64(seed)
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Writes round `r` of files (unique content except the empty file) and returns their paths.
fn write_round(dir: &Path, r: usize) -> Vec<PathBuf> {
    ROUND
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            write_file(
                dir,
                &format!("round{r}/f{i}-{len}.bin"),
                len,
                (r * 100 + i) as u64 + 1,
            )
        })
        .collect()
}

/// What the kills did, by kind.
#[derive(Default, Debug)]
struct Tally {
    sigkill: usize,
    aborted: BTreeMap<String, usize>,
    /// Runs with a crash point set, by point (aborted or not).
    armed: BTreeMap<String, usize>,
    finished: usize,
}

impl Tally {
    fn kills(&self) -> usize {
        self.sigkill + self.aborted.values().sum::<usize>()
    }
}

fn sigkill(child: &mut Child) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    child.wait().unwrap();
}

/// Bytes the server holds, by upload id.
fn stored_bytes(server: &TusServer) -> HashMap<String, u64> {
    server
        .uploads()
        .into_iter()
        .map(|u| (u.id, u.stored))
        .collect()
}

/// The journal never claims more of a server upload than the server holds.
fn assert_journal_not_ahead(stored: &HashMap<String, u64>, url: &str, journal: u64) {
    let id = url.rsplit('/').next().unwrap();
    let server_has = stored.get(id).copied().unwrap_or(0);
    assert!(
        journal <= server_has,
        "journal claims {journal} bytes of {url}, the server has {server_has}"
    );
}

/// Checks that hold after every kill: the journal opens, loses no row, and never claims more
/// than the server holds. Returns the rows.
fn check_journal(
    data: &Path,
    server: &TusServer,
    seen: &mut HashSet<i64>,
) -> Vec<serde_json::Value> {
    let rows = list_json(data);
    let ids: HashSet<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    for id in seen.iter() {
        assert!(ids.contains(id), "journal row {id} was lost");
    }
    seen.extend(ids);
    let stored = stored_bytes(server);
    for r in &rows {
        if let Some(url) = r["upload_url"].as_str() {
            assert_journal_not_ahead(&stored, url, r["offset"].as_u64().unwrap());
        }
    }
    rows
}

/// The end state: every file's content completed on the server exactly once, byte-exact,
/// every journal row completed. Orphans (a crash inside a creation POST: the server made the
/// upload, its URL never reached the journal) may exist, empty and unfinished, at most one
/// per kill; they are counted.
fn verify(
    server: &TusServer,
    rows: &[serde_json::Value],
    files: &[PathBuf],
    kills: usize,
) -> (u64, usize, usize) {
    for r in rows {
        assert_eq!(r["state"], "completed", "{r}");
    }
    let uploads = server.uploads();
    let referenced: HashSet<String> = rows
        .iter()
        .filter_map(|r| r["upload_url"].as_str())
        .map(|u| u.rsplit('/').next().unwrap().to_string())
        .collect();
    let mut contents: HashMap<[u8; 32], (PathBuf, u64)> = HashMap::new();
    for f in files {
        let b = std::fs::read(f).unwrap();
        contents
            .entry(sha(&b))
            .or_insert((f.clone(), b.len() as u64));
    }
    let mut complete_refs: HashMap<[u8; 32], usize> = HashMap::new();
    let mut complete_orphans = 0;
    let mut orphans = 0;
    for u in &uploads {
        let is_ref = referenced.contains(&u.id);
        if !is_ref {
            orphans += 1;
        }
        if !u.complete() {
            assert!(!is_ref, "a journal row points at incomplete upload {u:?}");
            continue;
        }
        let digest = sha(&std::fs::read(&u.data).unwrap());
        assert!(
            contents.contains_key(&digest),
            "server upload {} holds bytes that match no file: a corrupt mix",
            u.id
        );
        if is_ref {
            *complete_refs.entry(digest).or_default() += 1;
        } else {
            complete_orphans += 1;
        }
    }
    for (digest, (path, _)) in &contents {
        assert_eq!(
            complete_refs.get(digest).copied().unwrap_or(0),
            1,
            "{} must be completed on the server exactly once",
            path.display()
        );
    }
    assert_eq!(
        complete_orphans, 0,
        "completed server uploads the journal does not know: files delivered twice"
    );
    assert!(
        orphans <= kills,
        "{orphans} orphans from {kills} kills: more than one per kill"
    );
    let unique: u64 = contents.values().map(|(_, n)| n).sum();
    (unique, orphans, complete_orphans)
}

/// Bytes go again only when a kill cut them off before the server kept them: the server keeps
/// what a cut PATCH delivered, and the next run resumes from the server's offset. So the bytes
/// sent twice are at most the bodies the server did not acknowledge (cut at a kill: status 0
/// in the proxy's log, or refused), as measured; and each kill can cut at most one body per
/// connection (4: the CLI's --parallel and the app's default) of at most one chunk (2 MiB in
/// both tests), the design's worst case, a wide bound. Creation POSTs are empty (no
/// creation-with-upload). Either bound fails a client that re-sent bytes the server had
/// acknowledged (an upload started over, a completed file sent again).
fn assert_resent_bounded(proxy: &FaultProxy, resent: u64, kills: usize) {
    const CONNECTIONS: u64 = 4;
    const CHUNK: u64 = 2 << 20;
    let unacknowledged: u64 = proxy
        .log()
        .iter()
        .filter(|l| !(200..300).contains(&l.status))
        .map(|l| l.forwarded)
        .sum();
    let worst = kills as u64 * CONNECTIONS * CHUNK;
    println!("re-sent {resent} bytes; not acknowledged {unacknowledged}; worst case {worst}");
    assert!(
        resent <= unacknowledged && resent <= worst,
        "re-sent {resent} bytes over {kills} kills: more than the {unacknowledged} bytes the \
         server never acknowledged, or than one chunk per connection per kill ({worst})"
    );
}

#[test]
fn cli_survives_kills_at_random_instants_and_at_every_crash_point() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let wanted = env_num("TUSKER_TORTURE_KILLS", 40) as usize;
    let mut rng = seeded_rng();
    let Fixture(server, proxy, _, data, ..) = Fixture::new().proxied();
    let files_dir = tempfile::tempdir().unwrap();
    let endpoint = proxy.endpoint();
    let common = [
        "--bandwidth",
        "32MiB",
        "--plain",
        "--retry-base-ms",
        "50",
        "--stall-timeout",
        "5",
    ];
    // What a user runs after a crash: the same upload command until its files are all in
    // the journal, then `resume`.
    let next_run = |enqueued: bool, current: &[PathBuf]| {
        let mut cmd = cli(data.path());
        if enqueued {
            cmd.arg("resume").args(common);
        } else {
            cmd.args(["upload", "--endpoint", &endpoint, "--chunk-size", "2MiB"])
                .args(common)
                .args(current);
        }
        cmd
    };
    let mut all_files = Vec::new();
    let mut round = 0;
    let mut current = write_round(files_dir.path(), round);
    all_files.extend(current.clone());
    let mut enqueued = false;
    let mut tally = Tally::default();
    let mut seen = HashSet::new();
    let mut runs = 0usize;
    let mut round_runs = 0usize;
    let mut without_url = 0usize;
    let started = Instant::now();
    while tally.kills() < wanted {
        runs += 1;
        let mut cmd = next_run(enqueued, &current);
        // A crash point instead of a random kill: at the first enqueueing run of each round
        // (inside the insert transaction, or right after a POST's answer), and on every third
        // resume (after a POST's answer while some upload has no URL yet, else after a
        // PATCH's acknowledgement).
        let point = if !enqueued && round_runs == 0 {
            Some(if round % 2 == 0 {
                format!("insert-uncommitted:{}", rng.gen_range(1..=9))
            } else {
                format!("create-answered:{}", rng.gen_range(1..=3))
            })
        } else if enqueued && runs.is_multiple_of(3) {
            Some(if without_url > 0 {
                "create-answered:1".to_string()
            } else {
                format!("patch-acked:{}", rng.gen_range(1..=4))
            })
        } else {
            None
        };
        round_runs += 1;
        if let Some(p) = &point {
            cmd.env("TUSKER_CRASH_AT", p);
            *tally
                .armed
                .entry(p.split(':').next().unwrap().into())
                .or_default() += 1;
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        match point.as_deref() {
            Some(p) => match wait_for(&mut child, Duration::from_secs(30)) {
                // A crash point fires as SIGABRT; a malformed one exits with 70 (and fails
                // the success check below).
                Some(st) if st.signal() == Some(libc::SIGABRT) => {
                    *tally
                        .aborted
                        .entry(p.split(':').next().unwrap().into())
                        .or_default() += 1;
                }
                Some(st) => {
                    assert!(st.success(), "run {runs} ({p}) failed: {st:?}");
                    tally.finished += 1;
                }
                None => panic!("run {runs} with {p} hung"),
            },
            None => {
                let delay = Duration::from_millis(rng.gen_range(0..400));
                match wait_for(&mut child, delay) {
                    Some(st) => {
                        assert!(st.success(), "run {runs} failed: {st:?}");
                        tally.finished += 1;
                    }
                    None => {
                        sigkill(&mut child);
                        tally.sigkill += 1;
                    }
                }
            }
        }
        let rows = check_journal(data.path(), &server, &mut seen);
        let paths: HashSet<&str> = rows.iter().filter_map(|r| r["path"].as_str()).collect();
        let all_done = rows.iter().all(|r| r["state"] == "completed");
        without_url = rows.iter().filter(|r| r["upload_url"].is_null()).count();
        // The round is in the journal once every file has a row, or its content already
        // completed under another name (the empty file of later rounds).
        enqueued = current.iter().all(|f| {
            paths.contains(f.to_str().unwrap()) || std::fs::metadata(f).unwrap().len() == 0
        }) && rows.len() > (round + 1) * (ROUND.len() - 1);
        if enqueued && all_done {
            round += 1;
            current = write_round(files_dir.path(), round);
            all_files.extend(current.clone());
            enqueued = false;
            round_runs = 0;
        }
    }
    // The user runs the same command once more (or `resume`): everything completes.
    let out = next_run(enqueued, &current).output().unwrap();
    assert!(
        out.status.success(),
        "final run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = check_journal(data.path(), &server, &mut seen);
    // Kills that always come before any progress prove nothing (a start that got slower
    // than the kill window did that once): at least one round must have completed.
    assert!(
        round >= 1,
        "no round completed between {} kills: the CLI never got far enough (slower start?)",
        tally.kills()
    );
    let (unique, orphans, complete_orphans) = verify(&server, &rows, &all_files, tally.kills());
    let resent = proxy.forwarded().saturating_sub(unique);
    // Every crash point this test arms must have fired at least once: a point that never
    // aborts a run (renamed, moved out of the path, never reached) would leave its window
    // untested while the run still passed.
    for point in ["insert-uncommitted", "create-answered", "patch-acked"] {
        assert!(
            tally.aborted.get(point).copied().unwrap_or(0) > 0,
            "crash point {point} never fired: armed {:?}, aborted {:?}",
            tally.armed,
            tally.aborted
        );
    }
    assert_resent_bounded(&proxy, resent, tally.kills());
    println!(
        "CLI torture: {} kills ({} SIGKILL at random instants, aborts at crash points {:?}), \
         {} runs that finished before their kill, {} rounds, {} files ({:.1} MiB unique), \
         {} journal rows; re-sent {:.2} MiB ({:.3} MiB per kill); orphans {} ({} complete); \
         {:.1} s",
        tally.kills(),
        tally.sigkill,
        tally.aborted,
        tally.finished,
        round + 1,
        all_files.len(),
        unique as f64 / 1048576.0,
        rows.len(),
        resent as f64 / 1048576.0,
        resent as f64 / 1048576.0 / tally.kills() as f64,
        orphans,
        complete_orphans,
        started.elapsed().as_secs_f64()
    );
}

/// The desktop app, killed with SIGKILL at random instants and launched again: every launch
/// resumes the queue by itself, and in the end every file is on the server once, byte-exact.
#[test]
fn app_survives_kills_and_resumes_on_every_launch() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    support::app::require_e2e_prerequisites();
    let wanted = env_num("TUSKER_TORTURE_APP_KILLS", 8) as usize;
    let mut rng = seeded_rng();
    let Fixture(server, proxy, _, data, home) = Fixture::new().proxied();
    let files_dir = tempfile::tempdir().unwrap();
    let mut round = 0;
    let mut current = write_round(files_dir.path(), round);
    let mut files = current.clone();
    {
        let store = tusker_core::journal::Store::open(&data.path().join("journal.sqlite")).unwrap();
        let secrets = tusker_core::profiles::secrets::Secrets::open(data.path());
        let mut s = tusker_core::AppSettings::load(&store).unwrap();
        s.bandwidth = 6 << 20;
        s.save(&store).unwrap();
        let profile = tusker_core::profiles::profile::Profile {
            name: "Desktop".into(),
            endpoint: proxy.endpoint(),
            chunk_size: Some(2 << 20),
            ..Default::default()
        };
        tusker_core::AppSettings::use_profile(&store, &secrets, &profile).unwrap();
    }
    let launch = |args: &[PathBuf]| -> Child {
        Command::new(support::app::app_bin())
            .args(args)
            .env("TUSKER_DATA_DIR", data.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("launching the app")
    };
    let journal = || {
        tusker_core::journal::Store::open(&data.path().join("journal.sqlite"))
            .unwrap()
            .list()
            .unwrap()
    };
    // Files go in on the command line until the journal has them all (a kill can land before
    // they are enqueued); after that the app resumes them by itself. A finished round is
    // followed by a new one.
    let enqueued = |current: &[PathBuf]| {
        let rows = journal();
        current.iter().all(|f| {
            rows.iter().any(|r| Path::new(&r.path) == f) || std::fs::metadata(f).unwrap().len() == 0
        })
    };
    let mut kills = 0;
    let mut launches = 0;
    let mut progress = Vec::new();
    while kills < wanted {
        let mut app = launch(if enqueued(&current) { &[] } else { &current });
        launches += 1;
        let delay = Duration::from_millis(rng.gen_range(800..3000));
        if wait_for(&mut app, delay).is_some() {
            panic!("the app exited by itself");
        }
        sigkill(&mut app);
        kills += 1;
        let rows = journal();
        progress.push(rows.iter().map(|r| r.acked_offset).sum::<u64>() >> 20);
        let stored = stored_bytes(&server);
        for r in &rows {
            if let Some(url) = &r.upload_url {
                assert_journal_not_ahead(&stored, url, r.acked_offset);
            }
        }
        let done = rows
            .iter()
            .all(|r| r.state == tusker_core::UploadState::Completed);
        if done && enqueued(&current) {
            round += 1;
            current = write_round(files_dir.path(), round);
            files.extend(current.clone());
        }
    }
    let mut app = launch(if enqueued(&current) { &[] } else { &current });
    launches += 1;
    support::wait_until("every upload completed", Duration::from_secs(120), || {
        enqueued(&current)
            && journal()
                .iter()
                .all(|r| r.state == tusker_core::UploadState::Completed)
    });
    sigkill(&mut app);
    let rows: Vec<serde_json::Value> = journal()
        .iter()
        .map(|r| {
            serde_json::json!({
                "state": r.state.as_str(),
                "upload_url": r.upload_url,
            })
        })
        .collect();
    assert!(
        round >= 1,
        "no round completed between {kills} kills: the app never got far enough (slower start?)"
    );
    let (unique, orphans, complete_orphans) = verify(&server, &rows, &files, kills);
    let resent = proxy.forwarded().saturating_sub(unique);
    assert_resent_bounded(&proxy, resent, kills);
    println!(
        "app torture: {kills} SIGKILLs over {launches} launches, {} rounds, {} files; MiB \
         acknowledged after each kill {progress:?}; re-sent {:.2} MiB; orphans {orphans} \
         ({complete_orphans} complete)",
        round + 1,
        files.len(),
        resent as f64 / 1048576.0
    );
}

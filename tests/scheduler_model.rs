//! Property test of the scheduler's state machine, on the real engine against the real
//! `@tus/server` (through the fault proxy): random sequences of user actions (pause, resume,
//! cancel, retry, remove, reorder, all-pause, all-resume, concurrency changes) interleaved with
//! server answers injected into the next PATCH (503, 423, 409, 404, cut connections) and
//! pauses of random length. After every step:
//! - no upload is lost or invented: the queue holds exactly what was added minus removed,
//!   in the journal and in the engine's view, and the states only a user action can leave
//!   (paused, cancelled, completed) agree between the two;
//! - positions increase in queue order;
//! - at most `concurrency` uploads are running; after the limit is lowered, the uploads
//!   already running go on, but none starts while the limit is reached, so the number
//!   running never grows above the larger of the limit and what ran at the previous check;
//! - the model predicts each upload's state from the actions alone: a pause makes it paused
//!   (unless it had finished on its own just before: completed or failed, which a pause
//!   does not change), a cancel cancelled, and it stays so until resumed or retried; an
//!   upload no action stopped is never shown paused or cancelled; a completed upload never
//!   changes state again;
//! - acknowledged bytes never exceed the size or go backwards within one server upload.
//!
//! At the end everything not cancelled is resumed and must complete byte-exact.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;
use support::proxy::{Action, FaultProxy};
use support::{write_file, TusServer};
use tusker_core::{AddRequest, AddResult, Engine, EngineConfig, UploadId, UploadState};

const SIZES: &[usize] = &[0, 1, 70_000, 200_000, 450_000, 700_000];

#[derive(Debug, Clone)]
enum Op {
    Pause(usize),
    Resume(usize),
    PauseAll,
    ResumeAll,
    Cancel(usize),
    Retry(usize),
    Remove(usize),
    Reorder(usize, usize),
    Concurrency(usize),
    /// The next PATCH gets this answer (0 = the connection is cut mid-body).
    Fault(u16),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..8usize).prop_map(Op::Pause),
        3 => (0..8usize).prop_map(Op::Resume),
        1 => Just(Op::PauseAll),
        1 => Just(Op::ResumeAll),
        2 => (0..8usize).prop_map(Op::Cancel),
        2 => (0..8usize).prop_map(Op::Retry),
        1 => (0..8usize).prop_map(Op::Remove),
        2 => (0..8usize, 0..8usize).prop_map(|(a, b)| Op::Reorder(a, b)),
        1 => (1..4usize).prop_map(Op::Concurrency),
        3 => prop::sample::select(vec![0u16, 503, 423, 409, 404]).prop_map(Op::Fault),
        4 => (0..120u64).prop_map(Op::Wait),
    ]
}

/// What the model expects of one upload, from the actions alone.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Anything the engine may do on its own (queued, uploading, waiting, done, failed),
    /// never a state only an action leads to (paused, cancelled).
    Free,
    /// Paused by the action of this step: paused, or completed or failed before the pause
    /// came (a pause leaves those as they are); the check settles it to one of the others.
    PausedNow,
    Paused,
    Cancelled,
}

/// The states an upload reaches without any action (no file is touched and no server asks
/// for credentials in this test).
fn engine_own(s: UploadState) -> bool {
    matches!(
        s,
        UploadState::Queued
            | UploadState::Uploading
            | UploadState::WaitingToRetry
            | UploadState::Completed
            | UploadState::Failed
    )
}

async fn run_case(server: &TusServer, proxy: &FaultProxy, ops: Vec<Op>) -> Result<(), String> {
    proxy.clear_rules();
    let files = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| write_file(files.path(), &format!("f{i}.bin"), n, rand::random()))
        .collect();
    let mut c = EngineConfig::new(data.path());
    c.concurrency = 2;
    c.bandwidth = 3 << 20;
    c.upload.chunk_size = Some(64 << 10);
    c.upload.stall_timeout = Duration::from_secs(2);
    c.upload.retry.base = Duration::from_millis(20);
    c.upload.retry.max_delay = Duration::from_millis(200);
    c.upload.retry.max_attempts = 4;
    let engine = Engine::open(c).await.unwrap();
    let res = engine
        .add(AddRequest {
            paths: paths.clone(),
            endpoint: proxy.endpoint(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ids: Vec<UploadId> = res
        .iter()
        .map(|r| match r {
            AddResult::Added { id, .. } => *id,
            other => panic!("{other:?}"),
        })
        .collect();
    let path_of: HashMap<UploadId, PathBuf> = ids.iter().copied().zip(paths).collect();
    let mut expect: HashMap<UploadId, Expect> = ids.iter().map(|id| (*id, Expect::Free)).collect();
    let mut completed: HashSet<UploadId> = HashSet::new();
    let mut acked: HashMap<UploadId, (Option<String>, u64)> = HashMap::new();
    let mut concurrency = 2usize;
    // The most uploads that may be running now: the limit, or more after it was lowered
    // while more ran (those go on; none starts until the number is under the limit).
    let mut may_run = concurrency;
    for (step, op) in ops.iter().enumerate() {
        let pick = |i: usize| (!ids.is_empty()).then(|| ids[i % ids.len()]);
        match *op {
            Op::Pause(i) => {
                if let Some(id) = pick(i) {
                    engine.pause(id).await.unwrap();
                    if expect[&id] == Expect::Free && !completed.contains(&id) {
                        expect.insert(id, Expect::PausedNow);
                    }
                }
            }
            Op::Resume(i) => {
                if let Some(id) = pick(i) {
                    engine.resume(id).await.unwrap();
                    if expect[&id] == Expect::Paused {
                        expect.insert(id, Expect::Free);
                    }
                }
            }
            Op::PauseAll => {
                engine.pause_all().await.unwrap();
                for id in &ids {
                    if expect[id] == Expect::Free && !completed.contains(id) {
                        expect.insert(*id, Expect::PausedNow);
                    }
                }
            }
            Op::ResumeAll => {
                engine.resume_all(false).await.unwrap();
                for id in &ids {
                    if expect[id] == Expect::Paused {
                        expect.insert(*id, Expect::Free);
                    }
                }
            }
            Op::Cancel(i) => {
                if let Some(id) = pick(i) {
                    engine.cancel(id).await.unwrap();
                    let s = state_of(&engine, id).await;
                    if s == UploadState::Completed {
                        completed.insert(id);
                    } else {
                        if s != UploadState::Cancelled {
                            return Err(format!("step {step}: cancel left {id} {s:?}"));
                        }
                        expect.insert(id, Expect::Cancelled);
                        acked.remove(&id);
                    }
                }
            }
            Op::Retry(i) => {
                if let Some(id) = pick(i) {
                    engine.retry(id).await.unwrap();
                    if expect[&id] != Expect::Free {
                        expect.insert(id, Expect::Free);
                    }
                }
            }
            Op::Remove(i) => {
                if let Some(id) = pick(i) {
                    engine.remove(id).await.unwrap();
                    ids.retain(|x| *x != id);
                    expect.remove(&id);
                    completed.remove(&id);
                }
            }
            Op::Reorder(i, to) => {
                if let Some(id) = pick(i) {
                    engine.reorder(id, to).await.unwrap();
                    let pos = ids.iter().position(|x| *x == id).unwrap();
                    ids.remove(pos);
                    ids.insert(to.min(ids.len()), id);
                }
            }
            Op::Concurrency(n) => {
                // Applied before the snapshot below (the engine takes commands in order).
                engine.set_concurrency(n).unwrap();
                concurrency = n;
            }
            Op::Fault(status) => {
                let action = if status == 0 {
                    Action::DropAfter(20_000)
                } else {
                    Action::Respond {
                        status,
                        headers: vec![],
                        body: String::new(),
                    }
                };
                proxy.once("PATCH", 0, action);
            }
            Op::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
        // Invariants.
        let snap = engine.snapshot().await.unwrap();
        let snap_ids: Vec<UploadId> = snap.iter().map(|v| v.id).collect();
        if snap_ids != ids {
            return Err(format!(
                "step {step} {op:?}: queue {snap_ids:?}, expected {ids:?}"
            ));
        }
        let journal: BTreeMap<UploadId, UploadState> = engine
            .store()
            .list()
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.state))
            .collect();
        let mut journal_ids: Vec<UploadId> = journal.keys().copied().collect();
        let mut model_ids = ids.clone();
        journal_ids.sort();
        model_ids.sort();
        if journal_ids != model_ids {
            return Err(format!(
                "step {step}: journal holds {journal_ids:?}, expected {model_ids:?}"
            ));
        }
        for (i, v) in snap.iter().enumerate() {
            if i > 0 && v.position <= snap[i - 1].position {
                return Err(format!(
                    "step {step}: positions out of queue order: {} at {}, after {}",
                    v.id,
                    v.position,
                    snap[i - 1].position
                ));
            }
            // States only a user action can leave must match the journal (the others can
            // move on between the two reads).
            let stable = matches!(
                v.state,
                UploadState::Paused | UploadState::Cancelled | UploadState::Completed
            );
            if stable && journal.get(&v.id) != Some(&v.state) {
                return Err(format!(
                    "step {step}: view says {:?}, journal {:?} for {}",
                    v.state,
                    journal.get(&v.id),
                    v.id
                ));
            }
            if completed.contains(&v.id) && v.state != UploadState::Completed {
                return Err(format!(
                    "step {step}: completed {} became {:?}",
                    v.id, v.state
                ));
            }
            if v.state == UploadState::Completed {
                completed.insert(v.id);
            }
            let e = expect[&v.id];
            let ok = match e {
                Expect::Free => engine_own(v.state),
                Expect::PausedNow => match v.state {
                    UploadState::Paused => {
                        expect.insert(v.id, Expect::Paused);
                        true
                    }
                    // It finished on its own before the pause reached it.
                    UploadState::Completed | UploadState::Failed => {
                        expect.insert(v.id, Expect::Free);
                        true
                    }
                    _ => false,
                },
                Expect::Paused => v.state == UploadState::Paused,
                Expect::Cancelled => v.state == UploadState::Cancelled,
            };
            if !ok {
                return Err(format!(
                    "step {step} {op:?}: {} expected {e:?}, is {:?}",
                    v.id, v.state
                ));
            }
            if v.acked > v.size {
                return Err(format!(
                    "step {step}: {} acked {} of {}",
                    v.id, v.acked, v.size
                ));
            }
            let prev = acked.insert(v.id, (v.upload_url.clone(), v.acked));
            if let Some((url, before)) = prev {
                if url == v.upload_url && v.upload_url.is_some() && v.acked < before {
                    return Err(format!(
                        "step {step}: {} went back from {before} to {}",
                        v.id, v.acked
                    ));
                }
            }
        }
        let running = snap
            .iter()
            .filter(|v| {
                matches!(
                    v.state,
                    UploadState::Uploading | UploadState::WaitingToRetry
                )
            })
            .count();
        // Uploads start only while fewer than the limit run: the number running grows
        // above the limit only if the limit was lowered under it, and then it can only
        // fall until it is under the limit again.
        if running > may_run.max(concurrency) {
            return Err(format!(
                "step {step} {op:?}: {running} running with concurrency {concurrency} \
                 (at most {may_run} could still be running)"
            ));
        }
        may_run = running.max(concurrency);
    }
    // Everything not cancelled completes once resumed; cancelled ones are gone from the server.
    proxy.clear_rules();
    engine.set_concurrency(3).unwrap();
    engine.resume_all(true).await.unwrap();
    for id in ids.clone() {
        let v = support::wait_view(&engine, id, "the end", Duration::from_secs(60), |v| {
            v.state.is_terminal() && v.state != UploadState::Failed
                || v.state == UploadState::Failed
        })
        .await;
        if expect[&id] == Expect::Cancelled {
            if v.state != UploadState::Cancelled {
                return Err(format!("cancelled {id} ended {:?}", v.state));
            }
            continue;
        }
        if v.state == UploadState::Failed {
            // A fault may have used up the small retry budget; a retry must finish it.
            engine.retry(id).await.unwrap();
        }
        let v = support::wait_view(&engine, id, "completed", Duration::from_secs(60), |v| {
            v.state == UploadState::Completed || v.state == UploadState::Failed
        })
        .await;
        if v.state != UploadState::Completed {
            return Err(format!("{id} ended {:?}: {:?}", v.state, v.error));
        }
        let stored = server.stored(&support::url_of(&engine, id));
        if stored != std::fs::read(&path_of[&id]).unwrap() {
            return Err(format!("{id}: bytes differ"));
        }
    }
    engine.shutdown().await.unwrap();
    Ok(())
}

async fn state_of(engine: &Engine, id: UploadId) -> UploadState {
    engine
        .snapshot()
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.id == id)
        .unwrap()
        .state
}

#[test]
fn no_sequence_of_actions_and_answers_loses_an_upload_or_reaches_an_illegal_state() {
    let server = TusServer::start();
    let proxy = FaultProxy::start(server.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = std::env::var("TUSKER_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let steps = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&prop::collection::vec(op(), 5..40), |ops| {
        steps.fetch_add(ops.len(), std::sync::atomic::Ordering::Relaxed);
        rt.block_on(run_case(&server, &proxy, ops))
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!("scheduler model: {cases} sequences, {} actions and answers (with shrinking runs), every invariant held", steps.into_inner());
}

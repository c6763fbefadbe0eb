//! The journal against SQLite files in temporary folders.

use super::migrations::MIGRATIONS;
use super::*;

/// Runs a worker write (committed by a task of this runtime) to its end.
fn wait<T>(write: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(write)
}

#[test]
fn the_journal_counts_retries_time_uploading_and_keeps_the_last_error() {
    let s = Store::open_in_memory().unwrap();
    let id = s.insert(&new("/a/x.bin", "fp")).unwrap().id;
    s.set_state(id, UploadState::Uploading, None).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(35));
    s.set_state(id, UploadState::WaitingToRetry, Some("connection reset"))
        .unwrap();
    s.set_state(id, UploadState::Uploading, None).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(35));
    s.set_state(id, UploadState::WaitingToRetry, Some("502 Bad Gateway"))
        .unwrap();
    s.set_state(id, UploadState::Uploading, None).unwrap();
    s.set_state(id, UploadState::Completed, None).unwrap();
    let r = s.get(id).unwrap();
    assert_eq!(r.retries, 2);
    assert_eq!(r.error, None);
    assert_eq!(r.last_error.as_deref(), Some("502 Bad Gateway"));
    // Two spells of 35 ms; each can lose a millisecond to SQLite's 'now' going through
    // julianday and back (a CI run counted 59 ms for two spells of 30 ms).
    assert!(r.busy_ms >= 60 && r.busy_ms < 5_000, "{} ms", r.busy_ms);
    assert!(r.average_speed().is_some());
    // Cleared: out of the queue's list, still in the history and the full list.
    assert_eq!(s.clear_completed(&[id]).unwrap(), 1);
    assert_eq!(s.clear_completed(&[id]).unwrap(), 0, "once");
    assert!(s.list_queue().unwrap().is_empty());
    assert_eq!(s.history(5).unwrap()[0].id, id);
    assert_eq!(s.list().unwrap().len(), 1);
}

#[test]
fn uploads_from_before_destinations_get_theirs_when_the_journal_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let s = Store::open(&path).unwrap();
    let profile = Profile {
        name: "t".into(),
        endpoint: "http://127.0.0.1:1/files".into(),
        headers: [("X-Tenant".to_string(), "acme".to_string())].into(),
        ..Default::default()
    };
    let pid = s.save_profile(&profile).unwrap();
    let a = s
        .insert(&NewUpload {
            profile_id: Some(pid),
            headers: Default::default(),
            ..new("/a/x.bin", "fp1")
        })
        .unwrap();
    let want = a.destination.clone().unwrap();
    assert_eq!(
        want,
        s.destination(&a.endpoint, &a.metadata, Some(pid), &BTreeMap::new())
            .unwrap()
    );
    // An older build wrote no destination.
    s.conn()
        .execute("UPDATE uploads SET destination = NULL", [])
        .unwrap();
    drop(s);
    let s = Store::open(&path).unwrap();
    assert_eq!(s.get(a.id).unwrap().destination, Some(want.clone()));
    assert_eq!(
        s.completed_candidates("fp1", &want, 100).unwrap().len(),
        0,
        "not completed"
    );
    assert_eq!(
        s.unfinished_candidates("fp1", &want, 100, "/b").unwrap()[0].id,
        a.id
    );
}

fn new(path: &str, fp: &str) -> NewUpload {
    NewUpload {
        path: path.into(),
        name: path.rsplit('/').next().unwrap().into(),
        stamp: FileStamp {
            size: 100,
            mtime_ns: 1,
            ino: 7,
            ctime_ns: 2,
        },
        fingerprint: fp.into(),
        endpoint: "http://127.0.0.1:1/files".into(),
        metadata: BTreeMap::new(),
        headers: [("Authorization".to_string(), "secret".to_string())].into(),
        chunk_size: None,
        state: UploadState::Queued,
        profile_id: None,
        upload_url: None,
    }
}

#[test]
fn roundtrip_and_lookup() {
    let s = Store::open_in_memory().unwrap();
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let a = s.insert(&new("/a/x.bin", "fp1")).unwrap();
    let b = s.insert(&new("/a/y.bin", "fp2")).unwrap();
    assert_eq!((a.position, b.position), (1, 2));
    let epoch = s.bump_epoch(a.id).unwrap();
    wait(s.set_url(a.id, epoch, "http://h/files/1", Some(5), false)).unwrap();
    let mut h = crate::identity::proof::PrefixHasher::new();
    h.update(&[1u8; 40]);
    wait(s.set_offset(a.id, epoch, 40, None, &h.delta())).unwrap();
    assert_eq!(s.proof(a.id).unwrap(), h.proof());
    // A stopped worker's late write is refused, proof and all.
    s.bump_epoch(a.id).unwrap();
    let mut h2 = h.clone();
    h2.update(&[2u8; 10]);
    assert!(matches!(
        wait(s.set_offset(a.id, epoch, 50, None, &h2.delta())),
        Err(crate::error::Error::Interrupted)
    ));
    let r = s.get(a.id).unwrap();
    assert_eq!(r.acked_offset, 40);
    assert_eq!(r.expires_at, Some(5));
    assert_eq!(r.headers.get("Authorization").unwrap(), "secret");
    assert_eq!(s.proof(a.id).unwrap(), h.proof());
    let found = s
        .unfinished_candidates("fp1", a.destination.as_deref().unwrap(), 100, "/elsewhere")
        .unwrap();
    assert_eq!(found[0].id, a.id);
    let by_path = s
        .unfinished_candidates("other", a.destination.as_deref().unwrap(), 5, "/a/x.bin")
        .unwrap();
    assert_eq!(by_path[0].id, a.id);
    s.set_state(a.id, UploadState::Completed, None).unwrap();
    assert!(s
        .unfinished_candidates("fp1", a.destination.as_deref().unwrap(), 100, "/a/x.bin")
        .unwrap()
        .is_empty());
    s.set_positions(&[b.id, a.id]).unwrap();
    assert_eq!(s.list().unwrap()[0].id, b.id);
    // The offset can never exceed the size: the journal refuses it.
    assert!(wait(s.set_offset(b.id, 0, 101, None, &h.delta())).is_err());
    s.delete(a.id).unwrap();
    assert!(s.get(a.id).is_err());
}

/// Another program holds the journal's write lock: the first write waits [`BUSY_WAIT`]
/// and fails, the writes after it fail at once instead of holding the shared connection
/// through a wait each, and once the lock is gone a write goes through without waiting
/// for the pause to end.
#[test]
fn a_journal_locked_elsewhere_is_waited_for_once_then_tried_without_waiting() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let s = Store::open(&path).unwrap();
    let a = s.insert(&new("/a/x.bin", "fp1")).unwrap();
    let epoch = s.bump_epoch(a.id).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    fn busy<T>(r: &Result<T>) -> bool {
        matches!(r, Err(crate::error::Error::JournalBusy(_)))
    }
    let t = Instant::now();
    let first = s.set_state(a.id, UploadState::Paused, None);
    let waited = t.elapsed();
    assert!(busy(&first), "{first:?}");
    assert!(waited >= BUSY_WAIT, "gave up after {waited:?}");
    let t = Instant::now();
    let group = wait(s.set_url(a.id, epoch, "http://h/files/1", None, false));
    let run = s.begin_run(a.id, UploadState::Uploading).map(|_| ());
    let state = s.set_state(a.id, UploadState::Paused, None);
    let quick = t.elapsed();
    assert!(
        busy(&group) && busy(&run) && busy(&state),
        "{group:?} {run:?} {state:?}"
    );
    // Any of the three waiting out the lock takes BUSY_WAIT (500 ms) alone; failing at
    // once takes about a millisecond each: one BUSY_WAIT is a wide margin on a busy
    // machine and still catches a single wait.
    assert!(
        quick < BUSY_WAIT,
        "three writes took {quick:?}: one waited for the lock"
    );
    assert!(s.busy.paused(), "writes are in the no-wait pause");
    other.execute_batch("COMMIT").unwrap();
    let t = Instant::now();
    wait(s.set_url(a.id, epoch, "http://h/files/1", None, false)).unwrap();
    assert!(t.elapsed() < BUSY_PAUSE, "{:?}", t.elapsed());
    assert_eq!(
        s.get(a.id).unwrap().upload_url.as_deref(),
        Some("http://h/files/1")
    );
}

#[test]
fn a_run_starts_in_one_transaction_and_completion_sticks() {
    let s = Store::open_in_memory().unwrap();
    let a = s.insert(&new("/a/x.bin", "fp1")).unwrap();
    let (epoch, rec) = s.begin_run(a.id, UploadState::Uploading).unwrap();
    assert_eq!(rec.state, UploadState::Uploading);
    assert_eq!(s.get(a.id).unwrap().state, UploadState::Uploading);
    wait(s.set_url(a.id, epoch, "http://h/files/1", None, false)).unwrap();
    let mut h = crate::identity::proof::PrefixHasher::new();
    h.update(&[3u8; 100]);
    wait(s.set_final_offset(a.id, epoch, 100, None, &h.delta(), &h.content_hash())).unwrap();
    // The worker's last write completes it; a state written after it is refused.
    let r = s.get(a.id).unwrap();
    assert_eq!((r.state, r.acked_offset), (UploadState::Completed, 100));
    assert_eq!(r.content_hash, Some(h.content_hash()));
    assert_eq!(
        s.set_state(a.id, UploadState::Queued, None).unwrap(),
        UploadState::Completed
    );
    let r = s.get(a.id).unwrap();
    assert_eq!(r.state, UploadState::Completed);
    assert_eq!(
        s.completed_candidates("fp1", a.destination.as_deref().unwrap(), 100)
            .unwrap()[0]
            .id,
        a.id
    );
    assert!(r.completed_at.is_some());
    // A late report of the run (waiting, uploading) or a re-written state cannot undo it.
    assert_eq!(
        s.set_state(a.id, UploadState::WaitingToRetry, Some("503"))
            .unwrap(),
        UploadState::Completed
    );
    assert_eq!(s.get(a.id).unwrap().state, UploadState::Completed);
    // A stopped run cannot complete.
    let b = s.insert(&new("/a/y.bin", "fp2")).unwrap();
    let (old, _) = s.begin_run(b.id, UploadState::Uploading).unwrap();
    s.bump_epoch(b.id).unwrap();
    assert!(matches!(
        wait(s.set_final_offset(b.id, old, 100, None, &h.delta(), "x")),
        Err(crate::error::Error::Interrupted)
    ));
    assert!(matches!(
        s.set_state(999, UploadState::Queued, None),
        Err(crate::error::Error::UnknownUpload(999))
    ));
}

#[test]
fn runs_begin_together_and_a_missing_upload_fails_alone() {
    let s = Store::open_in_memory().unwrap();
    let a = s.insert(&new("/a/x.bin", "fp1")).unwrap();
    let b = s.insert(&new("/a/y.bin", "fp2")).unwrap();
    let (first, _) = s.begin_run(a.id, UploadState::Uploading).unwrap();
    let begun = s
        .begin_runs(&[
            (a.id, UploadState::Uploading),
            (999, UploadState::Uploading),
            (b.id, UploadState::Uploading),
        ])
        .unwrap();
    assert_eq!(begun[0].as_ref().unwrap().0, first + 1);
    assert!(matches!(
        begun[1],
        Err(crate::error::Error::UnknownUpload(999))
    ));
    let (_, rec) = begun[2].as_ref().unwrap();
    assert_eq!((rec.id, rec.state), (b.id, UploadState::Uploading));
    assert_eq!(s.get(b.id).unwrap().state, UploadState::Uploading);
}

#[test]
fn a_remembered_profile_follows_saves_renames_removals_and_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let s = Store::open(&path).unwrap();
    let mut p = Profile {
        name: "work".into(),
        endpoint: "http://a/files".into(),
        ..Profile::default()
    };
    let id = s.save_profile(&p).unwrap();
    assert_eq!(s.profile(id).unwrap().unwrap().endpoint, "http://a/files");
    p.endpoint = "http://b/files".into();
    s.save_profile(&p).unwrap();
    assert_eq!(s.profile(id).unwrap().unwrap().endpoint, "http://b/files");
    s.rename_profile("work", "home").unwrap();
    assert_eq!(s.profile(id).unwrap().unwrap().name, "home");
    // Another process (the CLI beside the app) saves it: seen once the engine's poll
    // tells the store to forget.
    p.name = "home".into();
    p.endpoint = "http://c/files".into();
    Store::open(&path).unwrap().save_profile(&p).unwrap();
    assert_eq!(s.profile(id).unwrap().unwrap().endpoint, "http://b/files");
    s.forget_profiles();
    assert_eq!(s.profile(id).unwrap().unwrap().endpoint, "http://c/files");
    assert!(s.delete_profile("home").unwrap());
    assert_eq!(s.profile(id).unwrap(), None);
    // A profile made after it never takes its id: uploads, watches and destinations
    // that named the removed one must not find a stranger under it.
    let again = s.save_profile(&p).unwrap();
    assert!(again > id, "{again} reuses or precedes {id}");
    let other = Store::open(&path)
        .unwrap()
        .save_profile(&Profile {
            name: "x".into(),
            ..p.clone()
        })
        .unwrap();
    assert_eq!(other, again + 1);
}

#[test]
fn a_chunk_size_learned_from_413_only_shrinks() {
    let s = Store::open_in_memory().unwrap();
    let ep = "http://127.0.0.1:1/files";
    assert_eq!(s.learned_chunk(ep).unwrap(), None);
    s.learn_chunk(ep, 4 << 20).unwrap();
    s.learn_chunk(ep, 8 << 20).unwrap();
    assert_eq!(s.learned_chunk(ep).unwrap(), Some(4 << 20));
    s.learn_chunk(ep, 1 << 20).unwrap();
    assert_eq!(s.learned_chunk(ep).unwrap(), Some(1 << 20));
}

#[test]
fn migrations_are_idempotent_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("j.sqlite");
    let s = Store::open(&p).unwrap();
    s.insert(&new("/x", "f")).unwrap();
    drop(s);
    let s = Store::open(&p).unwrap();
    assert_eq!(s.list().unwrap().len(), 1);
}

#[test]
fn opening_while_another_process_creates_the_journal_is_safe() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("j.sqlite");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let s = Store::open(&p).expect("open while others open");
                    s.list().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn corrupt_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("j.sqlite");
    std::fs::write(&p, b"this is not a database, just some text that is long enough to matter......................................").unwrap();
    let err = Store::open(&p).err().expect("must fail");
    assert!(err.to_string().contains("journal is damaged"), "{err}");
}

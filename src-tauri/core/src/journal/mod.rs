//! The journal: every upload's identity, server URL and confirmed offset in SQLite, so a crash
//! or `kill -9` loses at most the bytes in flight.
//!
//! WAL mode with `synchronous=NORMAL`: a committed transaction survives a process crash (the
//! WAL is written before commit returns); only an OS crash could lose the last commits, which
//! costs re-sending bytes, never correctness, because the server's HEAD is the truth.
//! The connection sits behind a std mutex that is never held across an `.await`.

pub mod lock;
pub mod record;
pub mod settings;

mod migrations;
mod parts;
mod profiles;
mod uploads;

use migrations::{backfill_destinations, migrate};
pub use parts::PartRow;
pub use uploads::NewUpload;
use uploads::{digest, epoch_write, write_proof};

use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Result;
use crate::identity::fingerprint::FileStamp;
use crate::identity::proof::{Digest32, PrefixProof, ProofDelta};
use crate::journal::record::{UploadId, UploadRecord, UploadState};
use crate::profiles::profile::{Profile, ProfileId};
use crate::tus::protocol::ServerCaps;

/// How long a journal write waits for a lock held by another program before it fails with
/// [`crate::error::Error::JournalBusy`].
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// After a write found the journal locked by another program, writes try once without
/// waiting for this long (the engine leaves the journal alone as long).
pub(crate) const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the journal was lately found locked by another program. The engine and every
/// worker share one connection: had each write waited [`BUSY_WAIT`] while holding it, the
/// writes of four retrying workers kept it held nearly all the time and the engine stopped
/// answering. Meanwhile a write tries once; the first after the pause waits again.
#[derive(Default)]
struct BusyGate {
    until: Mutex<Option<std::time::Instant>>,
    /// What the connection's busy timeout is set to now (changed under the connection's lock).
    quick: std::sync::atomic::AtomicBool,
}

impl BusyGate {
    fn paused(&self) -> bool {
        let until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|t| std::time::Instant::now() < t)
    }

    fn hit(&self) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(std::time::Instant::now() + BUSY_PAUSE);
    }

    fn note<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(crate::error::Error::JournalBusy(_)) = &r {
            self.hit();
        }
        r
    }
}

/// Handle to the journal; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    memo: Arc<Mutex<Memo>>,
    /// Worker writes waiting for the next group commit.
    waiting: Arc<Mutex<Vec<GroupWrite>>>,
    busy: Arc<BusyGate>,
}

/// A worker write run inside its group's transaction. It may fail with `Interrupted` only
/// before it wrote anything (see [`epoch_write`]).
type WriteWork = Box<dyn FnOnce(&Connection) -> Result<()> + Send>;

struct GroupWrite {
    work: WriteWork,
    done: tokio::sync::oneshot::Sender<Result<()>>,
}

/// Commits the writes in one transaction. A write refused by its epoch check changed
/// nothing and fails alone; any other failure may have left a write half done, so the whole
/// group is rolled back and every write fails with it (their workers retry).
fn commit_together(conn: &mut Connection, works: Vec<WriteWork>) -> Vec<Result<()>> {
    use crate::error::Error;
    let n = works.len();
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return every(n, &e.into()),
    };
    let mut results = Vec::with_capacity(n);
    for work in works {
        match work(&tx) {
            Ok(()) => results.push(Ok(())),
            Err(Error::Interrupted) => results.push(Err(Error::Interrupted)),
            // Dropping the transaction rolls it back.
            Err(e) => return every(n, &e),
        }
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => every(n, &e.into()),
    }
}

/// One failure of the whole group, as each write's own error.
fn every(n: usize, e: &crate::error::Error) -> Vec<Result<()>> {
    use crate::error::Error;
    (0..n)
        .map(|_| {
            Err(match e {
                Error::Store(rusqlite::Error::SqliteFailure(code, message)) => {
                    Error::Store(rusqlite::Error::SqliteFailure(*code, message.clone()))
                }
                Error::JournalFull(m) => Error::JournalFull(m.clone()),
                Error::JournalBusy(m) => Error::JournalBusy(m.clone()),
                Error::JournalCorrupt(m) => Error::JournalCorrupt(m.clone()),
                other => std::io::Error::other(other.to_string()).into(),
            })
        })
        .collect()
}

/// Rows every upload reads and that rarely change, kept in memory: with 100,000 small files
/// each read was a statement per upload. This process's writes update them; profiles saved by
/// another process (the CLI beside the app) are noticed by the engine's poll, which calls
/// [`Store::forget_profiles`].
#[derive(Default)]
struct Memo {
    profiles: HashMap<ProfileId, Option<Profile>>,
    /// Bumped by every forget, so a read that raced a write is not kept.
    profiles_generation: u64,
    learned_chunks: HashMap<String, Option<u64>>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the journal at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        // Only this user may read the journal (SQLite gives its WAL and shared-memory files
        // the database file's mode; older ones are set too).
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            if p.exists() {
                crate::platform::owner_only(&p, 0o600);
            }
        }
        Self::init(conn).map_err(|e| match e {
            crate::error::Error::JournalCorrupt(d) => {
                crate::error::Error::JournalCorrupt(format!("{}: {d}", path.display()))
            }
            e => e,
        })
    }

    /// The journal of the data dir `dir`, creating the folder (only this user may enter it)
    /// when it is new: `tusker-cli profile set` may be the first command on a machine.
    pub fn open_in(dir: &Path) -> Result<Store> {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            crate::platform::owner_only(dir, 0o700);
        }
        Self::open(&dir.join("journal.sqlite"))
    }

    /// Leaves no copy of deleted content in the journal's files: the write-ahead log is
    /// written into the database and emptied, and the database rebuilt without free pages.
    pub fn scrub(&self) -> Result<()> {
        let conn = self.conn();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        conn.execute_batch("VACUUM")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// A private in-memory journal, for tests.
    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
        // Only another program can hold the journal's lock (this process has one connection,
        // and one process owns a data dir). Waiting longer would freeze the engine, which
        // shares this connection, while such a program holds on: fail the write quickly and
        // let the caller try it again later.
        conn.busy_timeout(BUSY_WAIT)?;
        // Hot statements (offset, state, lookups) are prepared once, not parsed per call.
        conn.set_prepared_statement_cache_capacity(64);
        // SQLite answers "locked" without waiting in a few cases (another process switching a
        // new journal to WAL, or running WAL recovery): retry those for a while too.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Self::prepare(&mut conn) {
                Err(crate::error::Error::JournalBusy(_))
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e),
                Ok(()) => break,
            }
        }
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            memo: Arc::default(),
            waiting: Arc::default(),
            busy: Arc::default(),
        })
    }

    fn prepare(conn: &mut Connection) -> Result<()> {
        // Read the header first: a file that is not a database fails here with a clear error.
        let _: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Freed content is overwritten with zeros: a secret moved out of a row (to the
        // keyring) leaves no copy in the file's free space.
        conn.pragma_update(None, "secure_delete", "ON")?;
        migrate(conn)?;
        backfill_destinations(conn)
    }

    fn memo(&self) -> MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn waiting(&self) -> MutexGuard<'_, Vec<GroupWrite>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is still safe to use.
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let quick = self.busy.paused();
        if self
            .busy
            .quick
            .swap(quick, std::sync::atomic::Ordering::Relaxed)
            != quick
        {
            let wait = if quick {
                std::time::Duration::ZERO
            } else {
                BUSY_WAIT
            };
            if let Err(e) = conn.busy_timeout(wait) {
                tracing::warn!(error = %e, "could not set the journal's busy timeout");
            }
        }
        conn
    }

    /// The schema version, for diagnostics and tests.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<()> {
        let n = self.conn().prepare_cached(sql)?.execute(p)?;
        if n == 0 {
            return Err(rusqlite::Error::QueryReturnedNoRows.into());
        }
        Ok(())
    }

    /// Runs a worker write in one transaction: `sql` (which must carry `epoch = ?2`), then
    /// `more`. A stopped worker's write changes nothing and is `Interrupted`.
    fn epoch_tx(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        more: impl FnOnce(&Connection) -> Result<()>,
    ) -> Result<()> {
        let mut conn = self.conn();
        self.epoch_tx_on(&mut conn, sql, p, more)
    }

    /// [`Self::epoch_tx`] on the disk before it returns, through a power loss too (the WAL
    /// is synced on this commit): for a write a request that is about to go out rests on.
    fn epoch_tx_durable(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        more: impl FnOnce(&Connection) -> Result<()>,
    ) -> Result<()> {
        let mut conn = self.conn();
        conn.pragma_update(None, "synchronous", "FULL")?;
        let written = self.epoch_tx_on(&mut conn, sql, p, more);
        let back = conn.pragma_update(None, "synchronous", "NORMAL");
        written?;
        Ok(back?)
    }

    fn epoch_tx_on(
        &self,
        conn: &mut Connection,
        sql: &str,
        p: impl rusqlite::Params,
        more: impl FnOnce(&Connection) -> Result<()>,
    ) -> Result<()> {
        let written = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            epoch_write(&tx, sql, p, more)?;
            tx.commit()?;
            Ok(())
        })();
        self.busy.note(written)
    }

    /// Runs `work` in one transaction with the other worker writes made in the same turn of
    /// the event loop (group commit), and returns once it is committed: exactly-once rests
    /// on that. With 100,000 small files in flight 16 at a time, a group holds about 8 writes
    /// and the run took 8% less time. (Committing on a writer thread or the blocking pool
    /// instead cost more in wake-ups between threads than it saved: 15-20% slower.)
    async fn group_write(&self, work: WriteWork) -> Result<()> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let first = {
            let mut waiting = self.waiting();
            waiting.push(GroupWrite { work, done });
            waiting.len() == 1
        };
        if first {
            let store = self.clone();
            tokio::spawn(async move {
                // Let the other ready workers add theirs first.
                tokio::task::yield_now().await;
                store.commit_waiting();
            });
        }
        answer.await.unwrap_or_else(|_| {
            Err(std::io::Error::other("the journal's group commit was dropped").into())
        })
    }

    fn commit_waiting(&self) {
        let batch = std::mem::take(&mut *self.waiting());
        let (works, answers): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|w| (w.work, w.done)).unzip();
        let results = commit_together(&mut self.conn(), works);
        if results
            .iter()
            .any(|r| matches!(r, Err(crate::error::Error::JournalBusy(_))))
        {
            self.busy.hit();
        }
        for (answer, result) in answers.into_iter().zip(results) {
            let _ = answer.send(result);
        }
    }

    /// Records the server URL of a freshly created upload (replacing a lost or expired one);
    /// it holds nothing yet, so nothing is proven. Written before the first PATCH. Worker
    /// write: only within `epoch`.
    pub async fn set_url(
        &self,
        id: UploadId,
        epoch: i64,
        url: &str,
        expires_at: Option<i64>,
        recreated: bool,
    ) -> Result<()> {
        let url = url.to_owned();
        let now = now_secs();
        self.group_write(Box::new(move |tx| {
            epoch_write(
                tx,
                "UPDATE uploads SET upload_url = ?3, acked_offset = 0, expires_at = ?4,
                 recreated = recreated + ?5, partial_sha256 = NULL, updated_at = ?6
                 WHERE id = ?1 AND epoch = ?2",
                params![id, epoch, url, expires_at, recreated as i64, now],
                |tx| {
                    tx.prepare_cached("DELETE FROM sent_blocks WHERE upload_id = ?1")?
                        .execute([id])?;
                    Ok(())
                },
            )
        }))
        .await
    }

    /// Records a server-confirmed offset with the proof of the bytes below it. Worker write:
    /// only within `epoch`.
    pub async fn set_offset(
        &self,
        id: UploadId,
        epoch: i64,
        offset: u64,
        expires_at: Option<i64>,
        proof: &ProofDelta,
    ) -> Result<()> {
        let proof = proof.clone();
        let now = now_secs();
        self.group_write(Box::new(move |tx| {
            epoch_write(
                tx,
                "UPDATE uploads SET acked_offset = ?3, expires_at = COALESCE(?4, expires_at), updated_at = ?5
                 WHERE id = ?1 AND epoch = ?2",
                params![id, epoch, offset as i64, expires_at, now],
                |tx| write_proof(tx, id, &proof),
            )
        }))
        .await
    }

    /// Records that the server holds every byte: the final offset, its proof, the hash of
    /// the whole content and the `completed` state together (one transaction per finished
    /// file, not two). Worker write: only within `epoch`.
    pub async fn set_final_offset(
        &self,
        id: UploadId,
        epoch: i64,
        offset: u64,
        expires_at: Option<i64>,
        proof: &ProofDelta,
        content_hash: &str,
    ) -> Result<()> {
        let proof = proof.clone();
        let content_hash = content_hash.to_owned();
        let now = now_secs();
        self.group_write(Box::new(move |tx| {
            epoch_write(
                tx,
                "UPDATE uploads SET acked_offset = ?3, expires_at = COALESCE(?4, expires_at),
                 updated_at = ?5, content_hash = ?6, state = ?7, error = NULL, asks_host = NULL,
                 completed_at = ?5 WHERE id = ?1 AND epoch = ?2",
                params![
                    id,
                    epoch,
                    offset as i64,
                    expires_at,
                    now,
                    content_hash,
                    UploadState::Completed.as_str()
                ],
                |tx| write_proof(tx, id, &proof),
            )
        }))
        .await
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;

//! The journal: every upload's identity, server URL and confirmed offset in SQLite, so a crash
//! or `kill -9` loses at most the bytes in flight.
//!
//! WAL mode with `synchronous=NORMAL`: a committed transaction survives a process crash (the
//! WAL is written before commit returns); only an OS crash could lose the last commits, which
//! costs re-sending bytes, never correctness, because the server's HEAD is the truth.
//! The connection sits behind a std mutex that is never held across an `.await`.

use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Result;
use crate::model::{ServerCaps, UploadId, UploadRecord, UploadState};

/// Versioned schema migrations; entry N moves `user_version` from N to N+1. Never edit a
/// released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE endpoints (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        caps TEXT,
        checked_at INTEGER
    );
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY,
        position INTEGER NOT NULL,
        path TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size >= 0),
        mtime_ns INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        endpoint_id INTEGER NOT NULL REFERENCES endpoints(id),
        upload_url TEXT,
        acked_offset INTEGER NOT NULL DEFAULT 0 CHECK (acked_offset >= 0 AND acked_offset <= size),
        state TEXT NOT NULL,
        error TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        headers TEXT NOT NULL DEFAULT '{}',
        chunk_size INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        completed_at INTEGER,
        expires_at INTEGER,
        recreated INTEGER NOT NULL DEFAULT 0,
        -- Bumped whenever a worker starts or is stopped; worker writes carry the epoch they
        -- started with, so a stopped worker can never overwrite what came after it.
        epoch INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX uploads_by_fingerprint ON uploads (fingerprint, endpoint_id);
    CREATE INDEX uploads_by_position ON uploads (position);
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
];

/// How long a journal write waits for a lock held by another program before it fails with
/// [`crate::error::Error::JournalBusy`].
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Handle to the journal; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

/// The fields of an upload that the caller decides when enqueuing.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub path: String,
    pub name: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub fingerprint: String,
    pub endpoint: String,
    pub metadata: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub chunk_size: Option<u64>,
    pub state: UploadState,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const SELECT: &str =
    "SELECT u.id, u.position, u.path, u.name, u.size, u.mtime_ns, u.fingerprint, e.url,
    u.upload_url, u.acked_offset, u.state, u.error, u.metadata, u.headers, u.chunk_size,
    u.created_at, u.updated_at, u.completed_at, u.expires_at, u.recreated
    FROM uploads u JOIN endpoints e ON e.id = u.endpoint_id";

/// One upload by id, on a connection or inside a transaction.
fn record(conn: &Connection, id: UploadId) -> Result<UploadRecord> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE u.id = ?1"))?;
    let rec = stmt.query_row([id], row_to_record).optional()?;
    rec.ok_or(crate::error::Error::UnknownUpload(id))
}

fn row_to_record(r: &Row<'_>) -> rusqlite::Result<UploadRecord> {
    let meta: String = r.get(12)?;
    let headers: String = r.get(13)?;
    Ok(UploadRecord {
        id: r.get(0)?,
        position: r.get(1)?,
        path: r.get(2)?,
        name: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        mtime_ns: r.get(5)?,
        fingerprint: r.get(6)?,
        endpoint: r.get(7)?,
        upload_url: r.get(8)?,
        acked_offset: r.get::<_, i64>(9)? as u64,
        state: UploadState::parse(&r.get::<_, String>(10)?),
        error: r.get(11)?,
        metadata: serde_json::from_str(&meta).unwrap_or_default(),
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        chunk_size: r.get::<_, Option<i64>>(14)?.map(|v| v as u64),
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
        completed_at: r.get(17)?,
        expires_at: r.get(18)?,
        recreated: r.get(19)?,
    })
}

impl Store {
    /// Opens (creating if needed) the journal at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        Self::init(conn).map_err(|e| match e {
            crate::error::Error::JournalCorrupt(d) => {
                crate::error::Error::JournalCorrupt(format!("{}: {d}", path.display()))
            }
            e => e,
        })
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
        })
    }

    fn prepare(conn: &mut Connection) -> Result<()> {
        // Read the header first: a file that is not a database fails here with a clear error.
        let _: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(conn)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The schema version, for diagnostics and tests.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn endpoint_id(conn: &Connection, url: &str) -> Result<i64> {
        conn.execute(
            "INSERT INTO endpoints (url) VALUES (?1) ON CONFLICT(url) DO NOTHING",
            [url],
        )?;
        Ok(
            conn.query_row("SELECT id FROM endpoints WHERE url = ?1", [url], |r| {
                r.get(0)
            })?,
        )
    }

    /// Remembers what OPTIONS said about an endpoint.
    pub fn save_caps(&self, url: &str, caps: &ServerCaps) -> Result<()> {
        let conn = self.conn();
        let id = Self::endpoint_id(&conn, url)?;
        conn.execute(
            "UPDATE endpoints SET caps = ?1, checked_at = ?2 WHERE id = ?3",
            params![
                serde_json::to_string(caps).unwrap_or_default(),
                now_secs(),
                id
            ],
        )?;
        Ok(())
    }

    /// What OPTIONS said last time, if ever.
    pub fn caps(&self, url: &str) -> Result<Option<ServerCaps>> {
        let caps: Option<Option<String>> = self
            .conn()
            .query_row("SELECT caps FROM endpoints WHERE url = ?1", [url], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(caps.flatten().and_then(|c| serde_json::from_str(&c).ok()))
    }

    /// Enqueues a new upload at the end of the queue.
    pub fn insert(&self, n: &NewUpload) -> Result<UploadRecord> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let endpoint_id = Self::endpoint_id(&tx, &n.endpoint)?;
        let position: i64 = tx.query_row(
            "SELECT COALESCE(MAX(position), 0) + 1 FROM uploads",
            [],
            |r| r.get(0),
        )?;
        let now = now_secs();
        tx.execute(
            "INSERT INTO uploads (position, path, name, size, mtime_ns, fingerprint, endpoint_id,
                state, metadata, headers, chunk_size, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
            params![
                position,
                n.path,
                n.name,
                n.size as i64,
                n.mtime_ns,
                n.fingerprint,
                endpoint_id,
                n.state.as_str(),
                serde_json::to_string(&n.metadata).unwrap_or_default(),
                serde_json::to_string(&n.headers).unwrap_or_default(),
                n.chunk_size.map(|c| c as i64),
                now
            ],
        )?;
        let id = tx.last_insert_rowid();
        crate::failpoint::hit(crate::failpoint::Point::InsertUncommitted);
        tx.commit()?;
        drop(conn);
        self.get(id)
    }

    /// One upload by id.
    pub fn get(&self, id: UploadId) -> Result<UploadRecord> {
        record(&self.conn(), id)
    }

    /// Every upload in queue order.
    pub fn list(&self) -> Result<Vec<UploadRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("{SELECT} ORDER BY u.position, u.id"))?;
        let rows = stmt.query_map([], row_to_record)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The newest unfinished upload of the same content to the same endpoint, if any: the
    /// basis of resuming a file that was re-added from another path.
    pub fn find_unfinished(
        &self,
        fingerprint: &str,
        endpoint: &str,
        size: u64,
    ) -> Result<Option<UploadRecord>> {
        self.find_same(
            fingerprint,
            endpoint,
            size,
            "NOT IN ('completed', 'cancelled', 'file_changed')",
        )
    }

    /// The newest completed upload of the same content to the same endpoint: re-adding it
    /// (say, re-running the same command after a crash) must not send the file twice.
    pub fn find_completed(
        &self,
        fingerprint: &str,
        endpoint: &str,
        size: u64,
    ) -> Result<Option<UploadRecord>> {
        self.find_same(fingerprint, endpoint, size, "= 'completed'")
    }

    fn find_same(
        &self,
        fingerprint: &str,
        endpoint: &str,
        size: u64,
        state_filter: &str,
    ) -> Result<Option<UploadRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "{SELECT} WHERE u.fingerprint = ?1 AND e.url = ?2 AND u.size = ?3
             AND u.state {state_filter}
             ORDER BY u.id DESC LIMIT 1"
        ))?;
        let rec = stmt
            .query_row(params![fingerprint, endpoint, size as i64], row_to_record)
            .optional()?;
        Ok(rec)
    }

    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<()> {
        let n = self.conn().prepare_cached(sql)?.execute(p)?;
        if n == 0 {
            return Err(rusqlite::Error::QueryReturnedNoRows.into());
        }
        Ok(())
    }

    fn exec_epoch(&self, sql: &str, p: impl rusqlite::Params) -> Result<()> {
        let n = self.conn().prepare_cached(sql)?.execute(p)?;
        if n == 0 {
            // The worker that wrote this was stopped (paused, cancelled, restarted).
            return Err(crate::error::Error::Interrupted);
        }
        Ok(())
    }

    /// Starts a new epoch for an upload (a worker starts or is stopped) and returns it.
    pub fn bump_epoch(&self, id: UploadId) -> Result<i64> {
        let epoch = self
            .conn()
            .prepare_cached("UPDATE uploads SET epoch = epoch + 1 WHERE id = ?1 RETURNING epoch")?
            .query_row([id], |r| r.get(0))?;
        Ok(epoch)
    }

    /// A worker starts: a new epoch and the `uploading` state, and the record as the journal
    /// holds it, in one transaction (with 10,000 small files, each separate transaction's
    /// locking was a visible share of the CPU).
    pub fn begin_run(&self, id: UploadId) -> Result<(i64, UploadRecord)> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let epoch: i64 = tx
            .prepare_cached(
                "UPDATE uploads SET epoch = epoch + 1, state = ?2, error = NULL, updated_at = ?3
                 WHERE id = ?1 RETURNING epoch",
            )?
            .query_row(
                params![id, UploadState::Uploading.as_str(), now_secs()],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(crate::error::Error::UnknownUpload(id))?;
        let rec = record(&tx, id)?;
        tx.commit()?;
        Ok((epoch, rec))
    }

    /// Records the server URL of a freshly created upload (replacing a lost or expired one).
    /// Written before the first PATCH. Worker write: only within `epoch`.
    pub fn set_url(
        &self,
        id: UploadId,
        epoch: i64,
        url: &str,
        expires_at: Option<i64>,
        recreated: bool,
    ) -> Result<()> {
        self.exec_epoch(
            "UPDATE uploads SET upload_url = ?3, acked_offset = 0, expires_at = ?4,
             recreated = recreated + ?5, updated_at = ?6 WHERE id = ?1 AND epoch = ?2",
            params![id, epoch, url, expires_at, recreated as i64, now_secs()],
        )
    }

    /// Records a server-confirmed offset. Worker write: only within `epoch`.
    pub fn set_offset(
        &self,
        id: UploadId,
        epoch: i64,
        offset: u64,
        expires_at: Option<i64>,
    ) -> Result<()> {
        self.exec_epoch(
            "UPDATE uploads SET acked_offset = ?3, expires_at = COALESCE(?4, expires_at), updated_at = ?5
             WHERE id = ?1 AND epoch = ?2",
            params![id, epoch, offset as i64, expires_at, now_secs()],
        )
    }

    /// Records that the server holds every byte: the final offset and the `completed` state
    /// together. Worker write: only within `epoch`.
    pub fn set_completed(
        &self,
        id: UploadId,
        epoch: i64,
        offset: u64,
        expires_at: Option<i64>,
    ) -> Result<()> {
        let now = now_secs();
        self.exec_epoch(
            "UPDATE uploads SET acked_offset = ?3, expires_at = COALESCE(?4, expires_at),
             state = ?5, error = NULL, completed_at = ?6, updated_at = ?6
             WHERE id = ?1 AND epoch = ?2",
            params![
                id,
                epoch,
                offset as i64,
                expires_at,
                UploadState::Completed.as_str(),
                now
            ],
        )
    }

    /// Forgets the server upload at `url` after it was terminated, unless a newer one
    /// replaced it meanwhile.
    pub fn clear_url_if(&self, id: UploadId, url: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE uploads SET upload_url = NULL, acked_offset = 0, expires_at = NULL, updated_at = ?3
             WHERE id = ?1 AND upload_url = ?2",
            params![id, url, now_secs()],
        )?;
        Ok(())
    }

    /// Moves an upload to a new state (with an error text for failure states). A completed
    /// upload stays completed: its worker journalled that together with the final offset, and
    /// a late report from before (waiting, uploading), or one written again after the journal
    /// was locked, must not undo it. Returns the state the journal now holds.
    pub fn set_state(
        &self,
        id: UploadId,
        state: UploadState,
        error: Option<&str>,
    ) -> Result<UploadState> {
        let completed = (state == UploadState::Completed).then(now_secs);
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE uploads SET state = ?2, error = ?3, completed_at = COALESCE(?4, completed_at), updated_at = ?5
                 WHERE id = ?1 AND (state <> 'completed' OR ?2 = 'completed')",
            )?
            .execute(params![id, state.as_str(), error, completed, now_secs()])?;
        if n == 0 {
            if !self.exists(id)? {
                return Err(crate::error::Error::UnknownUpload(id));
            }
            return Ok(UploadState::Completed);
        }
        Ok(state)
    }

    fn exists(&self, id: UploadId) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM uploads WHERE id = ?1")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The same content was found at another path (re-added, renamed or moved).
    pub fn set_path(&self, id: UploadId, path: &str, name: &str, mtime_ns: i64) -> Result<()> {
        self.exec(
            "UPDATE uploads SET path = ?2, name = ?3, mtime_ns = ?4, updated_at = ?5 WHERE id = ?1",
            params![id, path, name, mtime_ns, now_secs()],
        )
    }

    /// The file changed and the user chose to upload the new content from scratch.
    pub fn reset_identity(
        &self,
        id: UploadId,
        size: u64,
        mtime_ns: i64,
        fingerprint: &str,
    ) -> Result<()> {
        self.exec(
            "UPDATE uploads SET size = ?2, mtime_ns = ?3, fingerprint = ?4, upload_url = NULL,
             acked_offset = 0, expires_at = NULL, error = NULL, updated_at = ?5 WHERE id = ?1",
            params![id, size as i64, mtime_ns, fingerprint, now_secs()],
        )
    }

    /// Rewrites queue positions in the given order.
    pub fn set_positions(&self, ids: &[UploadId]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("UPDATE uploads SET position = ?2 WHERE id = ?1")?;
            for (i, id) in ids.iter().enumerate() {
                stmt.execute(params![id, i as i64 + 1])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets an upload.
    pub fn delete(&self, id: UploadId) -> Result<()> {
        self.exec("DELETE FROM uploads WHERE id = ?1", [id])
    }

    /// A setting's JSON value.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Stores a setting's JSON value.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    // Take the write lock before reading the version, so two processes opening a new journal
    // at once (the CLI's `list` beside a running upload) cannot both migrate.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current as usize > MIGRATIONS.len() {
        return Err(crate::error::Error::Protocol(format!(
            "the journal has schema version {current}, newer than this Tusker understands ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tracing::info!(version = i + 1, "journal migrated");
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(path: &str, fp: &str) -> NewUpload {
        NewUpload {
            path: path.into(),
            name: path.rsplit('/').next().unwrap().into(),
            size: 100,
            mtime_ns: 1,
            fingerprint: fp.into(),
            endpoint: "http://127.0.0.1:1/files".into(),
            metadata: BTreeMap::new(),
            headers: [("Authorization".to_string(), "secret".to_string())].into(),
            chunk_size: None,
            state: UploadState::Queued,
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
        s.set_url(a.id, epoch, "http://h/files/1", Some(5), false)
            .unwrap();
        s.set_offset(a.id, epoch, 40, None).unwrap();
        // A stopped worker's late write is refused.
        s.bump_epoch(a.id).unwrap();
        assert!(matches!(
            s.set_offset(a.id, epoch, 50, None),
            Err(crate::error::Error::Interrupted)
        ));
        let r = s.get(a.id).unwrap();
        assert_eq!(r.acked_offset, 40);
        assert_eq!(r.expires_at, Some(5));
        assert_eq!(r.headers.get("Authorization").unwrap(), "secret");
        let found = s.find_unfinished("fp1", &a.endpoint, 100).unwrap().unwrap();
        assert_eq!(found.id, a.id);
        s.set_state(a.id, UploadState::Completed, None).unwrap();
        assert!(s
            .find_unfinished("fp1", &a.endpoint, 100)
            .unwrap()
            .is_none());
        s.set_positions(&[b.id, a.id]).unwrap();
        assert_eq!(s.list().unwrap()[0].id, b.id);
        // The offset can never exceed the size: the journal refuses it.
        assert!(s.set_offset(b.id, 0, 101, None).is_err());
        s.delete(a.id).unwrap();
        assert!(s.get(a.id).is_err());
    }

    #[test]
    fn a_run_starts_in_one_transaction_and_completion_sticks() {
        let s = Store::open_in_memory().unwrap();
        let a = s.insert(&new("/a/x.bin", "fp1")).unwrap();
        let (epoch, rec) = s.begin_run(a.id).unwrap();
        assert_eq!(rec.state, UploadState::Uploading);
        assert_eq!(s.get(a.id).unwrap().state, UploadState::Uploading);
        s.set_url(a.id, epoch, "http://h/files/1", None, false)
            .unwrap();
        s.set_completed(a.id, epoch, 100, None).unwrap();
        let r = s.get(a.id).unwrap();
        assert_eq!((r.state, r.acked_offset), (UploadState::Completed, 100));
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
        let (old, _) = s.begin_run(b.id).unwrap();
        s.bump_epoch(b.id).unwrap();
        assert!(matches!(
            s.set_completed(b.id, old, 100, None),
            Err(crate::error::Error::Interrupted)
        ));
        assert!(matches!(
            s.set_state(999, UploadState::Queued, None),
            Err(crate::error::Error::UnknownUpload(999))
        ));
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
}

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
    // 2: proof of content. The stamp gains inode and ctime; the digests of every 1 MiB block
    // below the acknowledged offset and of the partial block at it prove the server's prefix;
    // a completed upload keeps the hash of all it sent.
    "ALTER TABLE uploads ADD COLUMN ino INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE uploads ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE uploads ADD COLUMN partial_sha256 BLOB;
    ALTER TABLE uploads ADD COLUMN content_hash TEXT;
    CREATE TABLE sent_blocks (
        upload_id INTEGER NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        sha256 BLOB NOT NULL,
        PRIMARY KEY (upload_id, idx)
    ) WITHOUT ROWID;
    CREATE INDEX uploads_by_path ON uploads (path);
    ALTER TABLE endpoints ADD COLUMN max_chunk INTEGER;
    ALTER TABLE uploads ADD COLUMN resent INTEGER NOT NULL DEFAULT 0;",
    // 3: endpoint profiles. An upload refers to its profile, whose credentials are read at
    // request time (rows from before keep their own headers).
    "CREATE TABLE profiles (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    ALTER TABLE uploads ADD COLUMN profile_id INTEGER REFERENCES profiles(id) ON DELETE SET NULL;",
    // 4: uploads into a URL a service created (`--upload-url`): never created anew.
    "ALTER TABLE uploads ADD COLUMN given_url INTEGER NOT NULL DEFAULT 0;",
    // 5: a failed upload that the server sent to a host its profile does not allow names
    // that host, so the app can ask once whether to upload there.
    "ALTER TABLE uploads ADD COLUMN asks_host TEXT;",
    // 6: parallel parts (concatenation). One row per part, written before its POST; its
    // block digests live in `sent_blocks` under the file's own block numbers (parts start on
    // 1 MiB boundaries). `final_posts` counts final POSTs sent, so a lost answer is known.
    "CREATE TABLE upload_parts (
        upload_id INTEGER NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        start INTEGER NOT NULL,
        len INTEGER NOT NULL,
        url TEXT,
        acked INTEGER NOT NULL DEFAULT 0,
        partial_sha256 BLOB,
        PRIMARY KEY (upload_id, idx)
    ) WITHOUT ROWID;
    ALTER TABLE uploads ADD COLUMN final_posts INTEGER NOT NULL DEFAULT 0;",
    // 7: drops still being taken in. A folder of 100,000 files is walked in batches; a
    // crash in the middle must not lose the rest, so the request is kept until its walk ends
    // and walked again at the next start (files already queued are recognised then).
    "CREATE TABLE intake (
        id INTEGER PRIMARY KEY,
        request TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );",
    // 8: files of watched folders proven to hold the content of a completed upload (a copy),
    // at the stamp they had then: the next start does not read them again.
    "CREATE TABLE proven_copies (
        path TEXT NOT NULL,
        upload_id INTEGER NOT NULL REFERENCES uploads(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ino INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        PRIMARY KEY (path, upload_id)
    ) WITHOUT ROWID;",
    // 9: the queue's history. "Clear completed" hides completed uploads from the queue but
    // keeps them (their content hash is what proves a file already uploaded). Time spent
    // uploading (for the average speed), retries and the last error are kept by triggers,
    // whichever write changed the state.
    "ALTER TABLE uploads ADD COLUMN cleared_at INTEGER;
    ALTER TABLE uploads ADD COLUMN busy_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE uploads ADD COLUMN uploading_since INTEGER;
    ALTER TABLE uploads ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE uploads ADD COLUMN last_error TEXT;
    CREATE TRIGGER upload_timing AFTER UPDATE OF state ON uploads
    WHEN NEW.state IS NOT OLD.state
    BEGIN
        UPDATE uploads SET
            busy_ms = busy_ms + CASE WHEN OLD.state = 'uploading' AND OLD.uploading_since IS NOT NULL
                THEN MAX(0, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - OLD.uploading_since)
                ELSE 0 END,
            uploading_since = CASE WHEN NEW.state = 'uploading'
                THEN CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) END,
            retries = retries + (NEW.state = 'waiting_to_retry')
        WHERE id = NEW.id;
    END;
    CREATE TRIGGER upload_last_error AFTER UPDATE OF error ON uploads
    WHEN NEW.error IS NOT NULL
    BEGIN
        UPDATE uploads SET last_error = NEW.error WHERE id = NEW.id;
    END;
    CREATE INDEX uploads_completed_at ON uploads(completed_at) WHERE completed_at IS NOT NULL;",
    // 10: an error as the catalogue names it (crate::error::explain): its code, for front ends to act
    // on, and the technical detail, for the details panel; `error` holds the sentence.
    "ALTER TABLE uploads ADD COLUMN error_code TEXT;
    ALTER TABLE uploads ADD COLUMN error_detail TEXT;",
    // 11: identity per destination (crate::identity::destination): "already uploaded" and resume
    // candidates are looked for among uploads to the same place, not the same endpoint.
    // Rows from before get theirs when the journal opens.
    // A drop's walks are counted: one that crashed (a tree that broke the walk, say) is
    // not replayed into the same crash for ever.
    "ALTER TABLE uploads ADD COLUMN destination TEXT;
    CREATE INDEX uploads_by_destination ON uploads (destination, fingerprint);
    ALTER TABLE intake ADD COLUMN tries INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE profile_ids (last INTEGER NOT NULL);
    INSERT INTO profile_ids SELECT COALESCE(MAX(id), 0) FROM profiles;",
];

/// One part of an upload sent as parallel partial uploads: the file range
/// `[start, start + len)` and what its server upload holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRow {
    pub idx: usize,
    pub start: u64,
    pub len: u64,
    pub url: Option<String>,
    pub acked: u64,
}

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

/// The fields of an upload that the caller decides when enqueuing.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub path: String,
    pub name: String,
    pub stamp: FileStamp,
    pub fingerprint: String,
    pub endpoint: String,
    pub metadata: BTreeMap<String, String>,
    pub headers: crate::redact::Headers,
    pub chunk_size: Option<u64>,
    pub state: UploadState,
    /// Where the request headers come from at request time (then `headers` stays empty).
    pub profile_id: Option<crate::profiles::profile::ProfileId>,
    /// An upload URL a service created: the upload goes there and is never created anew.
    pub upload_url: Option<String>,
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
    u.created_at, u.updated_at, u.completed_at, u.expires_at, u.recreated,
    u.ino, u.ctime_ns, u.content_hash, u.resent, u.profile_id, p.name, u.given_url, u.asks_host,
    u.cleared_at, u.busy_ms, u.retries, u.last_error, u.error_code, u.error_detail,
    u.destination
    FROM uploads u JOIN endpoints e ON e.id = u.endpoint_id
    LEFT JOIN profiles p ON p.id = u.profile_id";

/// One upload by id, on a connection or inside a transaction.
fn record(conn: &Connection, id: UploadId) -> Result<UploadRecord> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE u.id = ?1"))?;
    let rec = stmt.query_row([id], row_to_record).optional()?;
    rec.ok_or(crate::error::Error::UnknownUpload(id))
}

fn digest(v: Vec<u8>) -> Option<Digest32> {
    v.try_into().ok()
}

/// A worker write inside the caller's transaction: `sql` (which must carry `epoch = ?2`),
/// then `more`. A stopped worker's write changes nothing and is `Interrupted`.
fn epoch_write(
    tx: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    more: impl FnOnce(&Connection) -> Result<()>,
) -> Result<()> {
    let n = tx.prepare_cached(sql)?.execute(p)?;
    if n == 0 {
        // The worker that wrote this was stopped (paused, cancelled, restarted).
        return Err(crate::error::Error::Interrupted);
    }
    more(tx)
}

/// Writes the proof that goes with a new acknowledged offset, inside the caller's transaction.
fn write_proof(tx: &Connection, id: UploadId, proof: &ProofDelta) -> Result<()> {
    tx.prepare_cached("DELETE FROM sent_blocks WHERE upload_id = ?1 AND idx >= ?2")?
        .execute(params![id, proof.from_block as i64])?;
    let mut ins =
        tx.prepare_cached("INSERT INTO sent_blocks (upload_id, idx, sha256) VALUES (?1, ?2, ?3)")?;
    for (i, d) in proof.new_blocks.iter().enumerate() {
        ins.execute(params![id, (proof.from_block + i) as i64, &d[..]])?;
    }
    tx.prepare_cached("UPDATE uploads SET partial_sha256 = ?2 WHERE id = ?1")?
        .execute(params![id, proof.partial.as_ref().map(|d| &d[..])])?;
    Ok(())
}

/// Writes a part's block digests under the file's block numbers (parts start on block
/// boundaries), dropping those past what it proves.
fn write_part_blocks(
    tx: &Connection,
    id: UploadId,
    part: &PartRow,
    proof: &ProofDelta,
) -> Result<()> {
    let first = (part.start / crate::identity::proof::BLOCK) as i64;
    let end = first + part.len.div_ceil(crate::identity::proof::BLOCK) as i64;
    tx.prepare_cached("DELETE FROM sent_blocks WHERE upload_id = ?1 AND idx >= ?2 AND idx < ?3")?
        .execute(params![id, first + proof.from_block as i64, end])?;
    let mut ins =
        tx.prepare_cached("INSERT INTO sent_blocks (upload_id, idx, sha256) VALUES (?1, ?2, ?3)")?;
    for (i, d) in proof.new_blocks.iter().enumerate() {
        ins.execute(params![id, first + (proof.from_block + i) as i64, &d[..]])?;
    }
    Ok(())
}

/// The upload's acknowledged offset is the sum of its parts'.
fn sum_parts(tx: &Connection, id: UploadId) -> Result<()> {
    tx.prepare_cached(
        "UPDATE uploads SET acked_offset =
         (SELECT COALESCE(SUM(acked), 0) FROM upload_parts WHERE upload_id = ?1) WHERE id = ?1",
    )?
    .execute([id])?;
    Ok(())
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
        ino: r.get::<_, i64>(20)? as u64,
        ctime_ns: r.get(21)?,
        content_hash: r.get(22)?,
        resent: r.get::<_, i64>(23)? as u64,
        profile_id: r.get(24)?,
        profile: r.get(25)?,
        given_url: r.get::<_, i64>(26)? != 0,
        asks_host: r.get(27)?,
        cleared_at: r.get(28)?,
        busy_ms: r.get::<_, i64>(29)? as u64,
        retries: r.get::<_, i64>(30)? as u32,
        last_error: r.get(31)?,
        error_code: r.get(32)?,
        error_detail: r.get(33)?,
        destination: r.get(34)?,
    })
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
                owner_only(&p, 0o600);
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
            owner_only(dir, 0o700);
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

    /// The destination ([`crate::identity::destination`]) of uploads to `endpoint` with `metadata`,
    /// carrying the headers of profile `profile_id` (or `headers`, without one).
    pub fn destination(
        &self,
        endpoint: &str,
        metadata: &BTreeMap<String, String>,
        profile_id: Option<ProfileId>,
        headers: &BTreeMap<String, String>,
    ) -> Result<String> {
        let profile = match profile_id {
            Some(id) => self.profile(id)?,
            None => None,
        };
        Ok(crate::identity::destination::of(
            endpoint,
            metadata,
            profile.as_ref(),
            headers,
        ))
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

    /// The largest PATCH body this endpoint (or a proxy in front of it) accepted after
    /// refusing a larger one with 413, if it ever did.
    pub fn learned_chunk(&self, url: &str) -> Result<Option<u64>> {
        if let Some(known) = self.memo().learned_chunks.get(url) {
            return Ok(*known);
        }
        let v: Option<Option<i64>> = self
            .conn()
            .prepare_cached("SELECT max_chunk FROM endpoints WHERE url = ?1")?
            .query_row([url], |r| r.get(0))
            .optional()?;
        let learned = v.flatten().map(|c| c as u64);
        self.memo().learned_chunks.insert(url.to_string(), learned);
        Ok(learned)
    }

    /// Remembers a chunk size a 413 taught, for every later upload to the endpoint (and
    /// after a relaunch). It only ever shrinks.
    pub fn learn_chunk(&self, url: &str, chunk: u64) -> Result<()> {
        let conn = self.conn();
        let id = Self::endpoint_id(&conn, url)?;
        conn.prepare_cached(
            "UPDATE endpoints SET max_chunk = MIN(COALESCE(max_chunk, ?2), ?2) WHERE id = ?1",
        )?
        .execute(params![id, chunk as i64])?;
        self.memo().learned_chunks.remove(url);
        Ok(())
    }

    /// Enqueues a new upload at the end of the queue.
    pub fn insert(&self, n: &NewUpload) -> Result<UploadRecord> {
        let mut recs = self.insert_many(std::slice::from_ref(n))?;
        Ok(recs.remove(0))
    }

    /// Enqueues several uploads in one transaction (a dropped folder arrives in batches:
    /// one commit per file was a visible share of the CPU with 100,000 files).
    pub fn insert_many(&self, news: &[NewUpload]) -> Result<Vec<UploadRecord>> {
        // Before the connection is taken: a profile read takes it too.
        let mut destinations: HashMap<(&str, String, Option<ProfileId>, String), String> =
            HashMap::new();
        let mut dest_of = Vec::with_capacity(news.len());
        for n in news {
            let k = (
                n.endpoint.as_str(),
                serde_json::to_string(&n.metadata).unwrap_or_default(),
                n.profile_id,
                serde_json::to_string(&n.headers).unwrap_or_default(),
            );
            let d = match destinations.get(&k) {
                Some(d) => d.clone(),
                None => {
                    let d = self.destination(&n.endpoint, &n.metadata, n.profile_id, &n.headers)?;
                    destinations.insert(k, d.clone());
                    d
                }
            };
            dest_of.push(d);
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let first: i64 = tx.query_row(
            "SELECT COALESCE(MAX(position), 0) + 1 FROM uploads",
            [],
            |r| r.get(0),
        )?;
        let now = now_secs();
        let mut ids = Vec::with_capacity(news.len());
        let mut endpoints: HashMap<&str, i64> = HashMap::new();
        for (position, n) in (first..).zip(news) {
            let endpoint_id = match endpoints.get(n.endpoint.as_str()) {
                Some(id) => *id,
                None => {
                    let id = Self::endpoint_id(&tx, &n.endpoint)?;
                    endpoints.insert(&n.endpoint, id);
                    id
                }
            };
            tx.prepare_cached(
                "INSERT INTO uploads (position, path, name, size, mtime_ns, fingerprint, endpoint_id,
                    state, metadata, headers, chunk_size, created_at, updated_at, ino, ctime_ns,
                    profile_id, upload_url, given_url, destination)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18)",
            )?
            .execute(params![
                position,
                n.path,
                n.name,
                n.stamp.size as i64,
                n.stamp.mtime_ns,
                n.fingerprint,
                endpoint_id,
                n.state.as_str(),
                serde_json::to_string(&n.metadata).unwrap_or_default(),
                serde_json::to_string(&n.headers).unwrap_or_default(),
                n.chunk_size.map(|c| c as i64),
                now,
                n.stamp.ino as i64,
                n.stamp.ctime_ns,
                n.profile_id,
                n.upload_url,
                n.upload_url.is_some() as i64,
                dest_of[(position - first) as usize]
            ])?;
            ids.push(tx.last_insert_rowid());
            crate::failpoint::hit(crate::failpoint::Point::InsertUncommitted);
        }
        let recs = ids
            .into_iter()
            .map(|id| record(&tx, id))
            .collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(recs)
    }

    /// One upload by id.
    pub fn get(&self, id: UploadId) -> Result<UploadRecord> {
        record(&self.conn(), id)
    }

    /// Every upload in queue order, cleared ones too.
    pub fn list(&self) -> Result<Vec<UploadRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("{SELECT} ORDER BY u.position, u.id"))?;
        let rows = stmt.query_map([], row_to_record)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The uploads of the queue (not cleared), in queue order.
    pub fn list_queue(&self) -> Result<Vec<UploadRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "{SELECT} WHERE u.cleared_at IS NULL ORDER BY u.position, u.id"
        ))?;
        let rows = stmt.query_map([], row_to_record)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Completed uploads, the latest first (cleared from the queue or not), at most `limit`.
    pub fn history(&self, limit: usize) -> Result<Vec<UploadRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "{SELECT} WHERE u.completed_at IS NOT NULL AND u.state = '{c}'
             ORDER BY u.completed_at DESC, u.id DESC LIMIT ?1",
            c = UploadState::Completed.as_str()
        ))?;
        let rows = stmt.query_map([limit as i64], row_to_record)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Hides completed uploads from the queue; the journal keeps them. Returns those cleared.
    pub fn clear_completed(&self, ids: &[UploadId]) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(&format!(
                "UPDATE uploads SET cleared_at = ?2 WHERE id = ?1 AND state = '{c}'
                 AND cleared_at IS NULL",
                c = UploadState::Completed.as_str()
            ))?;
            let now = now_secs();
            for id in ids {
                n += stmt.execute(params![id, now])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Records that the file at `path`, at `stamp`, holds the content of completed upload `id`.
    pub fn add_proven_copy(
        &self,
        path: &str,
        id: UploadId,
        stamp: &crate::identity::fingerprint::FileStamp,
    ) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO proven_copies (path, upload_id, size, mtime_ns, ino, ctime_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                path,
                id,
                stamp.size as i64,
                stamp.mtime_ns,
                stamp.ino as i64,
                stamp.ctime_ns
            ],
        )
    }

    /// The path and stamp of every upload to `destination` of a file below `dir`, and of
    /// every file there proven a copy of one, oldest first (a watched folder does not look
    /// again at a file still at the stamp the journal holds for it).
    pub fn stamps_under(
        &self,
        dir: &str,
        destination: &str,
    ) -> Result<Vec<(String, crate::identity::fingerprint::FileStamp)>> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT path, size, mtime_ns, ino, ctime_ns FROM (
                SELECT u.id AS id, 0 AS copy, u.path, u.size, u.mtime_ns, u.ino, u.ctime_ns
                FROM uploads u WHERE u.destination = ?1
                UNION ALL
                SELECT c.upload_id, 1, c.path, c.size, c.mtime_ns, c.ino, c.ctime_ns
                FROM proven_copies c JOIN uploads u ON u.id = c.upload_id
                WHERE u.destination = ?1
             ) WHERE substr(path, 1, length(?2)) = ?2 ORDER BY id, copy",
        )?;
        let rows = stmt.query_map(params![destination, prefix], |r| {
            Ok((
                r.get::<_, String>(0)?,
                crate::identity::fingerprint::FileStamp {
                    size: r.get::<_, i64>(1)? as u64,
                    mtime_ns: r.get(2)?,
                    ino: r.get::<_, i64>(3)? as u64,
                    ctime_ns: r.get(4)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Unfinished uploads to `destination` that may hold this file: the same sampled
    /// fingerprint and size, or the same path. Newest first. Candidates only: whether the
    /// server's bytes are this file's is decided by [`crate::identity::proof`].
    pub fn unfinished_candidates(
        &self,
        fingerprint: &str,
        destination: &str,
        size: u64,
        path: &str,
    ) -> Result<Vec<UploadRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "{SELECT} WHERE u.destination = ?2 AND ((u.fingerprint = ?1 AND u.size = ?3) OR u.path = ?4)
             AND u.state IN {} ORDER BY u.id DESC",
            UploadState::sql_list(UploadState::is_unfinished)
        ))?;
        let rows = stmt.query_map(
            params![fingerprint, destination, size as i64, path],
            row_to_record,
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Completed uploads to `destination` with the same sampled fingerprint and a recorded
    /// content hash, newest first: candidates for "already uploaded", which only an equal
    /// content hash proves.
    pub fn completed_candidates(
        &self,
        fingerprint: &str,
        destination: &str,
        size: u64,
    ) -> Result<Vec<UploadRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "{SELECT} WHERE u.fingerprint = ?1 AND u.destination = ?2 AND u.size = ?3
             AND u.state = '{completed}' AND u.content_hash IS NOT NULL
             ORDER BY u.id DESC",
            completed = UploadState::Completed.as_str()
        ))?;
        let rows = stmt.query_map(
            params![fingerprint, destination, size as i64],
            row_to_record,
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// What the journal proves of the bytes the server upload holds: `[0, acked_offset)`.
    pub fn proof(&self, id: UploadId) -> Result<PrefixProof> {
        let conn = self.conn();
        let (len, partial): (i64, Option<Vec<u8>>) = conn
            .prepare_cached("SELECT acked_offset, partial_sha256 FROM uploads WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .ok_or(crate::error::Error::UnknownUpload(id))?;
        let len = len as u64;
        let mut stmt = conn.prepare_cached(
            "SELECT sha256 FROM sent_blocks WHERE upload_id = ?1 AND idx < ?2 ORDER BY idx",
        )?;
        let blocks = stmt
            .query_map(
                params![id, (len / crate::identity::proof::BLOCK) as i64],
                |r| r.get::<_, Vec<u8>>(0),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(PrefixProof {
            len,
            blocks: blocks.into_iter().filter_map(digest).collect(),
            partial: partial.and_then(digest),
        })
    }

    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<()> {
        let n = self.conn().prepare_cached(sql)?.execute(p)?;
        if n == 0 {
            return Err(rusqlite::Error::QueryReturnedNoRows.into());
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

    /// A worker starts: a new epoch and `state` (the lifecycle's, `uploading`), and the
    /// record as the journal holds it, in one transaction (with 10,000 small files, each
    /// separate transaction's locking was a visible share of the CPU).
    pub fn begin_run(&self, id: UploadId, state: UploadState) -> Result<(i64, UploadRecord)> {
        self.begin_runs(&[(id, state)])?.remove(0)
    }

    /// [`Store::begin_run`] for several workers in one transaction (the queue starts the
    /// uploads that finished ones made room for together). The outer error (the journal
    /// locked or failing) is every start's; an upload that is gone fails alone.
    pub fn begin_runs(
        &self,
        starts: &[(UploadId, UploadState)],
    ) -> Result<Vec<Result<(i64, UploadRecord)>>> {
        let began = self.begin_runs_once(starts);
        self.busy.note(began)
    }

    fn begin_runs_once(
        &self,
        starts: &[(UploadId, UploadState)],
    ) -> Result<Vec<Result<(i64, UploadRecord)>>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(starts.len());
        for &(id, state) in starts {
            let epoch: Option<i64> = tx
                .prepare_cached(
                    "UPDATE uploads SET epoch = epoch + 1, state = ?2, error = NULL, updated_at = ?3
                     WHERE id = ?1 RETURNING epoch",
                )?
                .query_row(params![id, state.as_str(), now_secs()], |r| r.get(0))
                .optional()?;
            out.push(match epoch {
                Some(epoch) => Ok((epoch, record(&tx, id)?)),
                None => Err(crate::error::Error::UnknownUpload(id)),
            });
        }
        tx.commit()?;
        Ok(out)
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

    /// The file's stamp moved but the server's prefix was proven to be the file's bytes:
    /// the new stamp (and fingerprint) become the journal's. Worker write: only within
    /// `epoch`, and only while the acknowledged offset is still the proven one.
    pub fn adopt_stamp(
        &self,
        id: UploadId,
        epoch: i64,
        proven: u64,
        stamp: &FileStamp,
        fingerprint: &str,
    ) -> Result<()> {
        self.epoch_tx(
            "UPDATE uploads SET mtime_ns = ?4, ino = ?5, ctime_ns = ?6, fingerprint = ?7,
             updated_at = ?8 WHERE id = ?1 AND epoch = ?2 AND acked_offset = ?3
             AND size = ?9",
            params![
                id,
                epoch,
                proven as i64,
                stamp.mtime_ns,
                stamp.ino as i64,
                stamp.ctime_ns,
                fingerprint,
                now_secs(),
                stamp.size as i64
            ],
            |_| Ok(()),
        )
    }

    /// The server lost `bytes` it had confirmed; they are sent again. Worker write: only
    /// within `epoch`.
    pub fn add_resent(&self, id: UploadId, epoch: i64, bytes: u64) -> Result<()> {
        self.epoch_tx(
            "UPDATE uploads SET resent = resent + ?3 WHERE id = ?1 AND epoch = ?2",
            params![id, epoch, bytes as i64],
            |_| Ok(()),
        )
    }

    /// Forgets the server upload at `url` after it was terminated, unless a newer one
    /// replaced it meanwhile.
    pub fn clear_url_if(&self, id: UploadId, url: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE uploads SET upload_url = NULL, acked_offset = 0, expires_at = NULL,
             partial_sha256 = NULL, updated_at = ?3 WHERE id = ?1 AND upload_url = ?2",
            params![id, url, now_secs()],
        )?;
        if n > 0 {
            tx.execute("DELETE FROM sent_blocks WHERE upload_id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets every server upload of `id` (its parts and its final, or its one upload) and
    /// what they were proven to hold, returning their URLs so they can be terminated.
    pub fn take_server_uploads(&self, id: UploadId) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut urls: Vec<String> = tx
            .prepare_cached(
                "SELECT url FROM upload_parts WHERE upload_id = ?1 AND url IS NOT NULL ORDER BY idx",
            )?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let url: Option<Option<String>> = tx
            .query_row("SELECT upload_url FROM uploads WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        urls.extend(url.flatten());
        if !urls.is_empty() {
            tx.execute(
                "UPDATE uploads SET upload_url = NULL, acked_offset = 0, expires_at = NULL,
                 partial_sha256 = NULL, updated_at = ?2 WHERE id = ?1",
                params![id, now_secs()],
            )?;
            tx.execute("DELETE FROM sent_blocks WHERE upload_id = ?1", [id])?;
        }
        tx.execute("DELETE FROM upload_parts WHERE upload_id = ?1", [id])?;
        tx.commit()?;
        Ok(urls)
    }

    /// Keeps a drop (its request as JSON, secrets already sealed) until it is taken in.
    pub fn begin_intake(&self, request: &str) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO intake (request, created_at) VALUES (?1, ?2)",
            params![request, now_secs()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The drop is in the queue.
    pub fn end_intake(&self, id: i64) -> Result<()> {
        self.conn()
            .execute("DELETE FROM intake WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Drops a crash interrupted while they were taken in: `(id, request JSON, walks begun)`.
    pub fn pending_intake(&self) -> Result<Vec<(i64, String, u32)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, request, tries FROM intake ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Counts a walk of a drop about to begin (committed before it starts: a walk that
    /// crashes the process is counted all the same).
    pub fn count_intake_try(&self, id: i64) -> Result<()> {
        self.conn()
            .execute("UPDATE intake SET tries = tries + 1 WHERE id = ?1", [id])?;
        Ok(())
    }

    /// The upload's parts, in file order (none: it goes in one stream).
    pub fn parts(&self, id: UploadId) -> Result<Vec<PartRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT idx, start, len, url, acked FROM upload_parts WHERE upload_id = ?1 ORDER BY idx",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(PartRow {
                idx: r.get::<_, i64>(0)? as usize,
                start: r.get::<_, i64>(1)? as u64,
                len: r.get::<_, i64>(2)? as u64,
                url: r.get(3)?,
                acked: r.get::<_, i64>(4)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether the upload goes (or went) as parts.
    pub fn has_parts(&self, id: UploadId) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM upload_parts WHERE upload_id = ?1 LIMIT 1")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// What the journal proves of the bytes a part's server upload holds:
    /// `[start, start + acked)` of the file, as a proof of the part's own bytes.
    pub fn part_proof(&self, id: UploadId, part: &PartRow) -> Result<PrefixProof> {
        let conn = self.conn();
        let (acked, partial): (i64, Option<Vec<u8>>) = conn
            .prepare_cached(
                "SELECT acked, partial_sha256 FROM upload_parts WHERE upload_id = ?1 AND idx = ?2",
            )?
            .query_row(params![id, part.idx as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let first = part.start / crate::identity::proof::BLOCK;
        let n = acked as u64 / crate::identity::proof::BLOCK;
        let blocks = conn
            .prepare_cached(
                "SELECT sha256 FROM sent_blocks WHERE upload_id = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx",
            )?
            .query_map(params![id, first as i64, (first + n) as i64], |r| {
                r.get::<_, Vec<u8>>(0)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(PrefixProof {
            len: acked as u64,
            blocks: blocks.into_iter().filter_map(digest).collect(),
            partial: partial.and_then(digest),
        })
    }

    /// Plans an upload as parts: forgets any earlier server upload and proof, and writes one
    /// row per range before any part is created, so none can go untracked. `stamp`: a moved
    /// stamp becomes the journal's (nothing was sent under it yet). Worker write.
    pub fn plan_parts(
        &self,
        id: UploadId,
        epoch: i64,
        ranges: &[(u64, u64)],
        stamp: Option<(&FileStamp, &str)>,
    ) -> Result<()> {
        self.epoch_tx(
            "UPDATE uploads SET upload_url = NULL, acked_offset = 0, expires_at = NULL,
             partial_sha256 = NULL, final_posts = 0, updated_at = ?3 WHERE id = ?1 AND epoch = ?2",
            params![id, epoch, now_secs()],
            |tx| {
                tx.execute("DELETE FROM sent_blocks WHERE upload_id = ?1", [id])?;
                tx.execute("DELETE FROM upload_parts WHERE upload_id = ?1", [id])?;
                let mut ins = tx.prepare_cached(
                    "INSERT INTO upload_parts (upload_id, idx, start, len) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (i, (start, len)) in ranges.iter().enumerate() {
                    ins.execute(params![id, i as i64, *start as i64, *len as i64])?;
                }
                if let Some((st, fp)) = stamp {
                    tx.execute(
                        "UPDATE uploads SET mtime_ns = ?2, ino = ?3, ctime_ns = ?4, fingerprint = ?5
                         WHERE id = ?1 AND size = ?6",
                        params![id, st.mtime_ns, st.ino as i64, st.ctime_ns, fp, st.size as i64],
                    )?;
                }
                Ok(())
            },
        )
    }

    /// A part's server upload, new (`Some`: it holds nothing yet) or forgotten (`None`), with
    /// nothing proven. Worker write.
    pub fn set_part_url(
        &self,
        id: UploadId,
        epoch: i64,
        part: &PartRow,
        url: Option<&str>,
    ) -> Result<()> {
        self.epoch_tx(
            "UPDATE uploads SET updated_at = ?3 WHERE id = ?1 AND epoch = ?2",
            params![id, epoch, now_secs()],
            |tx| {
                tx.prepare_cached(
                    "UPDATE upload_parts SET url = ?3, acked = 0, partial_sha256 = NULL
                     WHERE upload_id = ?1 AND idx = ?2",
                )?
                .execute(params![id, part.idx as i64, url])?;
                write_part_blocks(
                    tx,
                    id,
                    part,
                    &ProofDelta {
                        from_block: 0,
                        new_blocks: vec![],
                        partial: None,
                    },
                )?;
                sum_parts(tx, id)
            },
        )
    }

    /// A part's server-confirmed offset with the proof of its bytes below it (block numbers
    /// of the part). The upload's acknowledged offset becomes the sum of its parts'. Worker
    /// write.
    pub fn set_part_offset(
        &self,
        id: UploadId,
        epoch: i64,
        part: &PartRow,
        offset: u64,
        proof: &ProofDelta,
    ) -> Result<()> {
        self.epoch_tx(
            "UPDATE uploads SET updated_at = ?3 WHERE id = ?1 AND epoch = ?2",
            params![id, epoch, now_secs()],
            |tx| {
                tx.prepare_cached(
                    "UPDATE upload_parts SET acked = ?3, partial_sha256 = ?4
                     WHERE upload_id = ?1 AND idx = ?2",
                )?
                .execute(params![
                    id,
                    part.idx as i64,
                    offset as i64,
                    proof.partial.as_ref().map(|d| &d[..])
                ])?;
                write_part_blocks(tx, id, part, proof)?;
                sum_parts(tx, id)
            },
        )
    }

    /// A final POST is about to be sent; returns how many were sent before (an earlier one
    /// whose answer was lost may have made a final the journal does not know). Worker write.
    pub fn count_final_post(&self, id: UploadId, epoch: i64) -> Result<u32> {
        let before: i64 =
            self.conn()
                .query_row("SELECT final_posts FROM uploads WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
        // Durable before the POST goes out: a count lost to a power cut would let the next run
        // POST again without saying the server may hold a second copy.
        self.epoch_tx_durable(
            "UPDATE uploads SET final_posts = final_posts + 1 WHERE id = ?1 AND epoch = ?2",
            params![id, epoch],
            |_| Ok(()),
        )?;
        Ok(before as u32)
    }

    /// Final POSTs sent so far for this upload.
    pub fn final_posts(&self, id: UploadId) -> Result<u32> {
        let n: i64 =
            self.conn()
                .query_row("SELECT final_posts FROM uploads WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
        Ok(n as u32)
    }

    /// The final upload of the parts (`None`: forgotten, it is gone). Worker write.
    pub fn set_final_url(
        &self,
        id: UploadId,
        epoch: i64,
        url: Option<&str>,
        expires_at: Option<i64>,
    ) -> Result<()> {
        // Durable before the parts are deleted: a final URL lost to a power cut would have
        // the next run POST another final.
        self.epoch_tx_durable(
            "UPDATE uploads SET upload_url = ?3, expires_at = ?4, updated_at = ?5
             WHERE id = ?1 AND epoch = ?2",
            params![id, epoch, url, expires_at, now_secs()],
            |_| Ok(()),
        )
    }

    /// Every part is in the final upload: the whole proof (the parts' blocks are the file's,
    /// the last part's partial block ends it), the content hash and the `completed` state.
    /// Worker write.
    pub fn complete_parts(
        &self,
        id: UploadId,
        epoch: i64,
        content_hash: &str,
        expires_at: Option<i64>,
    ) -> Result<()> {
        self.epoch_tx(
            "UPDATE uploads SET acked_offset = size, content_hash = ?3, updated_at = ?4,
             expires_at = COALESCE(?5, expires_at), state = ?6, error = NULL,
             asks_host = NULL, completed_at = ?4,
             partial_sha256 = (SELECT partial_sha256 FROM upload_parts WHERE upload_id = ?1
                               ORDER BY idx DESC LIMIT 1)
             WHERE id = ?1 AND epoch = ?2",
            params![
                id,
                epoch,
                content_hash,
                now_secs(),
                expires_at,
                UploadState::Completed.as_str()
            ],
            |_| Ok(()),
        )
    }

    /// The proof of a whole file sent as parts: every block of every part, and the last
    /// part's partial block.
    pub fn parts_proof(&self, id: UploadId, size: u64) -> Result<PrefixProof> {
        let conn = self.conn();
        let partial: Option<Vec<u8>> = conn
            .prepare_cached(
                "SELECT partial_sha256 FROM upload_parts WHERE upload_id = ?1 ORDER BY idx DESC LIMIT 1",
            )?
            .query_row([id], |r| r.get(0))
            .optional()?
            .flatten();
        let blocks = conn
            .prepare_cached(
                "SELECT sha256 FROM sent_blocks WHERE upload_id = ?1 AND idx < ?2 ORDER BY idx",
            )?
            .query_map(
                params![id, (size / crate::identity::proof::BLOCK) as i64],
                |r| r.get::<_, Vec<u8>>(0),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(PrefixProof {
            len: size,
            blocks: blocks.into_iter().filter_map(digest).collect(),
            partial: partial.and_then(digest),
        })
    }

    /// Forgets the parts of a completed upload once the server let them go.
    pub fn drop_parts(&self, id: UploadId) -> Result<()> {
        self.conn()
            .execute("DELETE FROM upload_parts WHERE upload_id = ?1", [id])?;
        Ok(())
    }

    /// Parts of completed uploads still on the server (a crash came between completion and
    /// their termination): `(upload, url)`.
    pub fn leftover_parts(&self) -> Result<Vec<(UploadId, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT p.upload_id, p.url FROM upload_parts p JOIN uploads u ON u.id = p.upload_id
             WHERE u.content_hash IS NOT NULL AND p.url IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Moves an upload to a new state (with an error text for failure states). An upload
    /// whose worker journalled its final offset and content hash is complete whatever its
    /// state column says: a late report from before (waiting, uploading), or one written
    /// again after the journal was locked, must not undo that. Returns the state the journal
    /// now holds, `Completed` for such a refusal.
    pub fn set_state(
        &self,
        id: UploadId,
        state: UploadState,
        error: Option<&str>,
    ) -> Result<UploadState> {
        let said = error.map(crate::error::explain::Said::from);
        self.set_state_said(id, state, said.as_ref())
    }

    /// [`Store::set_state`] with the error as the catalogue names it (sentence, code, detail).
    pub fn set_state_said(
        &self,
        id: UploadId,
        state: UploadState,
        error: Option<&crate::error::explain::Said>,
    ) -> Result<UploadState> {
        let set = self.set_state_once(id, state, error);
        self.busy.note(set)
    }

    fn set_state_once(
        &self,
        id: UploadId,
        state: UploadState,
        error: Option<&crate::error::explain::Said>,
    ) -> Result<UploadState> {
        let completed = (state == UploadState::Completed).then(now_secs);
        let n = self
            .conn()
            .prepare_cached(&format!(
                "UPDATE uploads SET state = ?2, error = ?3, asks_host = NULL, completed_at = COALESCE(?4, completed_at), updated_at = ?5,
                 error_code = ?6, error_detail = ?7
                 WHERE id = ?1 AND ((state <> '{c}' AND content_hash IS NULL) OR ?2 = '{c}')",
                c = UploadState::Completed.as_str()
            ))?
            .execute(params![
                id,
                state.as_str(),
                error.map(|e| e.text.as_str()),
                completed,
                now_secs(),
                error.map(|e| e.code),
                error.map(|e| e.detail.as_str())
            ])?;
        if n == 0 {
            if !self.exists(id)? {
                return Err(crate::error::Error::UnknownUpload(id));
            }
            return Ok(UploadState::Completed);
        }
        Ok(state)
    }

    /// The host a failed upload waits for the user to allow or refuse (cleared by any
    /// later state).
    pub fn set_asks_host(&self, id: UploadId, host: Option<&str>) -> Result<()> {
        self.exec(
            "UPDATE uploads SET asks_host = ?2 WHERE id = ?1",
            params![id, host],
        )
    }

    fn exists(&self, id: UploadId) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM uploads WHERE id = ?1")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The upload's file is now at another path (renamed, moved, or re-added from there).
    /// The stamp stays: a moved stamp is only ever replaced after a proof.
    pub fn set_path(&self, id: UploadId, path: &str, name: &str) -> Result<()> {
        self.exec(
            "UPDATE uploads SET path = ?2, name = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, path, name, now_secs()],
        )
    }

    /// The file changed and its current content is to be uploaded from scratch, maybe from
    /// a new path: a new identity, no server upload, nothing proven.
    pub fn reset_identity(
        &self,
        id: UploadId,
        path: &str,
        name: &str,
        stamp: &FileStamp,
        fingerprint: &str,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE uploads SET path = ?2, name = ?3, size = ?4, mtime_ns = ?5, ino = ?6,
             ctime_ns = ?7, fingerprint = ?8, upload_url = NULL, acked_offset = 0,
             expires_at = NULL, error = NULL, partial_sha256 = NULL, content_hash = NULL,
             completed_at = NULL, resent = 0, final_posts = 0, updated_at = ?9 WHERE id = ?1",
            params![
                id,
                path,
                name,
                stamp.size as i64,
                stamp.mtime_ns,
                stamp.ino as i64,
                stamp.ctime_ns,
                fingerprint,
                now_secs()
            ],
        )?;
        if n == 0 {
            return Err(crate::error::Error::UnknownUpload(id));
        }
        tx.execute("DELETE FROM sent_blocks WHERE upload_id = ?1", [id])?;
        tx.execute("DELETE FROM upload_parts WHERE upload_id = ?1", [id])?;
        tx.commit()?;
        Ok(())
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

    /// Saves a profile (by name) with its secret header values in `secrets` and references
    /// in the journal; returns its id.
    pub fn save_profile_sealed(
        &self,
        secrets: &crate::profiles::secrets::Secrets,
        profile: &Profile,
    ) -> Result<ProfileId> {
        let mut sealed = profile.clone().with_userinfo_as_header()?;
        let previous = self.profile_by_name(&profile.name)?;
        sealed.bind(previous.as_ref());
        let is_secret = |name: &str| sealed.is_secret(name);
        let headers = secrets.seal(
            &format!("profile:{}", profile.name),
            &sealed.headers,
            &is_secret,
        )?;
        sealed.headers = headers;
        let id = self.save_profile(&sealed)?;
        // Secrets the profile no longer refers to (a header removed, a value under a new
        // key) leave the keyring too.
        if let Some(previous) = previous {
            let kept: std::collections::HashSet<&String> = sealed.headers.values().collect();
            let dropped: BTreeMap<String, String> = previous
                .headers
                .iter()
                .filter(|(_, v)| !kept.contains(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Err(e) = secrets.forget(&dropped) {
                tracing::warn!(error = %e, "could not remove a profile's old secrets");
            }
        }
        Ok(id)
    }

    /// Renames a profile; its uploads follow it (they refer to its id).
    pub fn rename_profile(&self, from: &str, to: &str) -> Result<()> {
        if from == to {
            return Ok(());
        }
        if self.profile_by_name(to)?.is_some() {
            return Err(crate::error::Error::Protocol(format!(
                "a profile named {to:?} exists already"
            )));
        }
        let renamed = self.exec(
            "UPDATE profiles SET name = ?2, updated_at = ?3 WHERE name = ?1",
            params![from, to, now_millis()],
        );
        self.forget_profiles();
        renamed
    }

    /// Creates or replaces the profile named `p.name` as given; returns its id. A new profile
    /// never gets the id of a removed one: uploads, watches and destinations refer to ids.
    pub fn save_profile(&self, p: &Profile) -> Result<ProfileId> {
        let body = serde_json::to_string(p).expect("profile serialises");
        let saved = (|| {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let id: ProfileId = tx
                .prepare_cached(
                    "INSERT INTO profiles (id, name, body, updated_at)
                     VALUES ((SELECT last + 1 FROM profile_ids), ?1, ?2, ?3)
                     ON CONFLICT(name) DO UPDATE SET body = excluded.body,
                     updated_at = excluded.updated_at
                     RETURNING id",
                )?
                .query_row(params![p.name, body, now_millis()], |r| r.get(0))?;
            tx.execute("UPDATE profile_ids SET last = MAX(last, ?1)", [id])?;
            tx.commit()?;
            Ok(id)
        })();
        self.forget_profiles();
        saved
    }

    fn profile_where(&self, clause: &str, key: &dyn rusqlite::ToSql) -> Result<Option<Profile>> {
        let row = self
            .conn()
            .prepare_cached(&format!(
                "SELECT id, name, body FROM profiles WHERE {clause} = ?1"
            ))?
            .query_row([key], |r| {
                Ok((
                    r.get::<_, ProfileId>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .optional()?;
        Ok(row.map(|(id, name, body)| {
            let mut p: Profile = serde_json::from_str(&body).unwrap_or_default();
            p.id = id;
            p.name = name;
            p
        }))
    }

    /// A profile by id (`None` when it was removed).
    pub fn profile(&self, id: ProfileId) -> Result<Option<Profile>> {
        let generation = {
            let memo = self.memo();
            if let Some(known) = memo.profiles.get(&id) {
                return Ok(known.clone());
            }
            memo.profiles_generation
        };
        let p = self.profile_where("id", &id)?;
        let mut memo = self.memo();
        if memo.profiles_generation == generation {
            memo.profiles.insert(id, p.clone());
        }
        Ok(p)
    }

    /// Reads profiles from the journal again: another process saved or removed one.
    pub fn forget_profiles(&self) {
        let mut memo = self.memo();
        memo.profiles.clear();
        memo.profiles_generation += 1;
    }

    pub fn profile_by_name(&self, name: &str) -> Result<Option<Profile>> {
        self.profile_where("name", &name)
    }

    /// Every profile, by name.
    pub fn profiles(&self) -> Result<Vec<Profile>> {
        let ids: Vec<ProfileId> = self
            .conn()
            .prepare_cached("SELECT id FROM profiles ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.profile(id)?);
        }
        Ok(out)
    }

    /// When each profile was last saved (milliseconds), so a running engine notices edits
    /// made by another process (the CLI beside the app).
    pub fn profile_versions(&self) -> Result<HashMap<ProfileId, i64>> {
        let rows = self
            .conn()
            .prepare_cached("SELECT id, updated_at FROM profiles")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Upload rows that hold their own headers (rows from before profiles).
    pub fn row_headers(&self) -> Result<Vec<(UploadId, BTreeMap<String, String>)>> {
        let rows: Vec<(UploadId, String)> = self
            .conn()
            .prepare_cached("SELECT id, headers FROM uploads WHERE headers <> '{}'")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows
            .into_iter()
            .map(|(id, h)| (id, serde_json::from_str(&h).unwrap_or_default()))
            .collect())
    }

    pub fn set_row_headers(&self, id: UploadId, headers: &BTreeMap<String, String>) -> Result<()> {
        self.exec(
            "UPDATE uploads SET headers = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(headers).unwrap_or_default()],
        )
    }

    /// Removes a profile; its uploads keep going with no credentials of their own.
    pub fn delete_profile(&self, name: &str) -> Result<bool> {
        let n = self
            .conn()
            .execute("DELETE FROM profiles WHERE name = ?1", [name]);
        self.forget_profiles();
        let n = n?;
        Ok(n > 0)
    }
}

/// Sets a mode that keeps other users out. Best effort: a path this user does not own (a
/// shared data directory someone set up) keeps its mode, with a warning.
pub(crate) fn owner_only(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), error = %e, "could not make this readable by its owner alone");
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Gives rows from before destinations theirs, from the row's endpoint and metadata and its
/// profile as it is now (or its own headers). Once: later rows get theirs when inserted.
fn backfill_destinations(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let rows: Vec<(i64, String, String, String, Option<String>)> = tx
        .prepare(
            "SELECT u.id, e.url, u.metadata, u.headers, p.id || char(0) || p.name || char(0) || p.body
             FROM uploads u JOIN endpoints e ON e.id = u.endpoint_id
             LEFT JOIN profiles p ON p.id = u.profile_id WHERE u.destination IS NULL",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if rows.is_empty() {
        return Ok(());
    }
    {
        let mut update = tx.prepare("UPDATE uploads SET destination = ?2 WHERE id = ?1")?;
        for (id, endpoint, metadata, headers, profile) in &rows {
            let profile = profile.as_deref().and_then(|p| {
                let mut it = p.splitn(3, '\0');
                let id: ProfileId = it.next()?.parse().ok()?;
                let name = it.next()?.to_string();
                let mut p: Profile = serde_json::from_str(it.next()?).ok()?;
                p.id = id;
                p.name = name;
                Some(p)
            });
            let metadata: BTreeMap<String, String> =
                serde_json::from_str(metadata).unwrap_or_default();
            let headers: BTreeMap<String, String> =
                serde_json::from_str(headers).unwrap_or_default();
            let d =
                crate::identity::destination::of(endpoint, &metadata, profile.as_ref(), &headers);
            update.execute(params![id, d])?;
        }
    }
    tx.commit()?;
    tracing::info!(
        rows = rows.len(),
        "journal: destinations of earlier uploads recorded"
    );
    Ok(())
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
}

//! Upload rows: inserting (in group commits), reading, the state and epoch of a run, the
//! proofs of what was sent, and the intake of drops still being walked.

use super::*;

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

pub(super) const SELECT: &str =
    "SELECT u.id, u.position, u.path, u.name, u.size, u.mtime_ns, u.fingerprint, e.url,
    u.upload_url, u.acked_offset, u.state, u.error, u.metadata, u.headers, u.chunk_size,
    u.created_at, u.updated_at, u.completed_at, u.expires_at, u.recreated,
    u.ino, u.ctime_ns, u.content_hash, u.resent, u.profile_id, p.name, u.given_url, u.asks_host,
    u.cleared_at, u.busy_ms, u.retries, u.last_error, u.error_code, u.error_detail,
    u.destination
    FROM uploads u JOIN endpoints e ON e.id = u.endpoint_id
    LEFT JOIN profiles p ON p.id = u.profile_id";

/// One upload by id, on a connection or inside a transaction.
pub(super) fn record(conn: &Connection, id: UploadId) -> Result<UploadRecord> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE u.id = ?1"))?;
    let rec = stmt.query_row([id], row_to_record).optional()?;
    rec.ok_or(crate::error::Error::UnknownUpload(id))
}

pub(super) fn row_to_record(r: &Row<'_>) -> rusqlite::Result<UploadRecord> {
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

pub(super) fn digest(v: Vec<u8>) -> Option<Digest32> {
    v.try_into().ok()
}

/// A worker write inside the caller's transaction: `sql` (which must carry `epoch = ?2`),
/// then `more`. A stopped worker's write changes nothing and is `Interrupted`.
pub(super) fn epoch_write(
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
pub(super) fn write_proof(tx: &Connection, id: UploadId, proof: &ProofDelta) -> Result<()> {
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

impl Store {
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

    pub(super) fn begin_runs_once(
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

    pub(super) fn set_state_once(
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

    pub(super) fn exists(&self, id: UploadId) -> Result<bool> {
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
}

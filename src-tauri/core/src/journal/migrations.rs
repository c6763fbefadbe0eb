//! The journal's schema, one migration a step, and the backfills a step needs. A journal
//! opened by an older Tusker is brought forward in place; a step is never edited once shipped.

use super::*;

/// Versioned schema migrations; entry N moves `user_version` from N to N+1. Never edit a
/// released entry: append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
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

/// Gives rows from before destinations theirs, from the row's endpoint and metadata and its
/// profile as it is now (or its own headers). Once: later rows get theirs when inserted.
pub(super) fn backfill_destinations(conn: &mut Connection) -> Result<()> {
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

pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
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

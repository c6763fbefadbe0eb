//! The parts of an upload sent as parallel partial uploads: their plan, URLs, proven offsets
//! and block digests, and the count of final POSTs.

use super::*;

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

/// Writes a part's block digests under the file's block numbers (parts start on block
/// boundaries), dropping those past what it proves.
pub(super) fn write_part_blocks(
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
pub(super) fn sum_parts(tx: &Connection, id: UploadId) -> Result<()> {
    tx.prepare_cached(
        "UPDATE uploads SET acked_offset =
         (SELECT COALESCE(SUM(acked), 0) FROM upload_parts WHERE upload_id = ?1) WHERE id = ?1",
    )?
    .execute([id])?;
    Ok(())
}

impl Store {
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
}

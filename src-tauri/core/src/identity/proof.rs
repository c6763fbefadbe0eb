//! Proof of content: SHA-256 of every 1 MiB block of what was actually sent, kept in the
//! journal, so "same content" is decided by hashes and never by a sample or a timestamp.
//!
//! The journal holds, per upload, the digests of the full blocks below the acknowledged
//! offset and the digest of the partial block up to it. That proves the server's prefix
//! `[0, acked)` against the file as it is now (re-hash and compare), and at completion the
//! block list gives the content hash: SHA-256 over the size and the block digests (a hash
//! list, as strong as a plain SHA-256 of the file, and buildable across resumes, which a
//! plain one is not: a SHA-256 state cannot be saved and restored).

use sha2::{Digest, Sha256};
use std::path::Path;

use crate::error::{Error, Result};

/// Bytes per proof block.
pub const BLOCK: u64 = 1 << 20;

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// What the journal keeps of the bytes a server upload holds: digests of the full blocks of
/// `[0, len)` and of the partial block at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixProof {
    pub len: u64,
    pub blocks: Vec<Digest32>,
    /// Digest of `[blocks.len() * BLOCK, len)`; `None` when `len` ends on a block boundary.
    pub partial: Option<Digest32>,
}

impl PrefixProof {
    /// A proof that covers `len` bytes has exactly this many full blocks and a partial
    /// digest iff `len` is not on a boundary. A journal row from before proofs existed
    /// does not, and proves nothing.
    pub fn is_complete(&self) -> bool {
        self.blocks.len() as u64 == self.len / BLOCK
            && self.partial.is_some() != self.len.is_multiple_of(BLOCK)
    }
}

/// Hashes bytes in order, closing a block digest at every boundary. It also serves as the
/// record of what a run has sent: the body reader feeds it every frame it hands over.
#[derive(Clone, Default)]
pub struct PrefixHasher {
    len: u64,
    blocks: Vec<Digest32>,
    current: Sha256,
    /// Full blocks the journal already holds (the rest are new since the last write).
    journalled: usize,
}

impl std::fmt::Debug for PrefixHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixHasher")
            .field("len", &self.len)
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

/// What a journal write of a new acknowledged offset must store beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofDelta {
    /// Block digests from this index on are replaced by `new_blocks`.
    pub from_block: usize,
    pub new_blocks: Vec<Digest32>,
    pub partial: Option<Digest32>,
}

impl PrefixHasher {
    pub fn new() -> PrefixHasher {
        PrefixHasher::default()
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (BLOCK - self.len % BLOCK) as usize;
            let take = room.min(data.len());
            self.current.update(&data[..take]);
            self.len += take as u64;
            data = &data[take..];
            if self.len.is_multiple_of(BLOCK) {
                let d = std::mem::take(&mut self.current).finalize();
                self.blocks.push(d.into());
            }
        }
    }

    fn partial(&self) -> Option<Digest32> {
        (!self.len.is_multiple_of(BLOCK)).then(|| self.current.clone().finalize().into())
    }

    /// The proof of everything hashed so far.
    pub fn proof(&self) -> PrefixProof {
        PrefixProof {
            len: self.len,
            blocks: self.blocks.clone(),
            partial: self.partial(),
        }
    }

    /// What the journal lacks of this proof; call [`journalled`](Self::journalled) once it
    /// is written.
    pub fn delta(&self) -> ProofDelta {
        let from = self.journalled.min(self.blocks.len());
        ProofDelta {
            from_block: from,
            new_blocks: self.blocks[from..].to_vec(),
            partial: self.partial(),
        }
    }

    /// The journal now holds every full block.
    pub fn journalled(&mut self) {
        self.journalled = self.blocks.len();
    }

    /// The content hash once every byte of the file went through.
    pub fn content_hash(&self) -> String {
        content_hash(&self.proof())
    }
}

/// The content hash of a whole file from its proof: `sha256-blocks:<hex>`, SHA-256 over the
/// size and every block digest. Equal hashes mean equal content.
pub fn content_hash(p: &PrefixProof) -> String {
    let mut h = Sha256::new();
    h.update(b"tusker-blocks-v1");
    h.update(p.len.to_le_bytes());
    for b in &p.blocks {
        h.update(b);
    }
    if let Some(b) = &p.partial {
        h.update(b);
    }
    format!("sha256-blocks:{:x}", h.finalize())
}

/// Why the file does not match what the journal proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// First byte of the block that differs.
    pub at: u64,
}

/// Rebuilds a hasher over `[0, target)` of the file at `path`.
///
/// With `trust_journal`, full blocks the journal proves are taken from it and only the rest
/// is read (at most one block plus what lies past the proof): the file's stamp says it has
/// not changed since those bytes were sent. Without it, every byte is read and every block
/// the journal proves is compared with it: the proof of the server's prefix against the file
/// as it is now. Either way a block the journal proves that differs is a [`Mismatch`].
pub fn rebuild(
    path: &Path,
    journal: &PrefixProof,
    target: u64,
    trust_journal: bool,
) -> Result<std::result::Result<PrefixHasher, Mismatch>> {
    rebuild_at(path, 0, journal, target, trust_journal)
}

/// [`rebuild`] for the bytes from `base` on (a part of the file that starts at `base`):
/// `journal`, `target` and a [`Mismatch`] count from there.
pub fn rebuild_at(
    path: &Path,
    base: u64,
    journal: &PrefixProof,
    target: u64,
    trust_journal: bool,
) -> Result<std::result::Result<PrefixHasher, Mismatch>> {
    let proven = journal.len.min(target);
    let comparable = journal.is_complete();
    if !comparable && !trust_journal && proven > 0 {
        // Nothing to compare with: a journal row from before proofs existed proves nothing.
        return Ok(Err(Mismatch { at: 0 }));
    }
    let mut h = PrefixHasher::new();
    if trust_journal && comparable {
        let keep = (proven / BLOCK) as usize;
        h.blocks = journal.blocks[..keep].to_vec();
        h.len = keep as u64 * BLOCK;
        h.journalled = keep;
    }
    let (f, _) = crate::identity::fingerprint::open(path, None)?;
    let mut buf = vec![0u8; BLOCK as usize];
    while h.len < target {
        let want = (target - h.len).min(BLOCK - h.len % BLOCK) as usize;
        let n = crate::platform::read_full_at(&f, &mut buf[..want], base + h.len).map_err(|e| {
            Error::Read {
                path: path.display().to_string(),
                source: e,
            }
        })?;
        if n < want {
            return Err(Error::FileChanged(format!(
                "{} is shorter than the {} bytes the server holds",
                path.display(),
                base + target
            )));
        }
        let block_start = h.len - h.len % BLOCK;
        h.update(&buf[..n]);
        // Compare each block the journal proves as soon as the hasher closes it, and the
        // journal's partial block where the proof ends.
        if comparable && h.len <= journal.len {
            let idx = (block_start / BLOCK) as usize;
            let matches = if h.len.is_multiple_of(BLOCK) {
                journal.blocks.get(idx) == h.blocks.last()
            } else if h.len == journal.len {
                journal.partial.is_some() && journal.partial == h.partial()
            } else {
                true
            };
            if !matches {
                return Ok(Err(Mismatch { at: block_start }));
            }
        }
    }
    // Blocks the journal holds (and that matched it) need no second write.
    if comparable {
        h.journalled = h.blocks.len().min(journal.blocks.len());
    }
    Ok(Ok(h))
}

/// The content hash of a whole file as it is now, read at hashing speed.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let size = crate::identity::fingerprint::stamp(path)?.size;
    match rebuild(path, &PrefixProof::default(), size, false)? {
        Ok(h) => Ok((h.content_hash(), size)),
        Err(_) => unreachable!("an empty journal proof has nothing to mismatch"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn blocks_close_at_boundaries_whatever_the_frames() {
        let d = data(3 * BLOCK as usize + 1234);
        let mut whole = PrefixHasher::new();
        whole.update(&d);
        let mut framed = PrefixHasher::new();
        for part in d.chunks(300_001) {
            framed.update(part);
        }
        assert_eq!(whole.proof(), framed.proof());
        let p = whole.proof();
        assert_eq!(p.blocks.len(), 3);
        assert!(p.partial.is_some() && p.is_complete());
        assert_eq!(whole.content_hash(), framed.content_hash());
        let mut other = d.clone();
        other[BLOCK as usize + 5] ^= 1;
        let mut h = PrefixHasher::new();
        h.update(&other);
        assert_ne!(h.content_hash(), whole.content_hash());
    }

    #[test]
    fn delta_carries_only_new_blocks() {
        let d = data(2 * BLOCK as usize + 10);
        let mut h = PrefixHasher::new();
        h.update(&d[..BLOCK as usize + 5]);
        let first = h.delta();
        assert_eq!((first.from_block, first.new_blocks.len()), (0, 1));
        assert!(first.partial.is_some());
        h.journalled();
        h.update(&d[BLOCK as usize + 5..]);
        let second = h.delta();
        assert_eq!((second.from_block, second.new_blocks.len()), (1, 1));
    }

    #[test]
    fn rebuild_proves_or_finds_the_changed_block() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let d = data(3 * BLOCK as usize + 77);
        std::fs::write(&p, &d).unwrap();
        let sent = 2 * BLOCK + 500;
        let mut h = PrefixHasher::new();
        h.update(&d[..sent as usize]);
        let journal = h.proof();
        // Unchanged: proven both ways, and the result continues exactly like the original.
        for trust in [false, true] {
            let mut r = rebuild(&p, &journal, sent, trust).unwrap().unwrap();
            assert_eq!(r.proof(), journal);
            r.update(&d[sent as usize..]);
            let mut all = PrefixHasher::new();
            all.update(&d);
            assert_eq!(r.content_hash(), all.content_hash());
        }
        // Past the proof: taken from the file.
        let further = rebuild(&p, &journal, 3 * BLOCK, true).unwrap().unwrap();
        assert_eq!(further.len(), 3 * BLOCK);
        // Backwards: a shorter prefix of the same proof.
        let shorter = rebuild(&p, &journal, BLOCK / 2, false).unwrap().unwrap();
        assert_eq!(shorter.len(), BLOCK / 2);
        // One byte changed inside the sent prefix, same size: found, in its block.
        let mut changed = d.clone();
        changed[BLOCK as usize + 3] ^= 0xff;
        std::fs::write(&p, &changed).unwrap();
        assert_eq!(
            rebuild(&p, &journal, sent, false).unwrap().err(),
            Some(Mismatch { at: BLOCK })
        );
        // Inside the partial block too.
        let mut changed = d.clone();
        changed[2 * BLOCK as usize + 499] ^= 1;
        std::fs::write(&p, &changed).unwrap();
        assert_eq!(
            rebuild(&p, &journal, sent, false).unwrap().err(),
            Some(Mismatch { at: 2 * BLOCK })
        );
        assert!(rebuild(&p, &journal, sent, true).unwrap().is_err());
        // A change past the sent prefix is not the server's business.
        let mut changed = d.clone();
        changed[sent as usize + 1] ^= 1;
        std::fs::write(&p, &changed).unwrap();
        assert!(rebuild(&p, &journal, sent, false).unwrap().is_ok());
    }

    #[test]
    fn a_journal_without_a_proof_proves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, data(5000)).unwrap();
        let legacy = PrefixProof {
            len: 4000,
            blocks: vec![],
            partial: None,
        };
        assert!(!legacy.is_complete());
        assert!(rebuild(&p, &legacy, 4000, false).unwrap().is_err());
        // Trusting the file (its stamp unchanged) rebuilds it from the file.
        let h = rebuild(&p, &legacy, 4000, true).unwrap().unwrap();
        assert_eq!(h.len(), 4000);
    }
}

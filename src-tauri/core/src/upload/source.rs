//! Reading a file range as a streamed request body: no chunk is ever held whole in memory.
//! The stream meters bytes (for progress and stall detection), obeys the global rate limit and
//! notices a file that shrinks under it.

use bytes::{Bytes, BytesMut};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::identity::fingerprint::open_err;
use crate::platform::read_full_at;
use crate::tus::protocol::{self, ChecksumAlgorithm};
use crate::upload::ratelimit::RateLimiter;

/// Read size of one body frame.
pub const BLOCK: usize = 256 * 1024;

/// Live counters of the request in flight, shared with the watchdog and progress reporter.
#[derive(Debug)]
pub struct Transfer {
    start: Instant,
    sent: AtomicU64,
    last_activity_ms: AtomicU64,
    failure: Mutex<Option<String>>,
}

impl Transfer {
    /// Fresh counters; activity starts now.
    pub fn new() -> Arc<Transfer> {
        Arc::new(Transfer {
            start: Instant::now(),
            sent: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(0),
            failure: Mutex::new(None),
        })
    }

    /// Body bytes handed to the HTTP stack in this request.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Marks progress (a frame handed over, or the request started).
    pub fn touch(&self) {
        self.last_activity_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last frame moved.
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// Why the body stream ended early, if it did (e.g. the file shrank).
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counts body bytes handed to the HTTP stack.
    pub(crate) fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
        self.touch();
    }

    fn fail(&self, msg: String) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
    }
}

/// The record of what a run has sent: a hasher over `[0, len)` of the server upload. Each
/// request body feeds it the frames it hands over, tagged with the request's generation, so
/// a reader of an earlier request that is still winding down can never add to it.
#[derive(Debug, Default)]
pub struct SentLog {
    generation: u64,
    /// File offset of the server upload's byte 0 (a part's start; 0 for a whole file).
    base: u64,
    hasher: crate::identity::proof::PrefixHasher,
}

/// Shared between the worker and its request body's reader.
pub type Sent = Arc<Mutex<SentLog>>;

impl SentLog {
    pub fn new(hasher: crate::identity::proof::PrefixHasher) -> Sent {
        Self::from(0, hasher)
    }

    /// The record of a server upload that holds the file's bytes from `base` on.
    pub fn from(base: u64, hasher: crate::identity::proof::PrefixHasher) -> Sent {
        Arc::new(Mutex::new(SentLog {
            generation: 0,
            base,
            hasher,
        }))
    }

    pub fn hasher(&self) -> &crate::identity::proof::PrefixHasher {
        &self.hasher
    }

    pub fn hasher_mut(&mut self) -> &mut crate::identity::proof::PrefixHasher {
        &mut self.hasher
    }

    /// Replaces the record (after a rebuild); readers of earlier requests are cut off.
    pub fn reset(&mut self, hasher: crate::identity::proof::PrefixHasher) {
        self.generation += 1;
        self.hasher = hasher;
    }

    /// A request ended: readers of it can no longer add to the record.
    pub fn seal(&mut self) {
        self.generation += 1;
    }

    /// A new request starts at `offset`; returns its generation.
    fn begin(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Adds a frame at file offset `at` if this request is still the current one and the
    /// frame is the next byte of the record.
    fn record(&mut self, generation: u64, at: u64, frame: &[u8]) {
        if generation == self.generation && self.base + self.hasher.len() == at {
            self.hasher.update(frame);
        }
    }
}

/// Locks a sent log (a panic elsewhere cannot leave a hasher half-updated in a harmful way:
/// a wrong length only forces a rebuild).
pub fn lock(sent: &Sent) -> std::sync::MutexGuard<'_, SentLog> {
    sent.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records bytes already in memory that are about to be sent at `at`.
pub fn record_memory(sent: &Sent, at: u64, bytes: &[u8]) {
    let mut log = lock(sent);
    let generation = log.begin();
    log.record(generation, at, bytes);
}

/// Frame size under the current rate limit: small frames under a low limit keep the flow
/// smooth (and the stall watchdog fed) instead of bursty.
fn frame_size(limiter: &RateLimiter) -> usize {
    match limiter.rate() {
        0 => BLOCK,
        rate => BLOCK.min((rate / 10).max(4096) as usize),
    }
}

/// A body from bytes already in memory, framed and rate-limited like a file body.
pub fn memory_body(
    bytes: Bytes,
    limiter: Arc<RateLimiter>,
    transfer: Arc<Transfer>,
) -> crate::tus::transport::BodyStream {
    let stream =
        futures_util::stream::unfold((bytes, limiter, transfer), |(mut b, l, t)| async move {
            if b.is_empty() {
                return None;
            }
            let part = b.split_to(b.len().min(frame_size(&l)));
            l.acquire(part.len()).await;
            t.add_sent(part.len() as u64);
            Some((Ok::<Bytes, std::io::Error>(part), (b, l, t)))
        });
    Box::pin(stream)
}

/// A local file that uploads read from.
#[derive(Debug, Clone)]
pub struct Source {
    path: PathBuf,
    /// The inode the journal knows the file by (checked at every open).
    ino: Option<u64>,
}

/// Frames read ahead of the HTTP stack per body: reading overlaps sending, memory stays
/// bounded (a few frames per upload).
const READ_AHEAD: usize = 2;

/// Opens the file to read, never through a link; a missing file is `FileMissing`. With
/// `ino` (the journal's), a file that is not that one any more (replaced at its path, or a
/// folder on the way swapped for a link elsewhere) is `FileChanged`: nothing of it is read.
fn open(path: &Path, ino: Option<u64>) -> Result<std::fs::File> {
    let (f, md) = crate::identity::fingerprint::open(path, None)?;
    if let Some(want) = ino.filter(|i| *i != 0) {
        if crate::platform::FileId::of(&md).ino != want {
            return Err(Error::Replaced(path.display().to_string()));
        }
    }
    Ok(f)
}

/// What a read that came up short means: the file is shorter than when it was added.
fn shrank(path: &Path) -> String {
    format!("{} shrank while uploading", path.display())
}

/// How long one look at an upload's file (a stat, an open, a read) may take: a network
/// mount that hangs must not hold an upload, or the queue, for ever.
pub const FILE_TIMEOUT: Duration = Duration::from_secs(30);

/// [`blocking`] within [`FILE_TIMEOUT`]; `what` names the file for the message. (The thread
/// stuck in the system call is left to finish on its own.)
pub(crate) async fn blocking_file<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    blocking_within(FILE_TIMEOUT, what, f).await
}

async fn blocking_within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::time::timeout(limit, blocking(f)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Read {
            path: what.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the disk did not answer within {} s (a network drive that hangs?)",
                    limit.as_secs_f64()
                ),
            ),
        }),
    }
}

/// The file's stamp, looked at off the engine's thread ([`blocking_file`]).
pub(crate) async fn stamp(path: &str) -> Result<crate::identity::fingerprint::FileStamp> {
    let p = PathBuf::from(path);
    blocking_file(path, move || crate::identity::fingerprint::stamp(&p)).await
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}

impl Source {
    /// A source for `path` (opened lazily per request, so a moved file is noticed).
    pub fn new(path: impl Into<PathBuf>) -> Source {
        Source {
            path: path.into(),
            ino: None,
        }
    }

    /// The same source, reading only the file with this inode (the journal's stamp).
    pub fn expecting(self, ino: u64) -> Source {
        Source {
            ino: Some(ino),
            ..self
        }
    }

    /// The path read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A streamed body of `len` bytes starting at `offset`. One blocking task opens the file
    /// and reads frames with pread straight into the buffers it hands over (no second copy),
    /// at most [`READ_AHEAD`] frames ahead of the HTTP stack.
    pub async fn body(
        &self,
        offset: u64,
        len: u64,
        limiter: Arc<RateLimiter>,
        transfer: Arc<Transfer>,
        sent: Sent,
    ) -> Result<crate::tus::transport::BodyStream> {
        let (path, ino) = (self.path.clone(), self.ino);
        let file =
            blocking_file(&self.path.display().to_string(), move || open(&path, ino)).await?;
        transfer.touch();
        let generation = lock(&sent).begin();
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
        let path = self.path.clone();
        let t = transfer.clone();
        let l = limiter.clone();
        tokio::task::spawn_blocking(move || {
            let mut at = offset;
            let end = offset + len;
            while at < end {
                // Per frame, so a rate changed mid-request reshapes the frames too.
                let want = (end - at).min(frame_size(&l) as u64) as usize;
                let mut buf = BytesMut::zeroed(want);
                let item = match read_full_at(&file, &mut buf, at) {
                    Ok(n) if n == want => {
                        // Hashed as read for sending (a few frames ahead of the wire): the
                        // record is of these very bytes, and only the part up to the
                        // server's acknowledged offset is ever journalled.
                        lock(&sent).record(generation, at, &buf);
                        Ok(buf.freeze())
                    }
                    Ok(_) => {
                        let msg = shrank(&path);
                        t.fail(msg.clone());
                        Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg))
                    }
                    Err(e) => {
                        t.fail(format!("cannot read {}: {e}", path.display()));
                        Err(e)
                    }
                };
                let failed = item.is_err();
                // The receiver is gone when the request was aborted: stop reading.
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
                at += want as u64;
            }
        });
        let stream =
            futures_util::stream::unfold((rx, limiter, transfer), |(mut rx, l, t)| async move {
                let item = rx.recv().await?;
                if let Ok(b) = &item {
                    l.acquire(b.len()).await;
                    t.add_sent(b.len() as u64);
                }
                Some((item, (rx, l, t)))
            });
        Ok(Box::pin(stream))
    }

    /// A range read into memory (for the tail, which is checked against the stamp before
    /// it is sent), handed to `then` in the same place. A file shorter than the range has
    /// changed.
    pub async fn read_then<T: Send + 'static>(
        &self,
        offset: u64,
        len: u64,
        then: impl FnOnce(Bytes) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let ino = self.ino;
        let read = move |path: &Path| {
            let f = open(path, ino)?;
            let mut buf = BytesMut::zeroed(len as usize);
            let n = read_full_at(&f, &mut buf, offset).map_err(|e| open_err(path, e))?;
            if n < buf.len() {
                return Err(Error::FileChanged(shrank(path)));
            }
            then(buf.freeze())
        };
        let path = self.path.clone();
        blocking_file(&self.path.display().to_string(), move || read(&path)).await
    }

    /// `Upload-Checksum` value for a range (read once more, before sending it).
    pub async fn checksum(&self, alg: ChecksumAlgorithm, offset: u64, len: u64) -> Result<String> {
        let (path, ino) = (self.path.clone(), self.ino);
        blocking_file(&self.path.display().to_string(), move || {
            let f = open(&path, ino)?;
            let mut at = offset;
            let end = offset + len;
            let mut buf = vec![0u8; BLOCK];
            let mut sha256 = sha2::Sha256::new();
            let mut sha1 = sha1_smol::Sha1::new();
            while at < end {
                let want = (end - at).min(BLOCK as u64) as usize;
                let n = read_full_at(&f, &mut buf[..want], at).map_err(|e| open_err(&path, e))?;
                if n < want {
                    return Err(Error::FileChanged(shrank(&path)));
                }
                match alg {
                    ChecksumAlgorithm::Sha256 => sha256.update(&buf[..n]),
                    ChecksumAlgorithm::Sha1 => sha1.update(&buf[..n]),
                }
                at += n as u64;
            }
            let digest = match alg {
                ChecksumAlgorithm::Sha256 => sha256.finalize().to_vec(),
                ChecksumAlgorithm::Sha1 => sha1.digest().bytes().to_vec(),
            };
            Ok(protocol::format_checksum(alg, &digest))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_look_at_a_file_that_hangs_ends_in_time_and_the_thread_goes_on() {
        let started = Instant::now();
        let hung = blocking_within(Duration::from_millis(200), "/mnt/nfs/x", || {
            std::thread::sleep(Duration::from_secs(3));
            Ok(())
        });
        // The engine's one thread keeps working meanwhile.
        let ticks = async {
            let mut n = 0;
            while started.elapsed() < Duration::from_millis(150) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                n += 1;
            }
            n
        };
        let (r, n) = tokio::join!(hung, ticks);
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("did not answer") && e.contains("/mnt/nfs/x"),
            "{e}"
        );
        assert!(n > 5, "the thread was held");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

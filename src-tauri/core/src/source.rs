//! Reading a file range as a streamed request body: no chunk is ever held whole in memory.
//! The stream meters bytes (for progress and stall detection), obeys the global rate limit and
//! notices a file that shrinks under it.

use bytes::{Bytes, BytesMut};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::{Error, Result};
use crate::protocol::{self, ChecksumAlgorithm};
use crate::ratelimit::RateLimiter;

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
) -> reqwest::Body {
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
    reqwest::Body::wrap_stream(stream)
}

/// A local file that uploads read from.
#[derive(Debug, Clone)]
pub struct Source {
    path: PathBuf,
}

struct StreamState {
    file: tokio::fs::File,
    remaining: u64,
    limiter: Arc<RateLimiter>,
    transfer: Arc<Transfer>,
    path: PathBuf,
}

impl Source {
    /// A source for `path` (opened lazily per request, so a moved file is noticed).
    pub fn new(path: impl Into<PathBuf>) -> Source {
        Source { path: path.into() }
    }

    /// The path read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn open_at(&self, offset: u64) -> Result<tokio::fs::File> {
        let mut f = tokio::fs::File::open(&self.path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::FileMissing(self.path.display().to_string())
            } else {
                Error::Read {
                    path: self.path.display().to_string(),
                    source: e,
                }
            }
        })?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        Ok(f)
    }

    /// A streamed body of `len` bytes starting at `offset`.
    pub async fn body(
        &self,
        offset: u64,
        len: u64,
        limiter: Arc<RateLimiter>,
        transfer: Arc<Transfer>,
    ) -> Result<reqwest::Body> {
        let file = self.open_at(offset).await?;
        transfer.touch();
        let state = StreamState {
            file,
            remaining: len,
            limiter,
            transfer,
            path: self.path.clone(),
        };
        let stream = futures_util::stream::unfold(state, |mut st| async move {
            if st.remaining == 0 {
                return None;
            }
            let want = (st.remaining.min(frame_size(&st.limiter) as u64)) as usize;
            let mut buf = BytesMut::with_capacity(want);
            while buf.len() < want {
                let before = buf.len();
                let mut take = (&mut st.file).take((want - before) as u64);
                match take.read_buf(&mut buf).await {
                    Ok(0) => {
                        let msg = format!("{} shrank while uploading", st.path.display());
                        st.transfer.fail(msg.clone());
                        return Some((
                            Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg)),
                            st,
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        st.transfer
                            .fail(format!("cannot read {}: {e}", st.path.display()));
                        return Some((Err(e), st));
                    }
                }
            }
            st.limiter.acquire(want).await;
            st.remaining -= want as u64;
            st.transfer.add_sent(want as u64);
            Some((Ok::<Bytes, std::io::Error>(buf.freeze()), st))
        });
        Ok(reqwest::Body::wrap_stream(stream))
    }

    /// A range read into memory (for the tail, which is checked against the stamp before
    /// it is sent). A file shorter than the range has changed.
    pub async fn read(&self, offset: u64, len: u64) -> Result<Bytes> {
        let mut f = self.open_at(offset).await?;
        let mut buf = Vec::with_capacity(len as usize);
        (&mut f).take(len).read_to_end(&mut buf).await?;
        if (buf.len() as u64) < len {
            return Err(Error::FileChanged(format!(
                "{} shrank while uploading",
                self.path.display()
            )));
        }
        Ok(Bytes::from(buf))
    }

    /// `Upload-Checksum` value for a range (read once more, before sending it).
    pub async fn checksum(&self, alg: ChecksumAlgorithm, offset: u64, len: u64) -> Result<String> {
        let mut f = self.open_at(offset).await?;
        let mut remaining = len;
        let mut buf = vec![0u8; BLOCK];
        let mut sha256 = sha2::Sha256::new();
        let mut sha1 = sha1_smol::Sha1::new();
        while remaining > 0 {
            let want = remaining.min(BLOCK as u64) as usize;
            let n = f.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(Error::FileChanged(format!(
                    "{} shrank while uploading",
                    self.path.display()
                )));
            }
            match alg {
                ChecksumAlgorithm::Sha256 => sha256.update(&buf[..n]),
                ChecksumAlgorithm::Sha1 => sha1.update(&buf[..n]),
            }
            remaining -= n as u64;
        }
        let digest = match alg {
            ChecksumAlgorithm::Sha256 => sha256.finalize().to_vec(),
            ChecksumAlgorithm::Sha1 => sha1.digest().bytes().to_vec(),
        };
        Ok(protocol::format_checksum(alg, &digest))
    }
}

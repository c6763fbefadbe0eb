//! A global bandwidth limit shared by every upload: one token bucket, refilled continuously.
//! The lock only guards arithmetic; callers sleep outside it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token bucket over bytes per second; a rate of 0 means unlimited.
#[derive(Debug)]
pub struct RateLimiter {
    rate: AtomicU64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens available (may go negative: a debt paid by waiting).
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A limiter at `bytes_per_sec` (0 = unlimited).
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter {
            rate: AtomicU64::new(bytes_per_sec),
            state: Mutex::new(Bucket {
                tokens: 0.0,
                last: Instant::now(),
            }),
        }
    }

    /// Changes the rate at run time; takes effect for the next block.
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// The current rate (0 = unlimited).
    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes' worth of tokens and says how long to wait before sending them.
    pub fn reserve(&self, n: usize) -> Duration {
        let rate = self.rate() as f64;
        if rate <= 0.0 {
            return Duration::ZERO;
        }
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        // Allow a burst of at most a quarter second's worth.
        b.tokens = (b.tokens + elapsed * rate).min(rate / 4.0);
        b.tokens -= n as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / rate)
        }
    }

    /// Waits until `n` bytes may be sent.
    pub async fn acquire(&self, n: usize) {
        let wait = self.reserve(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits() {
        let r = RateLimiter::new(0);
        assert_eq!(r.reserve(1 << 30), Duration::ZERO);
    }

    #[test]
    fn debt_turns_into_wait() {
        let r = RateLimiter::new(1000);
        // 2000 bytes at 1000 B/s from an empty bucket: about two seconds of debt. However
        // long this thread is held up between `new` and `reserve` (a loaded machine), the
        // bucket holds at most a quarter second's worth (250 bytes), so the wait is between
        // 1.75 s and 2 s; without the cap a delay would shrink it to nothing.
        let w = r.reserve(2000);
        assert!(
            w >= Duration::from_millis(1750) && w <= Duration::from_millis(2000),
            "{w:?}"
        );
    }

    #[test]
    fn a_long_idle_time_banks_only_a_quarter_second() {
        let r = RateLimiter::new(1000);
        // Idle for far longer than a quarter second, without sleeping: the clock is moved.
        r.state.lock().unwrap().last -= Duration::from_secs(10);
        // 250 bytes banked at most: 1250 bytes wait for (at least) one second, not zero.
        let w = r.reserve(1250);
        assert!(
            w >= Duration::from_millis(999) && w <= Duration::from_millis(1000),
            "{w:?}"
        );
    }
}

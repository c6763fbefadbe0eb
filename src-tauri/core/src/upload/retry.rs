//! When to try again: exponential backoff with full jitter, capped, honouring Retry-After.
//! Jitter keeps many clients (or many uploads of one client) from retrying in lockstep.

use rand::Rng;
use std::time::Duration;

/// Retry policy of the engine.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// First delay; doubles with each failure in a row.
    pub base: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
    /// Consecutive failures without progress before the upload fails (resets on progress).
    pub max_attempts: u32,
    /// For failures of the network itself (unreachable, refused, reset, DNS, stalled) and a
    /// journal held by another program, keep waiting for this long without progress, without
    /// spending the attempt budget: a laptop that is offline for an hour picks its uploads up
    /// again by itself, and a server error after the outage still gets the whole budget.
    /// `None` (the CLI's default, so a script is not kept waiting) counts them like any other
    /// error.
    #[serde(default)]
    pub network_patience: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_attempts: 12,
            network_patience: None,
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt number `attempt` (1 = first retry). `retry_after` from the server
    /// wins when given, capped at ten minutes so a hostile header cannot park an upload forever.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(Duration::from_secs(600));
        }
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        // "Equal jitter": half fixed, half random, so the delay never collapses to ~0.
        let half = exp / 2;
        let jitter = rand::thread_rng().gen_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let p = RetryPolicy::default();
        for attempt in 1..30 {
            let d = p.delay(attempt, None);
            let exp = (p.base * 2u32.pow((attempt - 1).min(20))).min(p.max_delay);
            assert!(
                d >= exp / 2 && d <= exp,
                "attempt {attempt}: {d:?} vs {exp:?}"
            );
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7200))),
            Duration::from_secs(600)
        );
    }
}

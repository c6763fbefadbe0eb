//! Speed and ETA for progress bars: an exponential moving average over samples of bytes moved,
//! so a bar neither jumps with every packet nor lags for seconds.

use std::time::Instant;

/// Smoothed throughput of one upload.
#[derive(Debug, Clone)]
pub struct SpeedMeter {
    last: Option<(Instant, u64)>,
    ema: f64,
}

/// Weight of the newest sample per second of elapsed time (time constant ~2 s).
const TAU_SECS: f64 = 2.0;

impl Default for SpeedMeter {
    fn default() -> Self {
        SpeedMeter::new()
    }
}

impl SpeedMeter {
    /// A meter with no samples.
    pub fn new() -> SpeedMeter {
        SpeedMeter {
            last: None,
            ema: 0.0,
        }
    }

    /// Feeds the total bytes moved so far (acknowledged + in flight) at `now`.
    pub fn sample(&mut self, now: Instant, total: u64) {
        match self.last {
            None => self.last = Some((now, total)),
            Some((t, b)) => {
                let dt = now.duration_since(t).as_secs_f64();
                if dt < 0.05 {
                    return;
                }
                // A drop (server lost bytes, or a new server upload) restarts the measurement.
                let inst = total.saturating_sub(b) as f64 / dt;
                let alpha = 1.0 - (-dt / TAU_SECS).exp();
                self.ema = if self.ema == 0.0 {
                    inst
                } else {
                    self.ema + alpha * (inst - self.ema)
                };
                self.last = Some((now, total));
            }
        }
    }

    /// Forgets history (after a pause or a retry wait, old speed says nothing).
    pub fn reset(&mut self) {
        self.last = None;
        self.ema = 0.0;
    }

    /// Bytes per second.
    pub fn speed(&self) -> f64 {
        self.ema
    }

    /// Seconds left for `remaining` bytes, if the speed is known.
    pub fn eta(&self, remaining: u64) -> Option<f64> {
        (self.ema > 1.0).then(|| remaining as f64 / self.ema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn converges_to_steady_rate() {
        let mut m = SpeedMeter::new();
        let t0 = Instant::now();
        for i in 0..100u64 {
            m.sample(t0 + Duration::from_millis(100 * i), i * 100_000);
        }
        assert!((m.speed() - 1_000_000.0).abs() < 1.0, "{}", m.speed());
        assert!((m.eta(2_000_000).unwrap() - 2.0).abs() < 0.01);
    }
}

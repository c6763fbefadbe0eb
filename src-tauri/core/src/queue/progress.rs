//! Speed and ETA for progress bars: an exponential moving average of the rate over the last
//! second, so a bar neither jumps with every packet or acknowledged chunk nor lags for seconds.

use std::collections::VecDeque;
use std::time::Instant;

/// Smoothed throughput of one upload.
#[derive(Debug, Clone)]
pub struct SpeedMeter {
    /// The first sample since the last reset: the first estimate is the average since then.
    first: Option<(Instant, u64)>,
    last: Option<(Instant, u64)>,
    /// Samples of the last second (and the one before it): the rate fed to the average is
    /// taken over a whole second, so bytes acknowledged in bursts read as a steady flow.
    window: VecDeque<(Instant, u64)>,
    ema: f64,
}

/// The span each rate is measured over.
const WINDOW_SECS: f64 = 1.0;

/// Weight of the newest sample per second of elapsed time (time constant ~2 s).
const TAU_SECS: f64 = 2.0;

/// No speed (and no ETA) is said before this much was measured: a first burst of bytes
/// would otherwise read as a speed several times the real one, then fall.
const WARM_UP_SECS: f64 = 1.0;

impl Default for SpeedMeter {
    fn default() -> Self {
        SpeedMeter::new()
    }
}

impl SpeedMeter {
    /// A meter with no samples.
    pub fn new() -> SpeedMeter {
        SpeedMeter {
            first: None,
            last: None,
            window: VecDeque::new(),
            ema: 0.0,
        }
    }

    /// Feeds the total bytes moved so far (acknowledged + in flight) at `now`.
    pub fn sample(&mut self, now: Instant, total: u64) {
        let (t0, b0) = *self.first.get_or_insert((now, total));
        match self.last {
            None => {
                self.last = Some((now, total));
                self.window.push_back((now, total));
            }
            Some((t, b)) => {
                let dt = now.duration_since(t).as_secs_f64();
                if dt < 0.05 {
                    return;
                }
                if total < b {
                    // Progress went back (the server lost bytes, or a new server upload):
                    // the window starts over from here.
                    self.window.clear();
                }
                self.window.push_back((now, total));
                while self.window.len() > 2
                    && now.duration_since(self.window[1].0).as_secs_f64() >= WINDOW_SECS
                {
                    self.window.pop_front();
                }
                let (wt, wb) = self.window[0];
                let span = now.duration_since(wt).as_secs_f64();
                let inst = if span > 0.0 {
                    total.saturating_sub(wb) as f64 / span
                } else {
                    0.0
                };
                let alpha = 1.0 - (-dt / TAU_SECS).exp();
                if self.ema == 0.0 {
                    // The first estimate: the average since the first sample, once a second
                    // of it was seen.
                    let span = now.duration_since(t0).as_secs_f64();
                    if span >= WARM_UP_SECS {
                        self.ema = total.saturating_sub(b0) as f64 / span;
                    }
                } else {
                    self.ema += alpha * (inst - self.ema);
                }
                self.last = Some((now, total));
            }
        }
    }

    /// Forgets history (after a pause or a retry wait, old speed says nothing).
    pub fn reset(&mut self) {
        self.first = None;
        self.last = None;
        self.window.clear();
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

    /// A scripted clock: samples every 250 ms (as the engine takes them), the bytes arriving
    /// in bursts of 1 MiB once a second (acknowledged chunks): 1 MiB/s on average.
    #[test]
    fn bursts_read_as_a_steady_speed_and_no_first_spike() {
        let mut m = SpeedMeter::new();
        let t0 = Instant::now();
        let mib = 1u64 << 20;
        let mut total = 0;
        let mut readings = Vec::new();
        for i in 0..120u64 {
            if i % 4 == 1 {
                total += mib;
            }
            m.sample(t0 + Duration::from_millis(250 * i), total);
            readings.push((i, m.speed(), m.eta(100 * mib)));
        }
        for (i, speed, eta) in &readings {
            let secs = *i as f64 / 4.0;
            if secs < 1.0 {
                assert_eq!((*speed, *eta), (0.0, None), "nothing said before a second");
                continue;
            }
            assert!(
                *speed > 0.8 * mib as f64 && *speed < 1.25 * mib as f64,
                "{secs} s: {speed} B/s"
            );
        }
        // Successive ETAs (a quarter of a second apart) move by less than 5%: the countdown
        // does not jump.
        for w in readings.windows(2).skip(8) {
            let (a, b) = (w[0].2.unwrap(), w[1].2.unwrap());
            assert!((b - a).abs() / a < 0.05, "{a} -> {b}");
        }
    }

    #[test]
    fn a_reset_forgets_the_old_speed() {
        let mut m = SpeedMeter::new();
        let t0 = Instant::now();
        for i in 0..20u64 {
            m.sample(t0 + Duration::from_millis(250 * i), i * 250_000);
        }
        assert!(m.speed() > 0.0);
        m.reset();
        assert_eq!((m.speed(), m.eta(1)), (0.0, None));
        m.sample(t0 + Duration::from_secs(60), 0);
        m.sample(t0 + Duration::from_millis(60_500), 10_000_000);
        assert_eq!(
            m.speed(),
            0.0,
            "half a second after a reset says nothing yet"
        );
    }
}

//! A rolling failure-rate window for the circuit breaker: outcomes counted in ten buckets that
//! together span the window, so old outcomes fall out a bucket at a time.

use std::time::Duration;

use tokio::time::Instant;

pub use crate::config::FailureRateConfig;

const BUCKETS: usize = 10;

#[derive(Debug)]
pub struct FailureWindow {
    config: FailureRateConfig,
    epoch: Instant,
    /// (requests, failures) per bucket, bucket `i` at `i % BUCKETS`.
    buckets: [(u32, u32); BUCKETS],
    /// The bucket index last written.
    current: u64,
}

impl FailureWindow {
    pub fn new(config: FailureRateConfig, now: Instant) -> Self {
        Self {
            config,
            epoch: now,
            buckets: [(0, 0); BUCKETS],
            current: 0,
        }
    }

    fn width(&self) -> Duration {
        (self.config.window / BUCKETS as u32).max(Duration::from_millis(1))
    }

    /// Counts one outcome; returns whether the failure rate now calls for opening.
    pub fn record(&mut self, failed: bool, now: Instant) -> bool {
        let index =
            (now.saturating_duration_since(self.epoch).as_nanos() / self.width().as_nanos()) as u64;
        // Clear the buckets that fell out of the window since the last write.
        let stale = index.saturating_sub(self.current).min(BUCKETS as u64);
        for i in 1..=stale {
            self.buckets[((self.current + i) % BUCKETS as u64) as usize] = (0, 0);
        }
        self.current = self.current.max(index);
        let bucket = &mut self.buckets[(self.current % BUCKETS as u64) as usize];
        bucket.0 += 1;
        bucket.1 += u32::from(failed);
        let (requests, failures) = self
            .buckets
            .iter()
            .fold((0u32, 0u32), |(r, f), b| (r + b.0, f + b.1));
        requests >= self.config.min_requests
            && f64::from(failures) >= self.config.rate * f64::from(requests)
    }

    pub fn reset(&mut self) {
        self.buckets = [(0, 0); BUCKETS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> (FailureWindow, Instant) {
        let now = Instant::now();
        let config = FailureRateConfig {
            rate: 0.5,
            window: Duration::from_secs(10),
            min_requests: 4,
        };
        (FailureWindow::new(config, now), now)
    }

    #[test]
    fn needs_enough_requests_and_a_high_enough_rate() {
        let (mut w, now) = window();
        assert!(!w.record(true, now), "1 of 1, below the minimum");
        assert!(!w.record(false, now));
        assert!(!w.record(false, now), "1 of 3");
        assert!(w.record(true, now), "2 of 4 = 50%");
    }

    #[test]
    fn old_outcomes_fall_out_of_the_window() {
        let (mut w, now) = window();
        for _ in 0..3 {
            w.record(true, now);
        }
        let later = now + Duration::from_secs(11);
        assert!(!w.record(true, later), "the three old failures are gone");
    }
}

//! One-second intervals of HDR histograms and counters, and the cumulative run totals.
//!
//! Recording takes one short lock per request (not per token); the reporter swaps the interval
//! out once a second, so nothing is kept per request and memory stays flat over long runs.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::{ErrorClass, Outcome};

/// Latencies are recorded in microseconds, from 1 us to 1 hour, at 3 significant digits.
const HIGHEST_US: u64 = 3_600_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("static histogram bounds are valid")
}

/// Counters and histograms for one span of time.
#[derive(Clone, Debug)]
pub struct Interval {
    pub ok: u64,
    pub failed: [u64; ErrorClass::ALL.len()],
    pub output_tokens: u64,
    /// Latency of successful requests.
    pub latency: Histogram<u64>,
    pub ttft: Histogram<u64>,
    pub inter_token: Histogram<u64>,
}

impl Default for Interval {
    fn default() -> Self {
        Interval {
            ok: 0,
            failed: [0; ErrorClass::ALL.len()],
            output_tokens: 0,
            latency: new_histogram(),
            ttft: new_histogram(),
            inter_token: new_histogram(),
        }
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, HIGHEST_US)
}

impl Interval {
    pub fn record(&mut self, outcome: &Outcome) {
        match outcome.failure {
            Some(class) => self.failed[class.index()] += 1,
            None => {
                self.ok += 1;
                self.output_tokens += outcome.output_tokens;
                self.latency.saturating_record(micros(outcome.latency));
                if let Some(ttft) = outcome.ttft {
                    self.ttft.saturating_record(micros(ttft));
                }
                for &gap in &outcome.inter_token_us {
                    self.inter_token.saturating_record(gap.clamp(1, HIGHEST_US));
                }
            }
        }
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }

    pub fn requests(&self) -> u64 {
        self.ok + self.failed_total()
    }

    pub fn add(&mut self, other: &Interval) {
        self.ok += other.ok;
        for (mine, theirs) in self.failed.iter_mut().zip(other.failed) {
            *mine += theirs;
        }
        self.output_tokens += other.output_tokens;
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.ttft.add(&other.ttft);
        let _ = self.inter_token.add(&other.inter_token);
    }
}

/// Where workers record; shared by all of them.
#[derive(Debug, Default)]
pub struct Recorder {
    current: Mutex<Interval>,
}

impl Recorder {
    pub fn record(&self, outcome: &Outcome) {
        self.lock().record(outcome);
    }

    /// Takes the interval recorded so far and starts a new one.
    pub fn take(&self) -> Interval {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Interval> {
        // A worker that panicked mid-record leaves plain counters behind: still usable.
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The whole run so far.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub all: Interval,
    /// Highest user count reached.
    pub peak_users: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_lands_in_exactly_one_bucket() {
        let recorder = Recorder::default();
        recorder.record(&Outcome {
            latency: Duration::from_millis(20),
            ttft: Some(Duration::from_millis(5)),
            inter_token_us: vec![1000, 2000],
            output_tokens: 3,
            failure: None,
        });
        recorder.record(&Outcome::failed(
            ErrorClass::Timeout,
            Duration::from_secs(1),
        ));
        recorder.record(&Outcome::failed(
            ErrorClass::Http5xx,
            Duration::from_millis(3),
        ));
        let first = recorder.take();
        assert_eq!(
            (first.ok, first.failed_total(), first.requests()),
            (1, 2, 3)
        );
        assert_eq!(first.failed[ErrorClass::Timeout.index()], 1);
        assert_eq!(first.inter_token.len(), 2);
        assert_eq!(first.latency.len(), 1, "failures are counted, not timed");
        assert_eq!(
            recorder.take().requests(),
            0,
            "take starts a fresh interval"
        );

        let mut totals = Interval::default();
        totals.add(&first);
        totals.add(&first);
        assert_eq!(
            (totals.ok, totals.failed_total(), totals.output_tokens),
            (2, 4, 6)
        );
    }
}

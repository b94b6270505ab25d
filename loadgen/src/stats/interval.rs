//! One-second intervals of HDR histograms and counters, recorded into per-thread shards and
//! merged once a second, and the cumulative run totals.
//!
//! Recording takes one uncontended lock per request (not per token) on the recording thread's
//! own shard; the reporter merges the shards each second, so nothing is kept per request and
//! memory stays flat over long runs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::during_faults::Ended;
use super::{DuringFaults, ErrorClass, FaultWindows, Outcome};

/// Latencies are recorded in microseconds, from 1 us to 1 hour, at 3 significant digits.
const HIGHEST_US: u64 = 3_600_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("static histogram bounds are valid")
}

/// Counters and histograms for one span of time.
#[derive(Clone, Debug)]
pub struct Interval {
    /// Requests the engine set out to send (counted before sending): every one of them must
    /// end as ok, failed or dropped; the difference is reported as `lost`.
    pub scheduled: u64,
    pub ok: u64,
    pub failed: [u64; ErrorClass::ALL.len()],
    /// Scheduled requests the open model could not start (in-flight cap reached).
    pub dropped: u64,
    /// Successful requests that met every per-request SLO.
    pub good: u64,
    pub output_tokens: u64,
    /// Response time of successful requests (from the intended send time in the open model).
    pub latency: Histogram<u64>,
    /// Service time of successful requests (from the actual send), open model only.
    pub service_time: Histogram<u64>,
    pub ttft: Histogram<u64>,
    pub inter_token: Histogram<u64>,
    /// Time per output token after the first, per request.
    pub tpot: Histogram<u64>,
    /// The same outcomes, by the faults active when each was recorded.
    pub during_faults: DuringFaults,
}

impl Default for Interval {
    fn default() -> Self {
        Interval {
            scheduled: 0,
            ok: 0,
            failed: [0; ErrorClass::ALL.len()],
            dropped: 0,
            good: 0,
            output_tokens: 0,
            latency: new_histogram(),
            service_time: new_histogram(),
            ttft: new_histogram(),
            inter_token: new_histogram(),
            tpot: new_histogram(),
            during_faults: DuringFaults::default(),
        }
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, HIGHEST_US)
}

impl Interval {
    pub fn record(&mut self, outcome: &Outcome) {
        let Some(class) = outcome.failure else {
            self.ok += 1;
            self.good += u64::from(outcome.met_slo);
            self.output_tokens += outcome.output_tokens;
            self.latency.saturating_record(micros(outcome.latency));
            if let Some(service) = outcome.service_time {
                self.service_time.saturating_record(micros(service));
            }
            if let Some(ttft) = outcome.ttft {
                self.ttft.saturating_record(micros(ttft));
            }
            if let Some(tpot) =
                outcome.time_per_output_token(outcome.service_time.unwrap_or(outcome.latency))
            {
                self.tpot.saturating_record(micros(tpot));
            }
            for &gap in &outcome.inter_token_us {
                self.inter_token.saturating_record(gap.clamp(1, HIGHEST_US));
            }
            return;
        };
        self.failed[class.index()] += 1;
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// Every request that ended in a counted outcome: ok + failed + dropped.
    pub fn requests(&self) -> u64 {
        self.ok + self.failed_total() + self.dropped
    }

    pub fn add(&mut self, other: &Interval) {
        self.scheduled += other.scheduled;
        self.ok += other.ok;
        for (mine, theirs) in self.failed.iter_mut().zip(other.failed) {
            *mine += theirs;
        }
        self.dropped += other.dropped;
        self.good += other.good;
        self.output_tokens += other.output_tokens;
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service_time.add(&other.service_time);
        let _ = self.ttft.add(&other.ttft);
        let _ = self.inter_token.add(&other.inter_token);
        let _ = self.tpot.add(&other.tpot);
        self.during_faults.add(&other.during_faults);
    }

    /// Empties the interval in place, keeping its allocations.
    fn clear(&mut self) {
        self.scheduled = 0;
        self.ok = 0;
        self.failed = [0; ErrorClass::ALL.len()];
        self.dropped = 0;
        self.good = 0;
        self.output_tokens = 0;
        self.during_faults.clear();
        for h in [
            &mut self.latency,
            &mut self.service_time,
            &mut self.ttft,
            &mut self.inter_token,
            &mut self.tpot,
        ] {
            h.reset();
        }
    }
}

/// Where workers record; shared by all of them. One shard per recording thread (modulo the
/// shard count), so threads do not contend on a lock at high request rates.
#[derive(Debug)]
pub struct Recorder {
    shards: Box<[Mutex<Interval>]>,
    faults: FaultWindows,
}

impl Default for Recorder {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Recorder {
            shards: (0..threads * 2)
                .map(|_| Mutex::new(Interval::default()))
                .collect(),
            faults: FaultWindows::default(),
        }
    }
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
}

impl Recorder {
    pub fn record(&self, outcome: &Outcome) {
        let active = self.faults.overlapping(outcome.latency);
        let ended = outcome.failure.map_or(Ended::Ok, Ended::Failed);
        self.with_shard(|interval| {
            interval.record(outcome);
            interval.during_faults.count(active, ended);
        });
    }

    /// When the faults began and ended: every outcome is also counted against those in place
    /// during its request's life.
    pub fn faults(&self) -> &FaultWindows {
        &self.faults
    }

    /// Counts a request the engine is about to send (or, in the open model, that is due).
    pub fn record_scheduled(&self) {
        self.with_shard(|interval| interval.scheduled += 1);
    }

    /// Counts a scheduled request that could not be started.
    pub fn record_dropped(&self) {
        let active = self.faults.overlapping(Duration::ZERO);
        self.with_shard(|interval| {
            interval.dropped += 1;
            interval.during_faults.count(active, Ended::Dropped);
        });
    }

    fn with_shard(&self, f: impl FnOnce(&mut Interval)) {
        let index = SHARD.with(|s| *s) % self.shards.len();
        f(&mut lock(&self.shards[index]));
    }

    /// Takes everything recorded since the last call, merged, and starts afresh.
    pub fn take(&self) -> Interval {
        let mut merged = Interval::default();
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            merged.add(&shard);
            shard.clear();
        }
        merged
    }
}

fn lock(shard: &Mutex<Interval>) -> std::sync::MutexGuard<'_, Interval> {
    // A worker that panicked mid-record leaves plain counters behind: still usable.
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The whole run so far.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub all: Interval,
    /// Highest user count (closed model) reached.
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
            met_slo: true,
            ..Outcome::default()
        });
        recorder.record(&Outcome::failed(
            ErrorClass::Timeout,
            Duration::from_secs(1),
        ));
        recorder.record(&Outcome::failed(
            ErrorClass::Http5xx,
            Duration::from_millis(3),
        ));
        recorder.record_dropped();
        let first = recorder.take();
        assert_eq!(
            (
                first.ok,
                first.failed_total(),
                first.dropped,
                first.requests()
            ),
            (1, 2, 1, 4)
        );
        assert_eq!(first.failed[ErrorClass::Timeout.index()], 1);
        assert_eq!(
            (first.good, first.inter_token.len(), first.tpot.len()),
            (1, 2, 1)
        );
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

    #[test]
    fn records_from_many_threads_are_all_merged() {
        let recorder = std::sync::Arc::new(Recorder::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let recorder = recorder.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        recorder.record(&Outcome {
                            latency: Duration::from_millis(1),
                            ..Outcome::default()
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let merged = recorder.take();
        assert_eq!((merged.ok, merged.latency.len()), (8000, 8000));
    }
}

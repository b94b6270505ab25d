//! Outcomes counted against the faults whose window overlapped the request's life (from its
//! start, or intended start, to its outcome): each fault's figures are exact (back-to-back
//! faults within one second are told apart, and a request a fault broke counts towards it
//! even if its answer came after the fault was lifted), with a fixed set of counters per fault,
//! however long the run.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::ErrorClass;

/// Faults one scenario may schedule.
pub const MAX_FAULTS: usize = 64;

/// When each fault began and ended, as the fault timeline applied and lifted it; read by the
/// recorder on every outcome.
#[derive(Debug)]
pub struct FaultWindows {
    epoch: Instant,
    /// Faults that have begun so far: those at lower indexes are the only ones to look at.
    seen: AtomicUsize,
    /// Nanoseconds from `epoch`, plus one; 0: not begun.
    began: [AtomicU64; MAX_FAULTS],
    /// Nanoseconds from `epoch`; `u64::MAX`: not ended.
    ended: [AtomicU64; MAX_FAULTS],
}

impl Default for FaultWindows {
    fn default() -> Self {
        FaultWindows {
            epoch: Instant::now(),
            seen: AtomicUsize::new(0),
            began: std::array::from_fn(|_| AtomicU64::new(0)),
            ended: std::array::from_fn(|_| AtomicU64::new(u64::MAX)),
        }
    }
}

impl FaultWindows {
    /// Fault `fault` is in place from now on.
    pub fn begin(&self, fault: usize) {
        if fault < MAX_FAULTS {
            self.began[fault].store(self.nanos() + 1, Ordering::Release);
            self.seen.fetch_max(fault + 1, Ordering::Release);
        }
    }

    /// Fault `fault` is lifted.
    pub fn end(&self, fault: usize) {
        if fault < MAX_FAULTS {
            self.ended[fault].store(self.nanos(), Ordering::Release);
        }
    }

    /// Bit `i` set: fault `i` was in place at some moment of the last `lifetime`.
    pub(super) fn overlapping(&self, lifetime: Duration) -> u64 {
        let seen = self.seen.load(Ordering::Acquire);
        if seen == 0 {
            return 0;
        }
        let now = self.nanos();
        let start = now.saturating_sub(lifetime.as_nanos() as u64);
        (0..seen).fold(0, |mask, i| {
            let began = self.began[i].load(Ordering::Acquire);
            let in_place = began != 0 && self.ended[i].load(Ordering::Acquire) >= start;
            if in_place { mask | (1 << i) } else { mask }
        })
    }

    fn nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// How one request ended, as far as fault figures care.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ended {
    Ok,
    Failed(ErrorClass),
    Dropped,
}

/// One fault's outcomes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultTally {
    /// ok + failed + dropped.
    pub requests: u64,
    pub ok: u64,
    pub failed: [u64; ErrorClass::ALL.len()],
}

/// Outcomes of one span of time, by the faults in place during each request's life.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DuringFaults {
    /// Indexed like the plan's faults; only as long as the highest fault seen active.
    pub per_fault: Vec<FaultTally>,
    /// Failed requests any fault was in place for (each counted once).
    pub failed: u64,
}

impl DuringFaults {
    /// One fault's tally (zero if no request's life overlapped it).
    pub fn of(&self, fault: usize) -> FaultTally {
        self.per_fault.get(fault).cloned().unwrap_or_default()
    }

    pub(super) fn count(&mut self, active: u64, ended: Ended) {
        if active == 0 {
            return;
        }
        let highest = (u64::BITS - active.leading_zeros()) as usize;
        if self.per_fault.len() < highest {
            self.per_fault.resize(highest, FaultTally::default());
        }
        for (i, tally) in self.per_fault.iter_mut().enumerate() {
            if active & (1 << i) == 0 {
                continue;
            }
            tally.requests += 1;
            match ended {
                Ended::Ok => tally.ok += 1,
                Ended::Failed(class) => tally.failed[class.index()] += 1,
                Ended::Dropped => {}
            }
        }
        if matches!(ended, Ended::Failed(_)) {
            self.failed += 1;
        }
    }

    pub(super) fn add(&mut self, other: &DuringFaults) {
        if self.per_fault.len() < other.per_fault.len() {
            self.per_fault
                .resize(other.per_fault.len(), FaultTally::default());
        }
        for (mine, theirs) in self.per_fault.iter_mut().zip(&other.per_fault) {
            mine.requests += theirs.requests;
            mine.ok += theirs.ok;
            for (m, t) in mine.failed.iter_mut().zip(theirs.failed) {
                *m += t;
            }
        }
        self.failed += other.failed;
    }

    /// Zeroes the counts, keeping the allocation.
    pub(super) fn clear(&mut self) {
        self.per_fault.fill(FaultTally::default());
        self.failed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_count_against_every_fault_in_place_during_their_life() {
        let windows = FaultWindows::default();
        let mut during = DuringFaults::default();
        let long = Duration::from_secs(3600);
        during.count(windows.overlapping(long), Ended::Ok);
        assert_eq!(during, DuringFaults::default(), "no fault, nothing counted");
        windows.begin(0);
        during.count(
            windows.overlapping(Duration::ZERO),
            Ended::Failed(ErrorClass::Http5xx),
        );
        windows.begin(2);
        during.count(windows.overlapping(Duration::ZERO), Ended::Ok);
        windows.end(0);
        std::thread::sleep(Duration::from_millis(2));
        // Started after fault 0 was lifted: only fault 2's.
        during.count(
            windows.overlapping(Duration::from_micros(10)),
            Ended::Dropped,
        );
        // Started while fault 0 was in place, ended after: its too.
        during.count(windows.overlapping(long), Ended::Failed(ErrorClass::Reset));
        assert_eq!(during.of(0).requests, 3);
        assert_eq!(during.of(0).failed[ErrorClass::Http5xx.index()], 1);
        assert_eq!(during.of(0).failed[ErrorClass::Reset.index()], 1);
        assert_eq!((during.of(1).requests, during.of(2).requests), (0, 3));
        assert_eq!(during.of(2).ok, 1);
        assert_eq!(
            during.failed, 2,
            "a failure counts once however many faults"
        );
        let mut sum = DuringFaults::default();
        sum.add(&during);
        sum.add(&during);
        assert_eq!((sum.of(2).requests, sum.failed), (6, 4));
        sum.clear();
        assert_eq!(sum.of(2), FaultTally::default());
    }
}

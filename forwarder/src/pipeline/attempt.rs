//! What one upstream attempt holds until its answer is over: the global and per-backend slots,
//! the backend's pending count, the breaker permit, and when it was sent (time waiting on the
//! backend is not the forwarder's overhead).

use std::time::Duration;

use tokio::time::Instant;

use crate::pipeline::admission::Slot;
use crate::upstream::backend::BackendSlot;
use crate::upstream::breaker::Permit;
use crate::upstream::load::Pending;

#[derive(Debug)]
pub struct Attempt {
    pub(crate) permit: Permit,
    pub(crate) _pending: Pending,
    pub(crate) _backend_slot: BackendSlot,
    pub(crate) slot: Option<Slot>,
    pub(crate) sent: Instant,
    /// The backend answered 5xx and the answer is passed on: a failure however it ends.
    pub(crate) failed: bool,
}

/// How an attempt ended, as the breaker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure,
    /// Nobody knows (the client left): a probe is given back, nothing is counted.
    Unknown,
}

impl Attempt {
    /// The global slot, kept for the next attempt when this one failed.
    pub fn take_slot(&mut self) -> Option<Slot> {
        self.slot.take()
    }

    /// Reports the verdict, frees the slots, and returns the time spent waiting on the backend.
    pub fn settle(self, verdict: Verdict) -> Duration {
        let waited = self.sent.elapsed();
        let verdict = if self.failed {
            Verdict::Failure
        } else {
            verdict
        };
        match verdict {
            Verdict::Success => self.permit.success(),
            Verdict::Failure => self.permit.failure(),
            Verdict::Unknown => drop(self.permit),
        }
        waited
    }
}

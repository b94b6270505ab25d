//! The load engine. Two models, chosen in the scenario:
//!
//! - closed ([`closed`]): virtual users send a request, read the whole answer, think, and again;
//!   their number follows the stages;
//! - open ([`open`]): a scheduler emits intended send times at the stages' arrival rate and hands
//!   each request to a task; latency counts from the intended time (no coordinated omission),
//!   service time from the actual send; beyond the in-flight cap a request is `dropped`.
//!
//! When the stages end the run drains: nothing new is sent, in-flight requests may finish within
//! the graceful stop, and any still open then are counted `interrupted`. Nothing is lost.

mod answer;
pub mod client;
mod closed;
/// Also decodes the stack's readiness and metrics answers ([`crate::stack`]).
pub(crate) mod h1;
mod open;
pub mod request;
pub mod slo;
pub mod sse;
pub mod tls;
mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::scenario::{LoadPlan, Model};
use crate::stats::Recorder;
use client::{Endpoint, H1Pool, H2Pool, Lane};
use request::RequestTemplate;
use slo::Slo;

/// Where the run is; workers watch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Stages are running: workers send.
    Running,
    /// Stages ended or the user asked to stop: finish what is in flight, send nothing new.
    Draining,
    /// The graceful stop ran out: abandon what is in flight as `interrupted`.
    Aborted,
}

/// The current level of the run (users, or arrivals per second), for the reporter, and the
/// highest it has been: the reporter samples once a second, so a level held between two samples
/// (a short spike, a run shorter than a second) would otherwise never be seen.
#[derive(Debug, Default)]
pub struct Level {
    current: AtomicU64,
    peak: AtomicU64,
}

impl Level {
    pub fn set(&self, value: f64) {
        self.current.store(value.to_bits(), Ordering::Relaxed);
        // Levels are never negative, and the bits of non-negative floats order as the floats do.
        self.peak
            .fetch_max(value.max(0.0).to_bits(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.current.load(Ordering::Relaxed))
    }
    /// The highest level set so far.
    pub fn peak(&self) -> f64 {
        f64::from_bits(self.peak.load(Ordering::Relaxed))
    }
}

/// Everything a run of the engine needs.
pub struct Drive {
    pub plan: LoadPlan,
    pub template: RequestTemplate,
    pub target: Arc<Endpoint>,
    pub timeout: Duration,
    pub slo: Slo,
    pub recorder: Arc<Recorder>,
    pub level: Arc<Level>,
    pub phase: Arc<watch::Sender<Phase>>,
    /// Becomes true when the user asks to stop early.
    pub stop: watch::Receiver<bool>,
}

/// Runs the scenario's load model to the end of its stages (or until stopped), then drains.
pub async fn drive(drive: Drive) {
    match drive.plan.model.clone() {
        Model::Closed {
            think_time,
            stagger,
        } => closed::run(drive, think_time, stagger).await,
        Model::Open {
            arrivals,
            max_inflight,
        } => open::run(drive, arrivals, max_inflight).await,
    }
}

/// Hands out lanes according to the scenario's connection strategy.
#[derive(Clone)]
enum Lanes {
    PerWorker(Arc<Endpoint>),
    Pooled(Arc<H1Pool>),
    Http2(Arc<H2Pool>),
}

impl Lanes {
    fn new(plan: &LoadPlan, target: &Arc<Endpoint>) -> Lanes {
        let target = target.clone();
        use crate::scenario::schema::Protocol;
        match (plan.protocol, plan.connections) {
            (Protocol::Http2, n) => Lanes::Http2(H2Pool::new(target, n)),
            (Protocol::Http1, 0) => Lanes::PerWorker(target),
            (Protocol::Http1, n) => Lanes::Pooled(H1Pool::new(target, n)),
        }
    }

    fn lane(&self, index: u64) -> Lane {
        match self {
            Lanes::PerWorker(endpoint) => Lane::own(endpoint.clone()),
            Lanes::Pooled(pool) => Lane::pooled(pool.clone()),
            Lanes::Http2(pool) => Lane::http2(pool.clone(), index as usize),
        }
    }
}

/// Resolves when the phase reaches `Aborted`.
async fn aborted(phase: &mut watch::Receiver<Phase>) {
    while *phase.borrow_and_update() != Phase::Aborted {
        if phase.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_remembers_its_peak_between_samples() {
        let level = Level::default();
        assert_eq!((level.get(), level.peak()), (0.0, 0.0));
        for value in [5.0, 40.0, 5.0, 0.0, 12.5] {
            level.set(value);
        }
        assert_eq!(level.get(), 12.5);
        assert_eq!(
            level.peak(),
            40.0,
            "the spike to 40 was never sampled but counts"
        );
    }
}

//! The open model: a scheduler emits intended send times at the stages' arrival rate (Poisson
//! or evenly spaced) and hands each request to its own task. Latency counts from the intended
//! time, so a slow target cannot slow the schedule and hide its own queueing (coordinated
//! omission); a request due while `max_inflight` are open is counted `dropped`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution as _, Exp1};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::request::Rendered;
use super::workers::Workers;
use super::{Drive, Lanes, Phase, aborted};
use crate::scenario::schema::Arrivals;
use crate::stats::{ErrorClass, Outcome};

/// Requests in flight, and a wake-up for the drain when the count reaches zero.
#[derive(Default)]
struct InFlight {
    count: AtomicU32,
    emptied: Notify,
}

impl InFlight {
    fn finish(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.emptied.notify_one();
        }
    }

    async fn drained(&self) {
        while self.count.load(Ordering::Acquire) > 0 {
            self.emptied.notified().await;
        }
    }
}

pub async fn run(drive: Drive, arrivals: Arrivals, max_inflight: u32) {
    let drive = Arc::new(drive);
    let plan = &drive.plan;
    let lanes = Lanes::new(plan, &drive.target);
    let inflight = Arc::new(InFlight::default());
    let pool = Workers::start().ok();
    let mut stop = drive.stop.clone();
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let started = Instant::now();
    let mut offset = Duration::ZERO;
    let mut index: u64 = 0;

    loop {
        let work = match arrivals {
            Arrivals::Constant => 1.0,
            Arrivals::Poisson => Exp1.sample(&mut rng),
        };
        let Some(next_offset) = plan.next_arrival(offset, work) else {
            break;
        };
        offset = next_offset;
        let due = started + offset;
        if *stop.borrow() {
            break;
        }
        if due > Instant::now() {
            drive.level.set(plan.level_at(offset));
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.changed() => break,
            }
        }
        drive.recorder.record_scheduled();
        if inflight.count.load(Ordering::Acquire) >= max_inflight {
            drive.recorder.record_dropped();
            continue;
        }
        inflight.count.fetch_add(1, Ordering::AcqRel);
        let mut request = Rendered::default();
        drive.template.render(index, &mut rng, &mut request);
        let lane = lanes.lane(index);
        index += 1;
        let task = send(drive.clone(), inflight.clone(), lane, request, due);
        match &pool {
            Some(pool) => drop(pool.spawn(index, task)),
            None => drop(tokio::spawn(task)),
        }
    }

    drive.phase.send_replace(Phase::Draining);
    drive.level.set(0.0);
    if tokio::time::timeout(plan.graceful_stop, inflight.drained())
        .await
        .is_err()
    {
        drive.phase.send_replace(Phase::Aborted);
        inflight.drained().await;
    }
    // Stopping the worker threads joins them: not on an async thread.
    let _ = tokio::task::spawn_blocking(move || drop(pool)).await;
}

/// One request, due at `due`.
async fn send(
    drive: Arc<Drive>,
    inflight: Arc<InFlight>,
    mut lane: super::client::Lane,
    request: Rendered,
    due: Instant,
) {
    let mut phase: watch::Receiver<Phase> = drive.phase.subscribe();
    let mut outcome = Outcome::default();
    let interrupted = {
        let exchange = lane.exchange(
            &drive.template,
            &request,
            drive.timeout,
            Instant::now(),
            Some(due),
            &mut outcome,
        );
        tokio::select! {
            _ = exchange => false,
            _ = aborted(&mut phase) => true,
        }
    };
    if interrupted {
        outcome = Outcome::failed(ErrorClass::Interrupted, due.elapsed());
    }
    outcome.met_slo = drive.slo.met(&outcome);
    drive.recorder.record(&outcome);
    inflight.finish();
}

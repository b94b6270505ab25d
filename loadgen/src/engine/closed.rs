//! The closed model: virtual users, and the controller that ramps their number through the
//! stages. A user sends, reads the whole answer, thinks, and sends again.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::request::Rendered;
use super::workers::Workers;
use super::{Drive, Lanes, Phase};
use crate::scenario::distribution::DurationDist;
use crate::stats::{ErrorClass, Outcome, Recorder};

/// How often the controller re-reads the ramp; small enough that ramps look smooth.
const CONTROL_TICK: Duration = Duration::from_millis(50);

/// What every user shares.
struct Shared {
    drive: Drive,
    think_time: DurationDist,
    stagger: bool,
    seed: u64,
}

pub async fn run(drive: Drive, think_time: DurationDist, stagger: bool) {
    let plan = drive.plan.clone();
    let lanes = Lanes::new(&plan, &drive.target);
    let mut stop = drive.stop.clone();
    let phase = drive.phase.clone();
    let level = drive.level.clone();
    let shared = Arc::new(Shared {
        drive,
        think_time,
        stagger,
        seed: rand::random(),
    });
    let (users_tx, users_rx) = watch::channel(0u32);
    let pool = Workers::start().ok();
    let mut workers = JoinSet::new();
    let started = Instant::now();
    let total = plan.total_duration();
    let mut ticker = tokio::time::interval(CONTROL_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let elapsed = started.elapsed();
        if elapsed >= total || *stop.borrow() {
            break;
        }
        let wanted = plan.users_at(elapsed);
        while (workers.len() as u32) < wanted {
            let id = workers.len() as u32;
            let lane = lanes.lane(u64::from(id));
            let task = user(
                id,
                lane,
                shared.clone(),
                users_rx.clone(),
                phase.subscribe(),
            );
            match &pool {
                Some(pool) => workers.spawn_on(task, pool.handle(u64::from(id))),
                None => workers.spawn(task),
            };
        }
        users_tx.send_if_modified(|current| std::mem::replace(current, wanted) != wanted);
        level.set(f64::from(wanted));
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => {}
        }
    }

    phase.send_replace(Phase::Draining);
    level.set(0.0);
    let drained = tokio::time::timeout(plan.graceful_stop, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        phase.send_replace(Phase::Aborted);
        // Each user still waiting on an answer counts it `interrupted` as it is dropped.
        workers.abort_all();
        while workers.join_next().await.is_some() {}
    }
    // Stopping the worker threads joins them: not on an async thread.
    let _ = tokio::task::spawn_blocking(move || drop(pool)).await;
}

/// One virtual user: request, whole answer, think, again, while its index is under the count.
async fn user(
    id: u32,
    mut lane: super::client::Lane,
    shared: Arc<Shared>,
    mut users: watch::Receiver<u32>,
    mut phase: watch::Receiver<Phase>,
) {
    let drive = &shared.drive;
    let mut rng =
        SmallRng::seed_from_u64(shared.seed ^ u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut pause = if shared.stagger {
        shared
            .think_time
            .sample(&mut rng)
            .mul_f64(rng.random::<f64>())
    } else {
        Duration::ZERO
    };
    let mut request = Rendered::default();
    // Kept from request to request so a stream's token gaps do not allocate anew each time.
    let mut outcome = Outcome::default();
    loop {
        // Parked while the ramp does not include this user.
        loop {
            if *phase.borrow() != Phase::Running {
                return;
            }
            if id < *users.borrow_and_update() {
                break;
            }
            tokio::select! {
                _ = users.changed() => {}
                _ = phase.changed() => {}
            }
        }

        if !pause.is_zero() && !think(pause, &mut phase).await {
            return;
        }
        drive.template.render(u64::from(id), &mut rng, &mut request);
        drive.recorder.record_scheduled();
        outcome.reset();
        let sent = Instant::now();
        let in_flight = InFlight {
            recorder: &drive.recorder,
            sent,
        };
        lane.exchange(
            &drive.template,
            &request,
            drive.timeout,
            sent,
            None,
            &mut outcome,
        )
        .await;
        in_flight.answered();
        outcome.met_slo = drive.slo.met(&outcome);
        drive.recorder.record(&outcome);
        pause = shared.think_time.sample(&mut rng);
    }
}

/// A user's request on its way. When the graceful stop runs out the controller aborts the
/// users, and a request dropped so, unanswered, is counted `interrupted` here. Watching for the
/// abort beside every request instead would cost a waiter on the phase per request.
struct InFlight<'a> {
    recorder: &'a Recorder,
    sent: Instant,
}

impl InFlight<'_> {
    /// The request ended in an outcome of its own, which the caller records.
    fn answered(self) {
        std::mem::forget(self);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let outcome = Outcome::failed(ErrorClass::Interrupted, self.sent.elapsed());
        self.recorder.record(&outcome);
    }
}

/// Sleeps `pause`; false if the run stopped sending meanwhile.
async fn think(pause: Duration, phase: &mut watch::Receiver<Phase>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = async {
            while *phase.borrow_and_update() == Phase::Running {
                if phase.changed().await.is_err() { break; }
            }
        } => false,
    }
}

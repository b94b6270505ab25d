//! Closed-model virtual users and the controller that ramps their number through the stages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::client::{Connection, H2Pool};
use super::request::RequestTemplate;
use crate::scenario::LoadPlan;
use crate::scenario::schema::Protocol;
use crate::stats::{ErrorClass, Outcome, Recorder};

/// Where the run is; workers watch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Stages are running: users send.
    Running,
    /// Stages ended or the user asked to stop: finish what is in flight, send nothing new.
    Draining,
    /// The graceful stop ran out: abandon what is in flight as `interrupted`.
    Aborted,
}

/// How often the controller re-reads the ramp; small enough that ramps look smooth.
const CONTROL_TICK: Duration = Duration::from_millis(50);

/// Everything the users share.
struct Shared {
    template: RequestTemplate,
    recorder: Arc<Recorder>,
    think_time: crate::scenario::distribution::DurationDist,
    stagger: bool,
    timeout: Duration,
    seed: u64,
}

/// Drives the closed model to the end of the stages (or until `stop` fires), then drains.
/// `active_users` is kept current for the reporter.
#[allow(clippy::too_many_arguments)]
pub async fn run_closed(
    plan: LoadPlan,
    template: RequestTemplate,
    target: SocketAddr,
    timeout: Duration,
    recorder: Arc<Recorder>,
    active_users: Arc<AtomicU32>,
    phase: Arc<watch::Sender<Phase>>,
    mut stop: watch::Receiver<bool>,
) {
    let shared = Arc::new(Shared {
        template,
        recorder,
        think_time: plan.think_time.clone(),
        stagger: plan.stagger,
        timeout,
        seed: rand::random(),
    });
    let pool = (plan.protocol == Protocol::Http2).then(|| H2Pool::new(target, plan.connections));
    let (users_tx, users_rx) = watch::channel(0u32);
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
            let connection = match &pool {
                Some(pool) => Connection::Http2 {
                    pool: pool.clone(),
                    slot: id as usize,
                },
                None => Connection::Http1 {
                    addr: target,
                    sender: None,
                },
            };
            workers.spawn(user(
                id,
                connection,
                shared.clone(),
                users_rx.clone(),
                phase.subscribe(),
            ));
        }
        users_tx.send_if_modified(|current| std::mem::replace(current, wanted) != wanted);
        active_users.store(wanted, Ordering::Relaxed);
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => {}
        }
    }

    phase.send_replace(Phase::Draining);
    active_users.store(0, Ordering::Relaxed);
    let drained = tokio::time::timeout(plan.graceful_stop, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        phase.send_replace(Phase::Aborted);
        while workers.join_next().await.is_some() {}
    }
}

/// One virtual user: request, whole answer, think, again, while its index is under the count.
async fn user(
    id: u32,
    mut connection: Connection,
    shared: Arc<Shared>,
    mut users: watch::Receiver<u32>,
    mut phase: watch::Receiver<Phase>,
) {
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
        let request = shared.template.build(id, &mut rng);
        let mut outcome = Outcome::default();
        let sent = Instant::now();
        let interrupted = {
            let exchange = connection.exchange(
                request,
                shared.template.stream,
                shared.timeout,
                &mut outcome,
            );
            let aborted = async {
                while *phase.borrow_and_update() != Phase::Aborted {
                    if phase.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                _ = exchange => false,
                _ = aborted => true,
            }
        };
        if interrupted {
            outcome = Outcome::failed(ErrorClass::Interrupted, sent.elapsed());
        }
        shared.recorder.record(&outcome);

        pause = shared.think_time.sample(&mut rng);
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

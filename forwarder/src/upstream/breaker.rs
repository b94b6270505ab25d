//! A circuit breaker per backend: consecutive failures (or, optionally, a failure rate over a
//! rolling window) open it, and after a wait exactly one probe request may go through; its
//! outcome closes the breaker or re-opens it for longer.
//!
//! A request holds a [`Permit`] while it runs and reports its outcome through it. A probe whose
//! outcome never comes (the client left, the request was abandoned) gives the probe back at
//! once, so the breaker can never get stuck half-open.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::BreakerConfig;
use crate::metrics::{BackendMetrics, BreakerState};
use crate::upstream::failure_rate::FailureWindow;

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<Inner>,
    metrics: BackendMetrics,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Only with a configured failure rate; counts outcomes while closed.
    window: Option<FailureWindow>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, times: u32 },
    HalfOpen { times: u32 },
}

/// The right to send one request to the backend, and the duty to report how it went.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    reported: bool,
}

impl Breaker {
    pub fn new(config: BreakerConfig, metrics: BackendMetrics) -> Self {
        metrics.breaker_starts_closed();
        Self {
            config,
            state: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                window: config
                    .failure_rate
                    .map(|rate| FailureWindow::new(rate, Instant::now())),
            }),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the small state half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request could get a permit now (no state change), for ordering candidates.
    pub fn allows(&self, now: Instant) -> bool {
        match self.lock().state {
            State::Closed { .. } => true,
            State::Open { until, .. } => now >= until,
            State::HalfOpen { .. } => false,
        }
    }

    /// A permit, or `None` while the breaker is open or its one probe is in flight.
    pub fn try_acquire(self: &Arc<Self>, now: Instant) -> Option<Permit> {
        let mut state = self.lock();
        let probe = match state.state {
            State::Closed { .. } => false,
            State::Open { until, times } if now >= until => {
                state.state = State::HalfOpen { times };
                self.metrics.breaker_entered(BreakerState::HalfOpen);
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => return None,
        };
        Some(Permit {
            breaker: Arc::clone(self),
            probe,
            reported: false,
        })
    }

    fn success(&self, probe: bool) {
        let mut state = self.lock();
        match state.state {
            State::Closed { .. } => {
                state.state = State::Closed { failures: 0 };
                if let Some(window) = &mut state.window {
                    window.record(false, Instant::now());
                }
            }
            State::HalfOpen { .. } if probe => {
                state.state = State::Closed { failures: 0 };
                self.metrics.breaker_entered(BreakerState::Closed);
            }
            // A request that started before the breaker opened says little about now.
            State::Open { .. } | State::HalfOpen { .. } => {}
        }
    }

    fn failure(&self, probe: bool, now: Instant) {
        let mut state = self.lock();
        match state.state {
            State::Closed { failures } => {
                let failures = failures + 1;
                let rate_too_high = state
                    .window
                    .as_mut()
                    .is_some_and(|window| window.record(true, now));
                if failures >= self.config.failures || rate_too_high {
                    state.state = self.open(1, now);
                    if let Some(window) = &mut state.window {
                        window.reset();
                    }
                } else {
                    state.state = State::Closed { failures };
                }
            }
            State::HalfOpen { times } if probe => state.state = self.open(times + 1, now),
            State::Open { .. } | State::HalfOpen { .. } => {}
        }
    }

    /// A failed active health check counts like a failed request while closed, so a backend
    /// that routing already avoids (marked down) still gets its breaker opened and shown.
    /// A passing check proves nothing about answers, so it resets nothing.
    pub fn health_failure(&self) {
        self.failure(false, Instant::now());
    }

    /// The probe left without an outcome: let the next request probe instead.
    fn abandoned(&self, now: Instant) {
        let mut state = self.lock();
        if let State::HalfOpen { times } = state.state {
            state.state = State::Open { until: now, times };
            self.metrics.breaker_entered(BreakerState::Open);
        }
    }

    fn open(&self, times: u32, now: Instant) -> State {
        self.metrics.breaker_entered(BreakerState::Open);
        State::Open {
            until: now + self.wait(times),
            times,
        }
    }

    /// The first opening waits exactly `wait`; each failed probe doubles it, up to `max_wait`,
    /// plus up to 20% jitter so breakers opened together do not probe together.
    fn wait(&self, times: u32) -> Duration {
        let base = self.config.wait;
        if times <= 1 {
            return base;
        }
        let doubled = base.saturating_mul(1 << (times - 1).min(16));
        let capped = doubled.min(self.config.max_wait);
        capped.mul_f64(1.0 + 0.2 * rand::random::<f64>())
    }

    pub fn state(&self) -> BreakerState {
        match self.lock().state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

impl Permit {
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    pub fn success(mut self) {
        self.reported = true;
        self.breaker.success(self.probe);
    }

    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.failure(self.probe, Instant::now());
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.breaker.abandoned(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn breaker(failures: u32) -> Arc<Breaker> {
        let config = BreakerConfig {
            failures,
            wait: Duration::from_secs(30),
            max_wait: Duration::from_secs(300),
            failure_rate: None,
        };
        Arc::new(Breaker::new(config, Metrics::new().backend("b")))
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_exactly_n_consecutive_failures() {
        let b = breaker(3);
        let now = Instant::now();
        b.try_acquire(now).unwrap().failure();
        b.try_acquire(now).unwrap().failure();
        // A success in between resets the count.
        b.try_acquire(now).unwrap().success();
        b.try_acquire(now).unwrap().failure();
        b.try_acquire(now).unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.try_acquire(now).unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire(now).is_none());
        assert!(!b.allows(now + Duration::from_secs(29)));
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_after_the_wait_then_closes_on_success() {
        let b = breaker(1);
        let now = Instant::now();
        b.try_acquire(now).unwrap().failure();
        let later = now + Duration::from_secs(30);
        let probe = b.try_acquire(later).unwrap();
        assert!(probe.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire(later).is_none(), "exactly one probe");
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(!b.try_acquire(later).unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_for_longer() {
        let b = breaker(1);
        let now = Instant::now();
        b.try_acquire(now).unwrap().failure();
        tokio::time::advance(Duration::from_secs(30)).await;
        let t1 = Instant::now();
        b.try_acquire(t1).unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        // Second wait is 60..72 s.
        assert!(!b.allows(t1 + Duration::from_secs(59)));
        assert!(b.allows(t1 + Duration::from_secs(73)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_lets_the_next_request_probe() {
        let b = breaker(1);
        let now = Instant::now();
        b.try_acquire(now).unwrap().failure();
        let later = now + Duration::from_secs(31);
        drop(b.try_acquire(later).unwrap());
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire(later).unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_rate_opens_it_without_consecutive_failures() {
        let config = BreakerConfig {
            failures: 100,
            failure_rate: Some(crate::upstream::failure_rate::FailureRateConfig {
                rate: 0.5,
                window: Duration::from_secs(10),
                min_requests: 6,
            }),
            ..BreakerConfig::default()
        };
        let b = Arc::new(Breaker::new(config, Metrics::new().backend("b")));
        let now = Instant::now();
        for _ in 0..2 {
            b.try_acquire(now).unwrap().failure();
            b.try_acquire(now).unwrap().success();
        }
        b.try_acquire(now).unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed, "3 of 5: too few requests");
        b.try_acquire(now).unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open, "4 of 6 failed");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_health_checks_count_while_closed_only() {
        let b = breaker(3);
        b.health_failure();
        b.health_failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.health_failure();
        assert_eq!(b.state(), BreakerState::Open);
        b.health_failure();
        assert!(
            b.allows(Instant::now() + Duration::from_secs(30)),
            "not extended"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn late_outcomes_of_normal_requests_do_not_touch_an_open_breaker() {
        let b = breaker(1);
        let now = Instant::now();
        let slow = b.try_acquire(now).unwrap();
        b.try_acquire(now).unwrap().failure();
        slow.success();
        assert_eq!(b.state(), BreakerState::Open);
    }
}

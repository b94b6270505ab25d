//! Which backends a request may go to, best first: the strategy's choice, then the ones to fall
//! back on (breaker open, slot full, retry), then backends marked down as a last resort
//! (health state can lag behind a backend that has just come back).
//!
//! - consistent hashing by user id with bounded loads ([`ring`]): a user sticks to one backend;
//!   a backend above `balance_factor` x the average load is skipped for the next on the ring;
//! - power of two choices over peak-EWMA cost ([`crate::upstream::load`]), for requests without a user id;
//! - round robin.
//!
//! Backends whose breaker refuses requests right now are left out entirely.

pub mod ring;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use tokio::time::Instant;

use crate::config::{RoutingConfig, Strategy};
use crate::upstream::backend::Backend;
use ring::Ring;

/// Routing needs at least one backend.
#[derive(Debug, thiserror::Error)]
#[error("no backends to balance over")]
pub struct NoBackends;

#[derive(Debug)]
pub struct Routing {
    backends: Vec<Arc<Backend>>,
    strategy: Strategy,
    per_model: BTreeMap<String, Strategy>,
    ring: Ring,
    balance_factor: f64,
    next: AtomicUsize,
}

impl Routing {
    pub fn new(backends: Vec<Arc<Backend>>, config: &RoutingConfig) -> Result<Self, NoBackends> {
        if backends.is_empty() {
            return Err(NoBackends);
        }
        let ring = Ring::new(backends.iter().map(|b| b.name()), config.virtual_nodes);
        Ok(Self {
            backends,
            strategy: config.strategy,
            per_model: config.per_model.clone(),
            ring,
            balance_factor: config.balance_factor,
            next: AtomicUsize::new(0),
        })
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    pub fn any_up(&self) -> bool {
        self.backends.iter().any(|b| b.is_up())
    }

    /// The backends to try, in order. Empty when every breaker refuses. `model` picks a
    /// per-model strategy when one is configured.
    pub fn candidates(
        &self,
        user: Option<&str>,
        model: Option<&str>,
        now: Instant,
    ) -> Vec<Arc<Backend>> {
        let strategy = model
            .and_then(|m| self.per_model.get(m))
            .copied()
            .unwrap_or(self.strategy);
        let order: Vec<usize> = match (strategy, user) {
            (Strategy::ConsistentHash, Some(user)) => {
                let walk = self.ring.walk(ring::hash(user.as_bytes()));
                self.bounded(walk, now)
            }
            (Strategy::RoundRobin, _) => self.rotation(),
            (Strategy::ConsistentHash | Strategy::P2c, _) => self.two_choices(now),
        };
        let (mut up, down): (Vec<usize>, Vec<usize>) = order
            .into_iter()
            .filter(|&i| self.backends[i].breaker().allows(now))
            .partition(|&i| self.backends[i].is_up());
        up.extend(down);
        up.into_iter()
            .map(|i| Arc::clone(&self.backends[i]))
            .collect()
    }

    /// Ring order, with backends at or above the load bound moved behind the others (in ring
    /// order still), so an overloaded owner spills to its ring successors.
    fn bounded(&self, walk: Vec<usize>, now: Instant) -> Vec<usize> {
        let usable = |i: &usize| {
            let b = &self.backends[*i];
            b.is_up() && b.breaker().allows(now)
        };
        let usable_count = walk.iter().filter(|i| usable(i)).count().max(1);
        let total: usize = walk
            .iter()
            .filter(|i| usable(i))
            .map(|&i| self.backends[i].load().pending())
            .sum();
        let bound = (self.balance_factor * (total + 1) as f64 / usable_count as f64).ceil();
        let (mut under, over): (Vec<usize>, Vec<usize>) = walk
            .into_iter()
            .partition(|&i| (self.backends[i].load().pending() as f64) < bound);
        under.extend(over);
        under
    }

    fn rotation(&self) -> Vec<usize> {
        let n = self.backends.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).map(|offset| (start + offset) % n).collect()
    }

    /// Two random usable backends, the cheaper one first; the rest follow as fallbacks.
    fn two_choices(&self, now: Instant) -> Vec<usize> {
        let n = self.backends.len();
        let mut order: Vec<usize> = (0..n).collect();
        let usable: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| {
                let b = &self.backends[i];
                b.is_up() && b.breaker().allows(now)
            })
            .collect();
        let first = match usable.len() {
            0 => return self.rotation(),
            1 => usable[0],
            len => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..len);
                let mut b = rng.random_range(0..len - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (usable[a], usable[b]);
                if self.backends[b].load().cost() < self.backends[a].load().cost() {
                    b
                } else {
                    a
                }
            }
        };
        order.retain(|&i| i != first);
        // The fallbacks cheapest first too: they are what a retry gets.
        order.sort_by(|&x, &y| {
            let (cx, cy) = (
                self.backends[x].load().cost(),
                self.backends[y].load().cost(),
            );
            cx.total_cmp(&cy)
        });
        order.insert(0, first);
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendConfig, BackendUrl, BreakerConfig};
    use crate::metrics::Metrics;
    use std::time::Duration;

    fn routing(n: usize, strategy: Strategy) -> Routing {
        let metrics = Metrics::new();
        let backends = (0..n)
            .map(|i| {
                let config = BackendConfig {
                    name: format!("b{i}"),
                    url: BackendUrl::parse(&format!("http://127.0.0.1:{}", 9000 + i)).unwrap(),
                };
                let breaker = BreakerConfig {
                    failures: 1,
                    ..BreakerConfig::default()
                };
                let b = Arc::new(Backend::new(&config, breaker, 100, &metrics));
                b.set_up(true);
                b
            })
            .collect();
        let config = RoutingConfig {
            strategy,
            ..RoutingConfig::default()
        };
        Routing::new(backends, &config).unwrap()
    }

    fn first(r: &Routing, user: Option<&str>) -> String {
        r.candidates(user, None, Instant::now())[0]
            .name()
            .to_owned()
    }

    #[tokio::test]
    async fn a_user_sticks_and_only_the_lost_backends_users_move() {
        let r = routing(4, Strategy::ConsistentHash);
        let users: Vec<String> = (0..400).map(|u| format!("user-{u}")).collect();
        let before: Vec<String> = users.iter().map(|u| first(&r, Some(u))).collect();
        let again: Vec<String> = users.iter().map(|u| first(&r, Some(u))).collect();
        assert_eq!(before, again, "sticky");

        r.backends()[2].set_up(false);
        let during: Vec<String> = users.iter().map(|u| first(&r, Some(u))).collect();
        let mut moved = 0;
        for (b, d) in before.iter().zip(&during) {
            assert_ne!(d, "b2");
            if b == "b2" {
                moved += 1;
            } else {
                assert_eq!(b, d, "a user of a healthy backend moved");
            }
        }
        assert!(
            (60..140).contains(&moved),
            "about 1/4 of 400 moved: {moved}"
        );

        r.backends()[2].set_up(true);
        let after: Vec<String> = users.iter().map(|u| first(&r, Some(u))).collect();
        assert_eq!(before, after, "users return after recovery");
    }

    #[tokio::test]
    async fn an_overloaded_owner_spills_to_the_next_on_the_ring() {
        let r = routing(2, Strategy::ConsistentHash);
        let owner = first(&r, Some("alice"));
        let index = r.backends().iter().position(|b| b.name() == owner).unwrap();
        let _held: Vec<_> = (0..4).map(|_| r.backends()[index].load().start()).collect();
        // total 4, 2 backends, factor 1.25: bound ceil(1.25 * 5 / 2) = 4; the owner holds 4.
        assert_ne!(first(&r, Some("alice")), owner);
    }

    #[tokio::test]
    async fn open_breakers_are_left_out() {
        let r = routing(2, Strategy::RoundRobin);
        let now = Instant::now();
        r.backends()[0]
            .breaker()
            .try_acquire(now)
            .unwrap()
            .failure();
        for _ in 0..4 {
            let c = r.candidates(None, None, now);
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].name(), "b1");
        }
        r.backends()[1]
            .breaker()
            .try_acquire(now)
            .unwrap()
            .failure();
        assert!(r.candidates(None, None, now).is_empty());
        assert_eq!(
            r.candidates(None, None, now + Duration::from_secs(31))
                .len(),
            2,
            "after the wait both may be probed"
        );
    }

    #[tokio::test]
    async fn p2c_prefers_the_less_loaded() {
        let r = routing(2, Strategy::P2c);
        let _busy: Vec<_> = (0..5).map(|_| r.backends()[0].load().start()).collect();
        for _ in 0..20 {
            assert_eq!(first(&r, None), "b1");
        }
    }

    #[tokio::test]
    async fn down_backends_come_last_not_never() {
        let r = routing(3, Strategy::RoundRobin);
        r.backends()[0].set_up(false);
        let c = r.candidates(None, None, Instant::now());
        assert_eq!(c.len(), 3);
        assert_eq!(c[2].name(), "b0");
    }

    #[tokio::test]
    async fn a_model_can_have_its_own_strategy() {
        let metrics = Metrics::new();
        let backends: Vec<Arc<Backend>> = (0..2)
            .map(|i| {
                let config = BackendConfig {
                    name: format!("b{i}"),
                    url: BackendUrl::parse(&format!("http://127.0.0.1:{}", 9000 + i)).unwrap(),
                };
                let b = Arc::new(Backend::new(
                    &config,
                    BreakerConfig::default(),
                    100,
                    &metrics,
                ));
                b.set_up(true);
                b
            })
            .collect();
        let mut config = RoutingConfig::default();
        config.per_model.insert("rr".into(), Strategy::RoundRobin);
        let r = Routing::new(backends, &config).unwrap();
        let now = Instant::now();
        let sticky = r.candidates(Some("alice"), Some("other"), now)[0]
            .name()
            .to_owned();
        for _ in 0..4 {
            assert_eq!(
                r.candidates(Some("alice"), Some("other"), now)[0].name(),
                sticky
            );
        }
        let rotated: Vec<String> = (0..4)
            .map(|_| {
                r.candidates(Some("alice"), Some("rr"), now)[0]
                    .name()
                    .to_owned()
            })
            .collect();
        assert_ne!(
            rotated[0], rotated[1],
            "round robin for model rr: {rotated:?}"
        );
    }

    #[test]
    fn empty_is_an_error_not_a_panic() {
        assert!(Routing::new(Vec::new(), &RoutingConfig::default()).is_err());
    }
}

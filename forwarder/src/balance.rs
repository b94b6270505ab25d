//! Round-robin choice of a backend, skipping backends that are marked down.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::backend::Backend;

#[derive(Debug)]
pub struct Balancer {
    backends: Vec<Arc<Backend>>,
    next: AtomicUsize,
}

/// A balancer needs at least one backend.
#[derive(Debug, thiserror::Error)]
#[error("no backends to balance over")]
pub struct NoBackends;

impl Balancer {
    pub fn new(backends: Vec<Arc<Backend>>) -> Result<Self, NoBackends> {
        if backends.is_empty() {
            return Err(NoBackends);
        }
        Ok(Self {
            backends,
            next: AtomicUsize::new(0),
        })
    }

    /// The next backend that is up; if none is, the plain round-robin choice, because health
    /// state can lag behind a backend that has just come back.
    pub fn pick(&self) -> &Arc<Backend> {
        let n = self.backends.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|offset| &self.backends[(start + offset) % n])
            .find(|b| b.is_up())
            .unwrap_or(&self.backends[start])
    }

    pub fn any_up(&self) -> bool {
        self.backends.iter().any(|b| b.is_up())
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendConfig, BackendUrl};
    use crate::metrics::Metrics;

    fn balancer(n: usize) -> Balancer {
        let metrics = Metrics::new();
        let backends = (0..n)
            .map(|i| {
                let config = BackendConfig {
                    name: format!("b{i}"),
                    url: BackendUrl::parse(&format!("http://127.0.0.1:{}", 9000 + i)).unwrap(),
                };
                Arc::new(Backend::new(&config, &metrics))
            })
            .collect();
        Balancer::new(backends).unwrap()
    }

    fn picks(b: &Balancer, count: usize) -> Vec<String> {
        (0..count).map(|_| b.pick().name().to_owned()).collect()
    }

    #[test]
    fn rotates_over_up_backends() {
        let b = balancer(3);
        b.backends().iter().for_each(|x| x.set_up(true));
        assert_eq!(picks(&b, 6), ["b0", "b1", "b2", "b0", "b1", "b2"]);
    }

    #[test]
    fn skips_down_backends() {
        let b = balancer(3);
        b.backends()[0].set_up(true);
        b.backends()[2].set_up(true);
        let got = picks(&b, 30);
        assert!(!got.iter().any(|n| n == "b1"), "{got:?}");
        assert!(got.iter().any(|n| n == "b0") && got.iter().any(|n| n == "b2"));
        assert!(b.any_up());
    }

    #[test]
    fn falls_back_to_all_when_none_is_up() {
        let b = balancer(2);
        assert!(!b.any_up());
        assert_eq!(picks(&b, 4), ["b0", "b1", "b0", "b1"]);
    }

    #[test]
    fn empty_is_an_error_not_a_panic() {
        assert!(Balancer::new(Vec::new()).is_err());
    }
}

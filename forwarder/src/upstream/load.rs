//! A backend's load as the balancers see it: requests pending (until their answer's body ends,
//! streams included) and a peak-EWMA of its latency to response headers.
//!
//! Peak EWMA (Finagle, linkerd): a slower sample replaces the average at once, faster ones
//! pull it down gradually, so a backend that turns slow stops getting traffic immediately.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How fast old samples fade.
const DECAY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Load {
    pending: AtomicUsize,
    ewma: Mutex<Ewma>,
}

#[derive(Debug, Clone, Copy)]
struct Ewma {
    nanos: f64,
    at: Option<Instant>,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            pending: AtomicUsize::new(0),
            ewma: Mutex::new(Ewma {
                nanos: 0.0,
                at: None,
            }),
        }
    }
}

/// One pending request; it stops counting when dropped.
#[derive(Debug)]
pub struct Pending {
    load: Arc<Load>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.load.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Load {
    pub fn start(self: &Arc<Self>) -> Pending {
        self.pending.fetch_add(1, Ordering::AcqRel);
        Pending {
            load: Arc::clone(self),
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    pub fn observe(&self, latency: Duration, now: Instant) {
        let sample = latency.as_nanos() as f64;
        let mut e = self.ewma.lock().unwrap_or_else(|e| e.into_inner());
        e.nanos = match e.at {
            Some(at) if sample < e.nanos => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                let w = (-dt / DECAY.as_secs_f64()).exp();
                e.nanos * w + sample * (1.0 - w)
            }
            _ => sample,
        };
        e.at = Some(now);
    }

    /// latency x (pending + 1): what p2c compares. Unmeasured backends cost 0, so new ones
    /// get tried; pending still separates them.
    pub fn cost(&self) -> f64 {
        let nanos = self.ewma.lock().unwrap_or_else(|e| e.into_inner()).nanos;
        (nanos.max(1.0)) * (self.pending() as f64 + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_counts_until_dropped() {
        let load = Arc::new(Load::default());
        let a = load.start();
        let b = load.start();
        assert_eq!(load.pending(), 2);
        drop(a);
        assert_eq!(load.pending(), 1);
        drop(b);
        assert_eq!(load.pending(), 0);
    }

    #[test]
    fn peaks_at_once_and_decays_slowly() {
        let load = Load::default();
        let t0 = Instant::now();
        load.observe(Duration::from_millis(10), t0);
        load.observe(Duration::from_millis(100), t0);
        assert!(
            (load.cost() - 100e6).abs() < 1.0,
            "the peak is taken at once"
        );
        load.observe(Duration::from_millis(10), t0 + Duration::from_secs(1));
        let after = load.cost();
        assert!(after < 100e6 && after > 50e6, "decays gradually: {after}");
    }
}

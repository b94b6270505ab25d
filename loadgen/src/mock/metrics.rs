//! The mock's own counters, served as Prometheus text on `/metrics`, and the per-request guard
//! that keeps them honest even when a client leaves mid-answer.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// How a completion request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered in full.
    Ok,
    /// Answered with the profile's injected error status.
    Error,
    /// Rejected as malformed (400/413).
    Invalid,
    /// The client went away before the answer was complete.
    Cancelled,
}

/// Each counter on its own cache line: every token bumps `tokens` from whichever core runs the
/// stream, and the two cores should not fight over the neighbouring counters too.
#[repr(align(64))]
#[derive(Default)]
struct Padded<T>(T);

#[derive(Default)]
pub struct Metrics {
    ok: Padded<AtomicU64>,
    error: Padded<AtomicU64>,
    invalid: Padded<AtomicU64>,
    cancelled: Padded<AtomicU64>,
    inflight: Padded<AtomicI64>,
    tokens: Padded<AtomicU64>,
}

impl Metrics {
    /// Starts tracking one completion request; it is in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> RequestGuard {
        self.inflight.0.fetch_add(1, Relaxed);
        RequestGuard {
            metrics: Arc::clone(self),
            outcome: None,
        }
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(640);
        out.push_str(
            "# HELP mock_requests_total Completion requests answered, by outcome.\n\
             # TYPE mock_requests_total counter\n",
        );
        for (outcome, counter) in [
            ("ok", &self.ok),
            ("error", &self.error),
            ("invalid", &self.invalid),
            ("cancelled", &self.cancelled),
        ] {
            let _ = writeln!(
                out,
                "mock_requests_total{{outcome=\"{outcome}\"}} {}",
                counter.0.load(Relaxed)
            );
        }
        let _ = write!(
            out,
            "# HELP mock_inflight_requests Completion requests being answered now.\n\
             # TYPE mock_inflight_requests gauge\n\
             mock_inflight_requests {}\n\
             # HELP mock_tokens_total Completion tokens sent.\n\
             # TYPE mock_tokens_total counter\n\
             mock_tokens_total {}\n",
            self.inflight.0.load(Relaxed).max(0),
            self.tokens.0.load(Relaxed)
        );
        out
    }

    fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Ok => &self.ok,
            Outcome::Error => &self.error,
            Outcome::Invalid => &self.invalid,
            Outcome::Cancelled => &self.cancelled,
        };
        counter.0.fetch_add(1, Relaxed);
    }
}

/// One request in flight. Dropping it without [`RequestGuard::finish`] means the client left
/// (hyper drops the service future or the body), which is counted as cancelled.
pub struct RequestGuard {
    metrics: Arc<Metrics>,
    outcome: Option<Outcome>,
}

impl RequestGuard {
    pub fn finish(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }

    pub fn tokens_sent(&self, n: u64) {
        self.metrics.tokens.0.fetch_add(n, Relaxed);
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.metrics
            .count(self.outcome.unwrap_or(Outcome::Cancelled));
        self.metrics.inflight.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_outcomes_and_inflight() {
        let metrics = Arc::new(Metrics::default());
        let mut done = metrics.start();
        let left = metrics.start();
        left.tokens_sent(3);
        assert!(metrics.render().contains("mock_inflight_requests 2\n"));
        done.finish(Outcome::Ok);
        drop(done);
        drop(left);
        let text = metrics.render();
        assert!(
            text.contains("mock_requests_total{outcome=\"ok\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mock_requests_total{outcome=\"cancelled\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("mock_inflight_requests 0\n"), "{text}");
        assert!(text.contains("mock_tokens_total 3\n"), "{text}");
    }
}

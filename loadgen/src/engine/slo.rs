//! Per-request service-level objectives: a successful request that meets all of them counts
//! towards goodput (the vLLM / guidellm definition).

use std::time::Duration;

use crate::stats::Outcome;

/// Bounds a request must stay within to count as good; unset bounds always hold.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Slo {
    pub ttft: Option<Duration>,
    pub tpot: Option<Duration>,
    pub latency: Option<Duration>,
}

impl Slo {
    /// Whether a successful outcome meets every bound (judged on the service-time view).
    pub fn met(&self, outcome: &Outcome) -> bool {
        let e2e = outcome.service_time.unwrap_or(outcome.latency);
        let within = |bound: Option<Duration>, value: Option<Duration>| match (bound, value) {
            (Some(bound), Some(value)) => value <= bound,
            (Some(_), None) => false,
            (None, _) => true,
        };
        outcome.failure.is_none()
            && within(self.latency, Some(e2e))
            && within(self.ttft, outcome.ttft)
            && (self.tpot.is_none()
                || outcome.output_tokens <= 1
                || within(self.tpot, outcome.time_per_output_token(e2e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goodput_needs_every_bound_met() {
        let slo = Slo {
            ttft: Some(Duration::from_millis(200)),
            tpot: Some(Duration::from_millis(50)),
            latency: None,
        };
        let good = Outcome {
            latency: Duration::from_millis(1100),
            ttft: Some(Duration::from_millis(100)),
            output_tokens: 21,
            ..Outcome::default()
        };
        assert!(slo.met(&good), "tpot = 1000ms / 20 = 50ms");
        let slow_first = Outcome {
            ttft: Some(Duration::from_millis(300)),
            ..good.clone()
        };
        assert!(!slo.met(&slow_first));
        let slow_tokens = Outcome {
            latency: Duration::from_millis(2000),
            ..good.clone()
        };
        assert!(!slo.met(&slow_tokens));
        let failed = Outcome {
            failure: Some(crate::stats::ErrorClass::Timeout),
            ..good
        };
        assert!(!slo.met(&failed));
        assert!(Slo::default().met(&Outcome::default()));
    }
}

//! What one request came to: success with its timings, or failure with a class.

use std::time::Duration;

/// Why a request failed. Every failure has exactly one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Could not open a connection.
    Connect,
    /// The connection broke before a response head arrived.
    Reset,
    /// No complete answer within the request timeout.
    Timeout,
    /// The answer's status was 4xx.
    Http4xx,
    /// The answer's status was 5xx.
    Http5xx,
    /// Any other non-2xx status.
    HttpOther,
    /// A 2xx answer whose body broke or ended early (a stream without `[DONE]`).
    StreamCut,
    /// Still in flight when the run's graceful stop ran out.
    Interrupted,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 8] = [
        ErrorClass::Connect,
        ErrorClass::Reset,
        ErrorClass::Timeout,
        ErrorClass::Http4xx,
        ErrorClass::Http5xx,
        ErrorClass::HttpOther,
        ErrorClass::StreamCut,
        ErrorClass::Interrupted,
    ];

    /// The name used in `failed_<name>` report columns and budgets.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Reset => "reset",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::HttpOther => "http_other",
            ErrorClass::StreamCut => "stream_cut",
            ErrorClass::Interrupted => "interrupted",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_status(status: u16) -> ErrorClass {
        match status {
            400..=499 => ErrorClass::Http4xx,
            500..=599 => ErrorClass::Http5xx,
            _ => ErrorClass::HttpOther,
        }
    }
}

/// One finished request.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// `None` for success.
    pub failure: Option<ErrorClass>,
    /// Response time: from when the request was due (its intended send time in the open model,
    /// its send time in the closed model) to the end of the answer. This is the view that does
    /// not hide queueing in the load generator (coordinated omission).
    pub latency: Duration,
    /// Service time: from the actual send to the end of the answer. Set only where it can differ
    /// from `latency` (the open model).
    pub service_time: Option<Duration>,
    /// Time from the actual send to the first content token, for streams.
    pub ttft: Option<Duration>,
    /// Gaps between successive content tokens, in microseconds.
    pub inter_token_us: Vec<u64>,
    pub output_tokens: u64,
    /// Whether a successful request also met every per-request SLO of the scenario (goodput).
    pub met_slo: bool,
}

impl Outcome {
    pub fn failed(class: ErrorClass, latency: Duration) -> Outcome {
        Outcome {
            failure: Some(class),
            latency,
            ..Outcome::default()
        }
    }

    /// Back to a fresh outcome, keeping the token-gap buffer's room.
    pub fn reset(&mut self) {
        let mut gaps = std::mem::take(&mut self.inter_token_us);
        gaps.clear();
        *self = Outcome {
            inter_token_us: gaps,
            ..Outcome::default()
        };
    }

    /// Time per output token after the first: (E2E - TTFT) / (tokens - 1), the vLLM definition.
    pub fn time_per_output_token(&self, e2e: Duration) -> Option<Duration> {
        let ttft = self.ttft?;
        (self.output_tokens > 1).then(|| {
            e2e.saturating_sub(ttft) / (self.output_tokens - 1).min(u64::from(u32::MAX)) as u32
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_outcome_is_fresh_but_keeps_its_gap_buffer() {
        let mut o = Outcome::failed(ErrorClass::Timeout, Duration::from_secs(1));
        o.inter_token_us.extend([1, 2, 3]);
        let room = o.inter_token_us.capacity();
        o.reset();
        assert_eq!(
            (o.failure, o.latency, o.inter_token_us.len()),
            (None, Duration::ZERO, 0)
        );
        assert_eq!(o.inter_token_us.capacity(), room);
    }

    #[test]
    fn tpot_follows_the_vllm_definition() {
        let o = Outcome {
            ttft: Some(Duration::from_millis(100)),
            output_tokens: 11,
            ..Outcome::default()
        };
        assert_eq!(
            o.time_per_output_token(Duration::from_millis(600)),
            Some(Duration::from_millis(50))
        );
        let single = Outcome {
            output_tokens: 1,
            ..o.clone()
        };
        assert_eq!(
            single.time_per_output_token(Duration::from_millis(600)),
            None
        );
    }
}

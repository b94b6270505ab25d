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
    /// From send to the end of the answer (the last byte of the stream).
    pub latency: Duration,
    /// Time to the first content token, for streams.
    pub ttft: Option<Duration>,
    /// Gaps between successive content tokens, in microseconds.
    pub inter_token_us: Vec<u64>,
    pub output_tokens: u64,
}

impl Outcome {
    pub fn failed(class: ErrorClass, latency: Duration) -> Outcome {
        Outcome {
            failure: Some(class),
            latency,
            ..Outcome::default()
        }
    }
}

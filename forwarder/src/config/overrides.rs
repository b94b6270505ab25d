//! Per-run overrides of the config file's values, as command-line flags.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use super::policy::parse_error_status;
use super::{BackendUrl, Strategy, parse_nonzero_duration};

/// Values that win over the config file; `backends`, when not empty, replaces its whole list.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Backend base URL, http://HOST:PORT; repeat for more backends.
    #[arg(long = "backend", value_name = "URL", value_parser = BackendUrl::parse)]
    pub backends: Vec<BackendUrl>,

    /// Concurrent upstream requests [default: 4096].
    #[arg(long, value_name = "N")]
    pub max_inflight: Option<NonZeroUsize>,

    /// Requests allowed to wait for an upstream slot before shedding [default: 500].
    #[arg(long, value_name = "N")]
    pub max_queue: Option<usize>,

    /// Upstream TCP connect timeout [default: 2s].
    #[arg(long, value_name = "D", value_parser = parse_nonzero_duration)]
    pub connect_timeout: Option<Duration>,

    /// Time allowed until upstream response headers [default: 60s].
    #[arg(long, value_name = "D", value_parser = parse_nonzero_duration)]
    pub first_byte_timeout: Option<Duration>,

    /// Total time for one request, streaming included [default: 10m].
    #[arg(long, value_name = "D", value_parser = parse_nonzero_duration)]
    pub request_timeout: Option<Duration>,

    /// How long in-flight requests may finish after SIGTERM/SIGINT [default: 10s].
    #[arg(long, value_name = "D", value_parser = parse_nonzero_duration)]
    pub drain_timeout: Option<Duration>,

    /// HTTP/2 concurrent streams per client connection [default: 2048].
    #[arg(long, value_name = "N")]
    pub h2_max_streams: Option<NonZeroU32>,

    /// Concurrent upstream requests to any one backend [default: 4096].
    #[arg(long, value_name = "N")]
    pub per_backend_inflight: Option<NonZeroUsize>,

    /// Status for requests shed because the wait queue is full: 429 or 503 [default: 429].
    #[arg(long, value_name = "CODE", value_parser = parse_error_status)]
    pub shed_status: Option<http::StatusCode>,

    /// Longest gap between two chunks of a streamed answer [default: 30s].
    #[arg(long, value_name = "D", value_parser = parse_nonzero_duration)]
    pub idle_timeout: Option<Duration>,

    /// consistent_hash, p2c or round_robin [default: consistent_hash].
    #[arg(long, value_name = "STRATEGY", value_parser = Strategy::parse)]
    pub routing: Option<Strategy>,

    /// Consecutive failures that open a backend's circuit breaker [default: 5].
    #[arg(long, value_name = "N")]
    pub breaker_failures: Option<NonZeroU32>,

    /// How long an opened breaker waits before its one probe [default: 30s].
    #[arg(long, value_name = "D", value_parser = parse_nonzero_duration)]
    pub breaker_wait: Option<Duration>,

    /// Turn the response cache on (non-streaming answers, see `cache:` in the config file).
    #[arg(long)]
    pub cache: bool,
}

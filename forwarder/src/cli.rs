//! Command-line flags: the quick-start form and per-run overrides of a config file.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::policy::parse_error_status;
use crate::config::{BackendUrl, Strategy, parse_nonzero_duration};

const CONFIG_EXAMPLE: &str = "\
Config file example (listen and backends may also come from flags; the rest is optional):
  listen: 127.0.0.1:8080
  backends:
    - { name: a, url: http://127.0.0.1:9001 }
    - url: http://127.0.0.1:9002          # name defaults to backend-<index>
  admission: { max_inflight: 4096, max_queue: 500, per_backend: 4096, shed_status: 429 }
  timeouts: { connect: 2s, first_byte: 60s, idle: 30s, request: 10m, drain: 10s, header_read: 10s }
  http2: { max_concurrent_streams: 2048 }
  routing: { strategy: consistent_hash, hash_header: x-user-id, balance_factor: 1.25 }
  breaker: { failures: 5, wait: 30s, max_wait: 5m }   # optional: failure_rate: 50%, window: 10s, min_requests: 20
  retries: { budget: 20%, min_per_second: 5, max_attempts: 2 }
  cache: { enabled: false, ttl: 60s, max_entries: 10000, max_body: 256KiB }
  compression: { gzip: true, min_size: 1KiB, max_size: 4MiB }
  limits: { max_body: 4MiB, max_header: 64KiB }
  auth: { api_keys: [key-1], api_keys_env: FORWARDER_API_KEYS, upstream_key_env: UPSTREAM_KEY }
  fallback: { status: 503, message: \"系统繁忙,请稍后重试\" }
  warmup: { connections: 0, request: false }";

/// `forwarder --config FILE` or `forwarder --listen ADDR --backend URL [--backend URL ...]`.
///
/// Every flag given here wins over the config file; `--backend` replaces the file's whole list.
#[derive(Debug, Default, Parser)]
#[command(name = "forwarder", version, about, long_about = None, after_help = CONFIG_EXAMPLE)]
pub struct Cli {
    /// YAML config file (shape below); flags given here override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

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

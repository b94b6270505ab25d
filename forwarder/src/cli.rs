//! Command-line flags: the quick-start form and per-run overrides of a config file.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{BackendUrl, parse_nonzero_duration};

const CONFIG_EXAMPLE: &str = "\
Config file example (listen and backends may also come from flags; the rest is optional):
  listen: 127.0.0.1:8080
  backends:
    - { name: a, url: http://127.0.0.1:9001 }
    - url: http://127.0.0.1:9002          # name defaults to backend-<index>
  admission: { max_inflight: 4096, max_queue: 500 }
  timeouts: { connect: 2s, first_byte: 60s, request: 10m, drain: 10s }
  http2: { max_concurrent_streams: 2048 }";

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
}

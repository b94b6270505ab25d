//! Command-line flags: the quick-start form and per-run overrides of a config file.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{Config, ConfigError, Overrides};

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

    #[command(flatten)]
    pub overrides: Overrides,
}

impl Cli {
    /// The configuration these flags ask for: the file if given, overridden by the flags.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::load(self.config.as_deref(), &self.overrides)
    }
}

//! Configuration: the YAML file, defaults, command-line overrides and validation.
//!
//! The file is optional; every setting except `listen` and `backends` has a default, and any flag
//! given on the command line wins over the file (`--backend` replaces the file's whole list).
//!
//! ```yaml
//! listen: 127.0.0.1:8080                 # port 0 picks a free port
//! backends:
//!   - { name: a, url: http://127.0.0.1:9001 }
//!   - url: http://127.0.0.1:9002          # name defaults to backend-<index> (0-based: backend-1)
//! admission: { max_inflight: 4096, max_queue: 500, per_backend: 4096, shed_status: 429 }
//! timeouts: { connect: 2s, first_byte: 60s, idle: 30s, request: 10m, drain: 10s, header_read: 10s }
//! http2: { max_concurrent_streams: 2048 }
//! routing: { strategy: consistent_hash, hash_header: x-user-id, balance_factor: 1.25, virtual_nodes: 160,
//!            per_model: { big-model: p2c } }
//! breaker: { failures: 5, wait: 30s, max_wait: 5m }  # + failure_rate: 50%, window: 10s, min_requests: 20
//! retries: { budget: 20%, min_per_second: 5, max_attempts: 2 }
//! cache: { enabled: false, ttl: 60s, max_entries: 10000, max_body: 256KiB }
//! compression: { gzip: true, min_size: 1KiB, max_size: 4MiB }
//! limits: { max_body: 4MiB, max_header: 64KiB }
//! auth: { api_keys: [key-1], api_keys_env: FORWARDER_API_KEYS, upstream_key_env: UPSTREAM_KEY }
//! fallback: { status: 503, message: "系统繁忙,请稍后重试" }
//! warmup: { connections: 0, request: false }
//! ```
//!
//! - `admission.max_inflight`: concurrent upstream requests (>= 1); `max_queue`: requests that may
//!   wait for one of those slots (0 = shed as soon as all slots are busy); `per_backend` bounds
//!   concurrent requests to any one backend; `shed_status` answers overflow (429 or 503).
//! - `timeouts`: human durations (`250ms`, `2s`, `1m30s`), all non-zero. `first_byte` runs until
//!   the upstream response headers; `request` bounds the whole request including the streamed
//!   body; `idle` bounds the gap between two chunks of a streamed answer; `drain` is how long
//!   in-flight requests may finish after SIGTERM/SIGINT; `header_read` is how long a client may
//!   take to send a request head.
//! - The gateway policies (routing ... warmup) are described in [`policy`].
//! - Backend URLs are `http://HOST:PORT` (no path, query or credentials); names must be unique
//!   because they are metric labels.
//!
//! Unknown keys are errors, and every file error is reported as `FILE:LINE:COL: message`.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use http::uri::Authority;
use serde::Deserialize;
use serde_saphyr::{SnippetMode, Spanned};

pub mod overrides;
pub mod policy;

pub use overrides::Overrides;

pub use policy::{
    AuthConfig, BreakerConfig, CacheConfig, CompressionConfig, FailureRateConfig, FallbackConfig,
    LimitsConfig, Policies, RetryConfig, RoutingConfig, Secret, Strategy, WarmupConfig,
};

/// The validated settings the forwarder runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub backends: Vec<BackendConfig>,
    pub admission: AdmissionConfig,
    pub timeouts: Timeouts,
    pub http2: Http2Config,
    pub policies: Policies,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Metric label and `x-forwarder-backend` value.
    pub name: String,
    pub url: BackendUrl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    pub max_inflight: usize,
    pub max_queue: usize,
    /// Concurrent upstream requests to one backend.
    pub per_backend: usize,
    /// The status of an answer shed because the wait queue is full.
    pub shed_status: http::StatusCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub request: Duration,
    pub drain: Duration,
    pub header_read: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Config {
    pub max_concurrent_streams: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_inflight: 4096,
            max_queue: 500,
            per_backend: 4096,
            shed_status: http::StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(30),
            request: Duration::from_secs(600),
            drain: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
        }
    }
}

impl Default for Http2Config {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 2048,
        }
    }
}

/// Why the configuration could not be built. Every variant is a user error (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{path}:{line}:{column}: {field}: {problem}")]
    Value {
        path: PathBuf,
        line: u64,
        column: u64,
        field: String,
        problem: String,
    },
    #[error("no listen address: set `listen:` in the config file or pass --listen ADDR")]
    NoListen,
    #[error("no backends: pass --backend URL or list them under `backends:` in the config file")]
    NoBackends,
    #[error("duplicate backend name {0:?}: backend names must be unique")]
    DuplicateBackendName(String),
}

/// A backend base URL: `http://HOST:PORT`, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendUrl {
    authority: Authority,
}

/// Why a string is not an acceptable backend URL.
#[derive(Debug, thiserror::Error)]
#[error("invalid backend url {url:?}: {problem}")]
pub struct BackendUrlError {
    url: String,
    problem: &'static str,
}

impl BackendUrl {
    /// Parses and checks a backend URL; used for `--backend` and for the config file.
    pub fn parse(raw: &str) -> Result<Self, BackendUrlError> {
        let fail = |problem| BackendUrlError {
            url: raw.to_owned(),
            problem,
        };
        let uri: Uri = raw.parse().map_err(|_| fail("not a valid URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(fail("only http:// backends are supported")),
            None => return Err(fail("must start with http://")),
        }
        let authority = uri.authority().ok_or_else(|| fail("missing host"))?.clone();
        if authority.host().is_empty() {
            return Err(fail("missing host"));
        }
        if authority.as_str().contains('@') {
            return Err(fail("credentials in the URL are not supported"));
        }
        if authority.port_u16().is_none() {
            return Err(fail("missing port (use http://HOST:PORT)"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(fail(
                "must not have a path or query (requests keep their own path)",
            ));
        }
        Ok(Self { authority })
    }

    /// `HOST:PORT`, used for the upstream URI and the `host` header.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

/// A non-zero duration in humantime syntax (`250ms`, `2s`, `1m30s`).
pub fn parse_nonzero_duration(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw.trim())
        .map_err(|e| format!("invalid duration {raw:?} ({e}); use e.g. 250ms, 2s, 1m30s"))?;
    if d.is_zero() {
        return Err(format!("duration {raw:?} must be greater than zero"));
    }
    Ok(d)
}

/// Any YAML scalar as text. Leaf values are read this way and converted afterwards, so every
/// value error can name its field and point at the value's own line and column.
#[derive(Debug, Clone)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a plain value (string or number)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

type Leaf = Option<Spanned<Scalar>>;

// Struct names show up in serde's "expected struct X" messages, so they are named after keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "config")]
struct FileConfig {
    listen: Leaf,
    #[serde(default)]
    backends: Vec<FileBackend>,
    #[serde(default)]
    admission: FileAdmission,
    #[serde(default)]
    timeouts: FileTimeouts,
    #[serde(default)]
    http2: FileHttp2,
    #[serde(default)]
    routing: policy::FileRouting,
    #[serde(default)]
    breaker: policy::FileBreaker,
    #[serde(default)]
    retries: policy::FileRetries,
    #[serde(default)]
    cache: policy::FileCache,
    #[serde(default)]
    compression: policy::FileCompression,
    #[serde(default)]
    limits: policy::FileLimits,
    #[serde(default)]
    auth: policy::FileAuth,
    #[serde(default)]
    fallback: policy::FileFallback,
    #[serde(default)]
    warmup: policy::FileWarmup,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "backend")]
struct FileBackend {
    name: Leaf,
    url: Spanned<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "admission")]
struct FileAdmission {
    max_inflight: Leaf,
    max_queue: Leaf,
    per_backend: Leaf,
    shed_status: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "timeouts")]
struct FileTimeouts {
    connect: Leaf,
    first_byte: Leaf,
    idle: Leaf,
    request: Leaf,
    drain: Leaf,
    header_read: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "http2")]
struct FileHttp2 {
    max_concurrent_streams: Leaf,
}

/// Converts leaf values, turning failures into `FILE:LINE:COL: field: problem`.
struct LeafReader<'a> {
    path: &'a Path,
}

impl LeafReader<'_> {
    fn read<T, E: fmt::Display>(
        &self,
        field: &str,
        leaf: &Spanned<Scalar>,
        convert: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError> {
        convert(leaf.value.0.trim()).map_err(|e| ConfigError::Value {
            path: self.path.to_owned(),
            line: leaf.referenced.line(),
            column: leaf.referenced.column(),
            field: field.to_owned(),
            problem: e.to_string(),
        })
    }

    fn opt<T, E: fmt::Display>(
        &self,
        field: &str,
        leaf: &Leaf,
        convert: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ConfigError> {
        leaf.as_ref()
            .map(|l| self.read(field, l, convert))
            .transpose()
    }
}

fn parse_socket_addr(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not an IP:PORT address (e.g. 127.0.0.1:8080)"))
}

fn parse_count<T: std::str::FromStr>(raw: &str) -> Result<T, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not a valid count (a whole number in range)"))
}

fn parse_nonzero_count<T: std::str::FromStr>(raw: &str) -> Result<T, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not a valid count (a whole number >= 1)"))
}

/// The file's values, converted and validated but not yet merged.
#[derive(Debug, Default)]
struct FileValues {
    listen: Option<SocketAddr>,
    backends: Vec<BackendConfig>,
    max_inflight: Option<NonZeroUsize>,
    max_queue: Option<usize>,
    per_backend: Option<NonZeroUsize>,
    shed_status: Option<http::StatusCode>,
    connect: Option<Duration>,
    first_byte: Option<Duration>,
    idle: Option<Duration>,
    request: Option<Duration>,
    drain: Option<Duration>,
    header_read: Option<Duration>,
    max_concurrent_streams: Option<NonZeroU32>,
    policies: Policies,
}

impl FileValues {
    fn from_file(path: &Path, file: FileConfig) -> Result<Self, ConfigError> {
        let r = LeafReader { path };
        let t = &file.timeouts;
        Ok(Self {
            listen: r.opt("listen", &file.listen, parse_socket_addr)?,
            backends: file_backends(&r, &file.backends)?,
            max_inflight: r.opt(
                "admission.max_inflight",
                &file.admission.max_inflight,
                parse_nonzero_count,
            )?,
            max_queue: r.opt(
                "admission.max_queue",
                &file.admission.max_queue,
                parse_count,
            )?,
            per_backend: r.opt(
                "admission.per_backend",
                &file.admission.per_backend,
                parse_nonzero_count,
            )?,
            shed_status: r.opt(
                "admission.shed_status",
                &file.admission.shed_status,
                policy::parse_error_status,
            )?,
            connect: r.opt("timeouts.connect", &t.connect, parse_nonzero_duration)?,
            first_byte: r.opt("timeouts.first_byte", &t.first_byte, parse_nonzero_duration)?,
            idle: r.opt("timeouts.idle", &t.idle, parse_nonzero_duration)?,
            request: r.opt("timeouts.request", &t.request, parse_nonzero_duration)?,
            drain: r.opt("timeouts.drain", &t.drain, parse_nonzero_duration)?,
            header_read: r.opt(
                "timeouts.header_read",
                &t.header_read,
                parse_nonzero_duration,
            )?,
            max_concurrent_streams: r.opt(
                "http2.max_concurrent_streams",
                &file.http2.max_concurrent_streams,
                parse_nonzero_count,
            )?,
            policies: Policies::from_file(
                &r,
                &policy::FilePolicies {
                    routing: &file.routing,
                    breaker: &file.breaker,
                    retries: &file.retries,
                    cache: &file.cache,
                    compression: &file.compression,
                    limits: &file.limits,
                    auth: &file.auth,
                    fallback: &file.fallback,
                    warmup: &file.warmup,
                },
            )?,
        })
    }
}

impl Config {
    /// Builds the configuration from the file at `path` (if any) and `overrides`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::build(overrides, Some((path, &text)))
            }
            None => Self::build(overrides, None),
        }
    }

    /// Merges defaults < file < command line and validates the result.
    fn build(cli: &Overrides, file: Option<(&Path, &str)>) -> Result<Self, ConfigError> {
        let f = match file {
            Some((path, text)) => FileValues::from_file(path, parse_file(path, text)?)?,
            None => FileValues::default(),
        };

        let backends = if cli.backends.is_empty() {
            f.backends
        } else {
            cli.backends
                .iter()
                .enumerate()
                .map(|(i, url)| BackendConfig {
                    name: default_backend_name(i),
                    url: url.clone(),
                })
                .collect()
        };
        if backends.is_empty() {
            return Err(ConfigError::NoBackends);
        }
        // Defaulted names can collide with explicit ones (`backend-1` named by hand).
        let mut seen = HashSet::new();
        for b in &backends {
            if !seen.insert(b.name.as_str()) {
                return Err(ConfigError::DuplicateBackendName(b.name.clone()));
            }
        }

        let adm = AdmissionConfig::default();
        let t = Timeouts::default();
        let mut policies = f.policies;
        if let Some(strategy) = cli.routing {
            policies.routing.strategy = strategy;
        }
        if let Some(failures) = cli.breaker_failures {
            policies.breaker.failures = failures.get();
        }
        if let Some(wait) = cli.breaker_wait {
            policies.breaker.wait = wait;
            policies.breaker.max_wait = policies.breaker.max_wait.max(wait);
        }
        if cli.cache {
            policies.cache.enabled = true;
        }
        Ok(Self {
            listen: cli.listen.or(f.listen).ok_or(ConfigError::NoListen)?,
            backends,
            admission: AdmissionConfig {
                max_inflight: cli
                    .max_inflight
                    .or(f.max_inflight)
                    .map_or(adm.max_inflight, NonZeroUsize::get),
                max_queue: cli.max_queue.or(f.max_queue).unwrap_or(adm.max_queue),
                per_backend: cli
                    .per_backend_inflight
                    .or(f.per_backend)
                    .map_or(adm.per_backend, NonZeroUsize::get),
                shed_status: cli.shed_status.or(f.shed_status).unwrap_or(adm.shed_status),
            },
            timeouts: Timeouts {
                connect: cli.connect_timeout.or(f.connect).unwrap_or(t.connect),
                first_byte: cli
                    .first_byte_timeout
                    .or(f.first_byte)
                    .unwrap_or(t.first_byte),
                idle: cli.idle_timeout.or(f.idle).unwrap_or(t.idle),
                request: cli.request_timeout.or(f.request).unwrap_or(t.request),
                drain: cli.drain_timeout.or(f.drain).unwrap_or(t.drain),
                header_read: f.header_read.unwrap_or(t.header_read),
            },
            http2: Http2Config {
                max_concurrent_streams: cli.h2_max_streams.or(f.max_concurrent_streams).map_or(
                    Http2Config::default().max_concurrent_streams,
                    NonZeroU32::get,
                ),
            },
            policies,
        })
    }
}

fn default_backend_name(index: usize) -> String {
    format!("backend-{index}")
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    // An empty file is a valid "all defaults" config; YAML would call it a null document.
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_saphyr::from_str::<FileConfig>(text).map_err(|err| {
        let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
        // The plain rendering ends in " at line L, column C"; we lead with FILE:L:C instead.
        let plain = err.render_with_options(serde_saphyr::render_options! {
            snippets: SnippetMode::Off,
        });
        let suffix = format!(" at line {line}, column {column}");
        let mut message = plain
            .strip_suffix(suffix.as_str())
            .unwrap_or(&plain)
            .to_owned();
        // Structural errors ("expected sequence start") do not say which key they are about.
        if let Some(key) = key_on_line(text, line)
            && !message.contains(key)
        {
            message = format!("{key}: {message}");
        }
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    })
}

/// The first `key:` on a 1-based line of block-style YAML, if the line starts with one.
fn key_on_line(text: &str, line: u64) -> Option<&str> {
    let raw = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let body = raw.trim_start().trim_start_matches("- ").trim_start();
    let (key, _) = body.split_once(':')?;
    let plain_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    plain_key.then_some(key)
}

fn file_backends(
    r: &LeafReader<'_>,
    list: &[FileBackend],
) -> Result<Vec<BackendConfig>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(index, b)| {
            let url = r.read(&format!("backends[{index}].url"), &b.url, BackendUrl::parse)?;
            let name = r
                .opt(&format!("backends[{index}].name"), &b.name, check_name)?
                .unwrap_or_else(|| default_backend_name(index));
            Ok(BackendConfig { name, url })
        })
        .collect()
}

/// Names end up as metric label values and a response header, so keep them plain.
fn check_name(name: &str) -> Result<String, &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > 64 {
        return Err("must be at most 64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err("may only contain ASCII letters, digits, '-', '_', '.' and ':'");
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The flags as the binary takes them.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        overrides: Overrides,
    }

    fn cli(args: &[&str]) -> Overrides {
        let mut full = vec!["forwarder"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full)
            .expect("test args parse")
            .overrides
    }

    fn from_yaml(args: &[&str], yaml: &str) -> Result<Config, ConfigError> {
        Config::build(&cli(args), Some((Path::new("conf.yaml"), yaml)))
    }

    const FULL: &str = "\
listen: 127.0.0.1:8080
backends:
  - { name: a, url: http://127.0.0.1:9001 }
  - url: http://127.0.0.1:9002
admission: { max_inflight: 10, max_queue: 3 }
timeouts: { connect: 250ms, first_byte: 5s, request: 1m30s, drain: 1s }
http2: { max_concurrent_streams: 100 }
";

    #[test]
    fn full_file_parses() {
        let c = from_yaml(&[], FULL).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.backends.len(), 2);
        assert_eq!(c.backends[0].name, "a");
        assert_eq!(c.backends[1].name, "backend-1");
        assert_eq!(c.backends[1].url.authority().as_str(), "127.0.0.1:9002");
        assert_eq!(c.admission.max_inflight, 10);
        assert_eq!(c.admission.max_queue, 3);
        assert_eq!(c.timeouts.connect, Duration::from_millis(250));
        assert_eq!(c.timeouts.request, Duration::from_secs(90));
        assert_eq!(c.http2.max_concurrent_streams, 100);
    }

    #[test]
    fn policies_parse_with_locations() {
        let yaml = "routing: { strategy: p2c, balance_factor: 1.5, per_model: { big: round_robin } }\n\
                    breaker: { failures: 3, wait: 2s, failure_rate: 25%, min_requests: 8 }\ncache: { enabled: true, max_body: 64KiB }\n\
                    admission: { shed_status: 503, per_backend: 8 }\nfallback: { message: busy }\n";
        let c = from_yaml(
            &["--listen", "127.0.0.1:0", "--backend", "http://127.0.0.1:1"],
            yaml,
        )
        .unwrap();
        let p = &c.policies;
        assert_eq!(p.routing.strategy, Strategy::P2c);
        assert_eq!(p.routing.balance_factor, 1.5);
        assert_eq!(p.routing.per_model["big"], Strategy::RoundRobin);
        assert_eq!(p.breaker.failures, 3);
        assert_eq!(p.breaker.wait, Duration::from_secs(2));
        let rate = p.breaker.failure_rate.unwrap();
        assert_eq!((rate.rate, rate.min_requests), (0.25, 8));
        assert_eq!(rate.window, Duration::from_secs(10));
        assert!(p.cache.enabled);
        assert_eq!(p.cache.max_body, 65536);
        assert_eq!(
            c.admission.shed_status,
            http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(c.admission.per_backend, 8);
        assert_eq!(p.fallback.message, "busy");

        let bad = "routing:\n  per_model: { big: fastest }\n";
        let msg = from_yaml(
            &["--listen", "127.0.0.1:0", "--backend", "http://127.0.0.1:1"],
            bad,
        )
        .unwrap_err()
        .to_string();
        assert!(msg.starts_with("conf.yaml:2:"), "{msg}");
        assert!(msg.contains("routing.per_model.big"), "{msg}");
        let env = "auth: { upstream_key_env: SURELY_NOT_SET_FWD_TEST }\n";
        let msg = from_yaml(
            &["--listen", "127.0.0.1:0", "--backend", "http://127.0.0.1:1"],
            env,
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("SURELY_NOT_SET_FWD_TEST is not set"), "{msg}");
    }

    #[test]
    fn defaults_apply_to_a_minimal_cli() {
        let c = Config::build(
            &cli(&["--listen", "127.0.0.1:0", "--backend", "http://127.0.0.1:1"]),
            None,
        )
        .unwrap();
        assert_eq!(c.admission, AdmissionConfig::default());
        assert_eq!(c.timeouts, Timeouts::default());
        assert_eq!(c.http2, Http2Config::default());
        assert_eq!(c.backends[0].name, "backend-0");
    }

    #[test]
    fn cli_overrides_file_and_replaces_backends() {
        let c = from_yaml(
            &[
                "--listen",
                "127.0.0.1:9999",
                "--backend",
                "http://127.0.0.1:7000",
                "--max-queue",
                "0",
                "--first-byte-timeout",
                "2s",
                "--h2-max-streams",
                "7",
            ],
            FULL,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.backends.len(), 1);
        assert_eq!(c.backends[0].url.to_string(), "http://127.0.0.1:7000");
        assert_eq!(c.admission.max_queue, 0);
        // Not overridden: still the file's value.
        assert_eq!(c.admission.max_inflight, 10);
        assert_eq!(c.timeouts.first_byte, Duration::from_secs(2));
        assert_eq!(c.timeouts.connect, Duration::from_millis(250));
        assert_eq!(c.http2.max_concurrent_streams, 7);
    }

    #[test]
    fn unknown_field_is_rejected_with_location() {
        let yaml = "listen: 127.0.0.1:8080\nbackends:\n  - url: http://127.0.0.1:1\ntimeouts:\n  conect: 2s\n";
        let msg = from_yaml(&[], yaml).unwrap_err().to_string();
        assert!(msg.starts_with("conf.yaml:5:3: "), "{msg}");
        assert!(msg.contains("conect"), "{msg}");
    }

    #[test]
    fn bad_duration_names_location_and_value() {
        let yaml = "listen: 127.0.0.1:8080\nbackends:\n  - url: http://127.0.0.1:1\ntimeouts: { first_byte: soon }\n";
        let msg = from_yaml(&[], yaml).unwrap_err().to_string();
        assert!(msg.starts_with("conf.yaml:4:"), "{msg}");
        assert!(msg.contains("first_byte"), "{msg}");
        assert!(msg.contains("soon"), "{msg}");
    }

    #[test]
    fn bad_backend_url_names_location() {
        let yaml = "listen: 127.0.0.1:8080\nbackends:\n  - url: https://example.com:443\n";
        let msg = from_yaml(&[], yaml).unwrap_err().to_string();
        assert!(msg.starts_with("conf.yaml:3:"), "{msg}");
        assert!(msg.contains("url"), "{msg}");
        assert!(msg.contains("only http://"), "{msg}");
    }

    #[test]
    fn zero_inflight_is_rejected() {
        let yaml = "listen: 127.0.0.1:8080\nbackends:\n  - url: http://127.0.0.1:1\nadmission:\n  max_inflight: 0\n";
        let msg = from_yaml(&[], yaml).unwrap_err().to_string();
        assert!(msg.starts_with("conf.yaml:5:"), "{msg}");
        assert!(msg.contains("max_inflight"), "{msg}");
    }

    #[test]
    fn wrong_type_is_rejected_with_location() {
        let yaml = "listen: 127.0.0.1:8080\nbackends: http://127.0.0.1:1\n";
        let msg = from_yaml(&[], yaml).unwrap_err().to_string();
        assert!(msg.starts_with("conf.yaml:2:"), "{msg}");
        assert!(msg.contains("backends"), "{msg}");
    }

    #[test]
    fn duplicate_and_bad_names_are_rejected() {
        let dup = "listen: 127.0.0.1:8080\nbackends:\n  - { name: x, url: http://127.0.0.1:1 }\n  - { name: x, url: http://127.0.0.1:2 }\n";
        assert!(matches!(
            from_yaml(&[], dup),
            Err(ConfigError::DuplicateBackendName(n)) if n == "x"
        ));
        let bad =
            "listen: 127.0.0.1:8080\nbackends:\n  - { name: \"a b\", url: http://127.0.0.1:1 }\n";
        let msg = from_yaml(&[], bad).unwrap_err().to_string();
        assert!(msg.starts_with("conf.yaml:3:"), "{msg}");
        assert!(msg.contains("backends[0].name"), "{msg}");
    }

    #[test]
    fn missing_backends_and_listen_are_reported() {
        assert!(matches!(
            from_yaml(&[], "listen: 127.0.0.1:8080\n"),
            Err(ConfigError::NoBackends)
        ));
        assert!(matches!(
            from_yaml(&[], "backends: [{ url: http://127.0.0.1:1 }]\n"),
            Err(ConfigError::NoListen)
        ));
        assert!(matches!(
            Config::build(&cli(&["--listen", "127.0.0.1:0"]), None),
            Err(ConfigError::NoBackends)
        ));
    }

    #[test]
    fn backend_url_rules() {
        for ok in [
            "http://127.0.0.1:9001",
            "http://127.0.0.1:9001/",
            "http://localhost:80",
            "http://[::1]:9000",
        ] {
            assert!(BackendUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1:9001",
            "https://127.0.0.1:9001",
            "http://127.0.0.1",
            "http://127.0.0.1:9001/v1",
            "http://u:p@127.0.0.1:9001",
            "http://",
            "",
            "not a url",
        ] {
            assert!(BackendUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cli_rejects_bad_values() {
        for args in [
            &["--backend", "ftp://x:1"][..],
            &["--max-inflight", "0"],
            &["--connect-timeout", "0s"],
            &["--request-timeout", "ten"],
            &["--listen", "nowhere"],
        ] {
            let mut full = vec!["forwarder"];
            full.extend_from_slice(args);
            assert!(Cli::try_parse_from(full).is_err(), "{args:?}");
        }
    }
}

//! The gateway policies of the config file: routing, breaker, retries, cache, compression,
//! limits, client and upstream keys, the fallback answer and warm-up. Each has defaults; the
//! file's sections are optional and read into the validated structs here.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use http::StatusCode;
use http::header::HeaderName;
use serde::Deserialize;

use super::{ConfigError, Leaf, LeafReader, Scalar, parse_count, parse_nonzero_duration};
use serde_saphyr::Spanned;

/// How a request picks its backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// By user id on a hash ring with bounded loads; requests without one use p2c.
    ConsistentHash,
    /// Power of two choices over peak-EWMA latency x pending requests.
    P2c,
    RoundRobin,
}

impl Strategy {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "consistent_hash" => Ok(Self::ConsistentHash),
            "p2c" => Ok(Self::P2c),
            "round_robin" => Ok(Self::RoundRobin),
            _ => Err(format!(
                "unknown strategy {raw:?}; use consistent_hash, p2c or round_robin"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    pub strategy: Strategy,
    /// Where the user id is read first; the JSON body's `user` field is the second source.
    pub hash_header: HeaderName,
    /// No backend takes more than this x the average load (>= 1.0).
    pub balance_factor: f64,
    /// Points per backend on the ring: more points, more even shares.
    pub virtual_nodes: usize,
    /// Strategy overrides by the request's `model` field.
    pub per_model: BTreeMap<String, Strategy>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::ConsistentHash,
            hash_header: HeaderName::from_static("x-user-id"),
            balance_factor: 1.25,
            virtual_nodes: 160,
            per_model: BTreeMap::new(),
        }
    }
}

/// The fallback message the product promises callers when it is overloaded.
pub const BUSY_MESSAGE: &str = "系统繁忙,请稍后重试";

/// The breaker's optional failure-rate rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureRateConfig {
    /// Open when at least this share of the window's requests failed...
    pub rate: f64,
    /// ...over this window...
    pub window: Duration,
    /// ...and the window holds at least this many requests.
    pub min_requests: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// First open period; each failed probe doubles it (with jitter) up to `max_wait`.
    pub wait: Duration,
    pub max_wait: Duration,
    /// Also open on a failure rate over a rolling window (off by default).
    pub failure_rate: Option<FailureRateConfig>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            wait: Duration::from_secs(30),
            max_wait: Duration::from_secs(300),
            failure_rate: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// Retries allowed as a share of requests (0.2 = one retry per five requests).
    pub budget: f64,
    /// Retries allowed per second whatever the share, so a quiet forwarder can still retry.
    pub min_per_second: u32,
    /// Attempts per request, the first one included (1 = never retry).
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            budget: 0.2,
            min_per_second: 5,
            max_attempts: 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Off by default: identical prompts sampled with temperature > 0 are meant to differ.
    pub enabled: bool,
    pub ttl: Duration,
    pub max_entries: u64,
    /// Larger answers are passed through uncached.
    pub max_body: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            ttl: Duration::from_secs(60),
            max_entries: 10_000,
            max_body: 256 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionConfig {
    /// Gzip JSON answers for clients that accept it (never event streams).
    pub gzip: bool,
    /// Smaller answers are sent as they are: gzip would not pay for its own header.
    pub min_size: usize,
    /// Larger answers are streamed uncompressed rather than held in memory to compress.
    pub max_size: usize,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            gzip: true,
            min_size: 1024,
            max_size: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Request body, after gzip decoding too.
    pub max_body: usize,
    /// HTTP/1 request head (at least 8 KiB) and HTTP/2 header list.
    pub max_header: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body: 4 * 1024 * 1024,
            max_header: 64 * 1024,
        }
    }
}

/// A key that must never reach a log line or an answer: its `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Bearer keys clients must present; empty = no client authentication.
    pub client_keys: Vec<Secret>,
    /// Sent to backends as `Authorization: Bearer ...` in place of the client's header.
    pub upstream_key: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackConfig {
    /// The answer when no backend may be tried (all breakers open).
    pub status: StatusCode,
    pub message: String,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: BUSY_MESSAGE.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmupConfig {
    /// Pooled connections opened to each backend before `/readyz` turns ready.
    pub connections: usize,
    /// A small chat request sent to each backend before `/readyz` turns ready.
    pub request: bool,
}

impl WarmupConfig {
    pub fn enabled(&self) -> bool {
        self.connections > 0 || self.request
    }
}

/// The policy sections as the file writes them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "routing")]
pub(super) struct FileRouting {
    strategy: Leaf,
    hash_header: Leaf,
    balance_factor: Leaf,
    virtual_nodes: Leaf,
    #[serde(default)]
    per_model: BTreeMap<String, Spanned<Scalar>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "breaker")]
pub(super) struct FileBreaker {
    failures: Leaf,
    wait: Leaf,
    max_wait: Leaf,
    failure_rate: Leaf,
    window: Leaf,
    min_requests: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "retries")]
pub(super) struct FileRetries {
    budget: Leaf,
    min_per_second: Leaf,
    max_attempts: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "cache")]
pub(super) struct FileCache {
    enabled: Leaf,
    ttl: Leaf,
    max_entries: Leaf,
    max_body: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "compression")]
pub(super) struct FileCompression {
    gzip: Leaf,
    min_size: Leaf,
    max_size: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "limits")]
pub(super) struct FileLimits {
    max_body: Leaf,
    max_header: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "auth")]
pub(super) struct FileAuth {
    #[serde(default)]
    api_keys: Vec<Spanned<Scalar>>,
    api_keys_env: Leaf,
    upstream_key_env: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "fallback")]
pub(super) struct FileFallback {
    status: Leaf,
    message: Leaf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "warmup")]
pub(super) struct FileWarmup {
    connections: Leaf,
    request: Leaf,
}

/// All policy sections, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policies {
    pub routing: RoutingConfig,
    pub breaker: BreakerConfig,
    pub retries: RetryConfig,
    pub cache: CacheConfig,
    pub compression: CompressionConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub fallback: FallbackConfig,
    pub warmup: WarmupConfig,
}

/// The file's policy sections, in the order they appear in [`super::FileConfig`].
pub(super) struct FilePolicies<'a> {
    pub routing: &'a FileRouting,
    pub breaker: &'a FileBreaker,
    pub retries: &'a FileRetries,
    pub cache: &'a FileCache,
    pub compression: &'a FileCompression,
    pub limits: &'a FileLimits,
    pub auth: &'a FileAuth,
    pub fallback: &'a FileFallback,
    pub warmup: &'a FileWarmup,
}

impl Policies {
    pub(super) fn from_file(r: &LeafReader<'_>, f: &FilePolicies<'_>) -> Result<Self, ConfigError> {
        let d = Policies::default();
        let (ro, br, re, ca, co, li, fa, wa) = (
            f.routing,
            f.breaker,
            f.retries,
            f.cache,
            f.compression,
            f.limits,
            f.fallback,
            f.warmup,
        );
        let breaker = BreakerConfig {
            failures: r
                .opt("breaker.failures", &br.failures, parse_positive::<u32>)?
                .unwrap_or(d.breaker.failures),
            wait: r
                .opt("breaker.wait", &br.wait, parse_nonzero_duration)?
                .unwrap_or(d.breaker.wait),
            max_wait: r
                .opt("breaker.max_wait", &br.max_wait, parse_nonzero_duration)?
                .unwrap_or(d.breaker.max_wait),
            failure_rate: r
                .opt("breaker.failure_rate", &br.failure_rate, parse_share)?
                .map(|rate| -> Result<FailureRateConfig, ConfigError> {
                    Ok(FailureRateConfig {
                        rate,
                        window: r
                            .opt("breaker.window", &br.window, parse_nonzero_duration)?
                            .unwrap_or(Duration::from_secs(10)),
                        min_requests: r
                            .opt("breaker.min_requests", &br.min_requests, parse_positive)?
                            .unwrap_or(20),
                    })
                })
                .transpose()?,
        };
        Ok(Self {
            routing: RoutingConfig {
                strategy: r
                    .opt("routing.strategy", &ro.strategy, Strategy::parse)?
                    .unwrap_or(d.routing.strategy),
                hash_header: r
                    .opt("routing.hash_header", &ro.hash_header, parse_header_name)?
                    .unwrap_or(d.routing.hash_header),
                balance_factor: r
                    .opt(
                        "routing.balance_factor",
                        &ro.balance_factor,
                        parse_balance_factor,
                    )?
                    .unwrap_or(d.routing.balance_factor),
                virtual_nodes: r
                    .opt("routing.virtual_nodes", &ro.virtual_nodes, |s| {
                        parse_positive::<usize>(s).and_then(|n| {
                            if n > 10_000 {
                                Err("must be at most 10000".to_owned())
                            } else {
                                Ok(n)
                            }
                        })
                    })?
                    .unwrap_or(d.routing.virtual_nodes),
                per_model: ro
                    .per_model
                    .iter()
                    .map(|(model, leaf)| {
                        let field = format!("routing.per_model.{model}");
                        Ok((model.clone(), r.read(&field, leaf, Strategy::parse)?))
                    })
                    .collect::<Result<_, ConfigError>>()?,
            },
            breaker: BreakerConfig {
                max_wait: breaker.max_wait.max(breaker.wait),
                ..breaker
            },
            retries: RetryConfig {
                budget: r
                    .opt("retries.budget", &re.budget, parse_share)?
                    .unwrap_or(d.retries.budget),
                min_per_second: r
                    .opt("retries.min_per_second", &re.min_per_second, parse_count)?
                    .unwrap_or(d.retries.min_per_second),
                max_attempts: r
                    .opt("retries.max_attempts", &re.max_attempts, parse_positive)?
                    .unwrap_or(d.retries.max_attempts),
            },
            cache: CacheConfig {
                enabled: r
                    .opt("cache.enabled", &ca.enabled, parse_bool)?
                    .unwrap_or(d.cache.enabled),
                ttl: r
                    .opt("cache.ttl", &ca.ttl, parse_nonzero_duration)?
                    .unwrap_or(d.cache.ttl),
                max_entries: r
                    .opt("cache.max_entries", &ca.max_entries, parse_positive)?
                    .unwrap_or(d.cache.max_entries),
                max_body: r
                    .opt("cache.max_body", &ca.max_body, parse_size)?
                    .unwrap_or(d.cache.max_body),
            },
            compression: CompressionConfig {
                gzip: r
                    .opt("compression.gzip", &co.gzip, parse_bool)?
                    .unwrap_or(d.compression.gzip),
                min_size: r
                    .opt("compression.min_size", &co.min_size, parse_size)?
                    .unwrap_or(d.compression.min_size),
                max_size: r
                    .opt("compression.max_size", &co.max_size, parse_size)?
                    .unwrap_or(d.compression.max_size),
            },
            limits: LimitsConfig {
                max_body: r
                    .opt("limits.max_body", &li.max_body, parse_size)?
                    .unwrap_or(d.limits.max_body),
                max_header: r
                    .opt("limits.max_header", &li.max_header, |s| {
                        parse_size(s).and_then(|n| {
                            if n < 8192 {
                                Err("must be at least 8KiB".to_owned())
                            } else {
                                Ok(n)
                            }
                        })
                    })?
                    .unwrap_or(d.limits.max_header),
            },
            auth: auth(r, f.auth)?,
            fallback: FallbackConfig {
                status: r
                    .opt("fallback.status", &fa.status, parse_error_status)?
                    .unwrap_or(d.fallback.status),
                message: r
                    .opt("fallback.message", &fa.message, |s| {
                        Ok::<_, String>(s.to_owned())
                    })?
                    .unwrap_or(d.fallback.message),
            },
            warmup: WarmupConfig {
                connections: r
                    .opt("warmup.connections", &wa.connections, |s| {
                        parse_count::<usize>(s).and_then(|n| {
                            if n > 1024 {
                                Err("must be at most 1024".to_owned())
                            } else {
                                Ok(n)
                            }
                        })
                    })?
                    .unwrap_or(d.warmup.connections),
                request: r
                    .opt("warmup.request", &wa.request, parse_bool)?
                    .unwrap_or(d.warmup.request),
            },
        })
    }
}

/// Keys are read from the file (`api_keys`) and from environment variables named there, so
/// a deployment can keep them out of the file altogether.
fn auth(r: &LeafReader<'_>, a: &FileAuth) -> Result<AuthConfig, ConfigError> {
    let mut client_keys = Vec::new();
    for (i, key) in a.api_keys.iter().enumerate() {
        client_keys.push(r.read(&format!("auth.api_keys[{i}]"), key, parse_key)?);
    }
    if let Some(keys) = r.opt("auth.api_keys_env", &a.api_keys_env, read_env)? {
        client_keys.extend(
            keys.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(Secret::new),
        );
    }
    let upstream_key = r
        .opt("auth.upstream_key_env", &a.upstream_key_env, read_env)?
        .map(|k| Secret::new(k.trim()));
    Ok(AuthConfig {
        client_keys,
        upstream_key,
    })
}

fn read_env(name: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(format!("environment variable {name} is empty")),
        Err(_) => Err(format!("environment variable {name} is not set")),
    }
}

fn parse_key(raw: &str) -> Result<Secret, &'static str> {
    if raw.is_empty() {
        return Err("a key must not be empty");
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a key may only contain visible ASCII characters");
    }
    Ok(Secret::new(raw))
}

pub fn parse_header_name(raw: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(raw.to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("{raw:?} is not a valid header name"))
}

fn parse_positive<T: std::str::FromStr + PartialOrd + Default>(raw: &str) -> Result<T, String> {
    match raw.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(format!("{raw:?} is not a whole number >= 1")),
    }
}

pub fn parse_balance_factor(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(f) if f.is_finite() && (1.0..=100.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "{raw:?} is not a balance factor: a number from 1.0 to 100 (e.g. 1.25)"
        )),
    }
}

/// `20%` or `0.2`.
fn parse_share(raw: &str) -> Result<f64, String> {
    let value = match raw.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
        None => raw.parse::<f64>(),
    };
    match value {
        Ok(v) if v.is_finite() && (0.0..=10.0).contains(&v) => Ok(v),
        _ => Err(format!("{raw:?} is not a share such as 20% or 0.2")),
    }
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{raw:?} is not true or false")),
    }
}

pub fn parse_error_status(raw: &str) -> Result<StatusCode, String> {
    match raw
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(s) if s.is_client_error() || s.is_server_error() => Ok(s),
        _ => Err(format!("{raw:?} is not an error status (400..599)")),
    }
}

/// Bytes: `65536`, `64KiB`, `4MiB` (also `KB`/`MB`, read as powers of 1024 too).
pub fn parse_size(raw: &str) -> Result<usize, String> {
    let digits_end = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(digits_end);
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "{raw:?} is not a size such as 65536, 64KiB or 4MiB"
            ));
        }
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{raw:?} is not a size such as 65536, 64KiB or 4MiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_shares_and_statuses() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(parse_share("20%"), Ok(0.2));
        assert_eq!(parse_share("0.5"), Ok(0.5));
        assert!(parse_share("-1").is_err());
        assert_eq!(parse_error_status("429"), Ok(StatusCode::TOO_MANY_REQUESTS));
        assert!(parse_error_status("200").is_err());
        assert!(parse_balance_factor("0.9").is_err());
        assert!(parse_balance_factor("NaN").is_err());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s = Secret::new("sk-very-secret");
        assert!(!format!("{s:?}").contains("secret"));
    }
}

//! The scenario file as written: serde types mirroring the YAML, with defaults and locations.
//!
//! Everything here is shape; cross-field rules live in `validate`, which turns a [`Scenario`]
//! into a [`super::Plan`]. Fields whose later checks need a line number are `Spanned`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::distribution::{DurationDist, NumberDist};
use super::human::{HumanDuration, ScalarText};
use crate::mock::MockProfile;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    /// What to start locally; omit to test a system you run yourself (then `target` is required).
    pub stack: Option<StackSpec>,
    /// Where the load goes; defaults to the forwarder the stack starts.
    pub target: Option<Spanned<String>>,
    #[serde(default)]
    pub request: RequestSpec,
    /// How to trust an `https://` target.
    #[serde(default)]
    pub tls: TlsSpec,
    pub load: LoadSpec,
    /// Running `loadgen chaos-proxy` instances, by name, at their control API's URL
    /// (loopback only): faults may target them by name.
    #[serde(default)]
    pub chaos_proxies: BTreeMap<String, Spanned<String>>,
    /// Scheduled fault injections on the stack's processes and backends, or on chaos proxies.
    #[serde(default)]
    pub faults: Vec<crate::chaos::spec::FaultSpec>,
    /// Metric name (as in summary.csv) to bound.
    #[serde(default)]
    pub budgets: BTreeMap<String, Spanned<ScalarText>>,
    #[serde(default)]
    pub report: ReportSpec,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSpec {
    /// A PEM file of extra CA certificates to trust (relative to the scenario file).
    pub ca: Option<PathBuf>,
    /// Accept any server certificate (self-signed test servers). Never for production targets.
    pub insecure: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackSpec {
    #[serde(default)]
    pub backends: BackendsSpec,
    /// Backends started beside the healthy ones with a profile of their own: a slow or failing
    /// instance behind the same forwarder.
    #[serde(default)]
    pub degraded: Vec<BackendsSpec>,
    #[serde(default)]
    pub forwarder: ForwarderSpec,
    /// How long each child may take to answer its readiness check.
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout: HumanDuration,
}

fn default_startup_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(15))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendsSpec {
    /// Number of mock LLM backends (`loadgen mock` processes) to start.
    pub count: Spanned<u32>,
    pub profile: MockProfile,
}

impl Default for BackendsSpec {
    fn default() -> Self {
        BackendsSpec {
            count: unspanned(2),
            profile: MockProfile::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwarderSpec {
    /// Start the forwarder in front of the backends (otherwise load goes to the single backend).
    pub enabled: bool,
    /// The forwarder binary; by default the one next to `loadgen`, then `forwarder` on PATH.
    pub binary: Option<PathBuf>,
    /// A forwarder config file; `--listen` and the started backends override its values.
    pub config: Option<Spanned<PathBuf>>,
    /// Concurrent upstream requests the forwarder admits (`--max-inflight`).
    pub max_inflight: Option<u32>,
    /// Requests allowed to wait for an upstream slot (`--max-queue`).
    pub max_queue: Option<u32>,
    /// Extra command-line arguments, passed as they are.
    pub args: Vec<String>,
}

impl Default for ForwarderSpec {
    fn default() -> Self {
        ForwarderSpec {
            enabled: true,
            binary: None,
            config: None,
            max_inflight: None,
            max_queue: None,
            args: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestSpec {
    /// Path on the target, e.g. `/v1/chat/completions`.
    pub path: Spanned<String>,
    pub model: String,
    /// Ask for an SSE stream (`"stream": true`) and measure TTFT and inter-token latency.
    pub stream: bool,
    pub max_tokens: Option<u32>,
    /// User messages, picked at random per request.
    pub prompts: Vec<String>,
    /// A JSONL file of prompts (each line a JSON string or an object with a `prompt` field),
    /// relative to the scenario file; added to `prompts`.
    pub prompts_file: Option<Spanned<PathBuf>>,
    /// A JSON body template with `{{user_id}}`, `{{prompt}}`, `{{model}}`, `{{max_tokens}}`,
    /// `{{stream}}`, `{{request_id}}`; by default an OpenAI chat request.
    pub body: Option<serde_json::Value>,
    /// Draw each request's user id from this distribution (e.g. `zipf(10000, 1.1)`) instead of
    /// using the virtual user's number (closed) or the arrival's (open).
    pub user_ids: Option<NumberDist>,
    /// Per-request objectives: a successful request within all of them counts towards goodput.
    pub slo: SloSpec,
    /// Header carrying the virtual user's id (`user-<n>`), so gateways can route by user.
    pub user_id_header: String,
    pub headers: BTreeMap<String, String>,
    /// A request with no complete answer after this is failed as `timeout`.
    pub timeout: HumanDuration,
}

impl Default for RequestSpec {
    fn default() -> Self {
        RequestSpec {
            path: unspanned("/v1/chat/completions".to_owned()),
            model: "mock-llm".to_owned(),
            stream: true,
            max_tokens: None,
            prompts: Vec::new(),
            prompts_file: None,
            body: None,
            user_ids: None,
            slo: SloSpec::default(),
            user_id_header: "x-user-id".to_owned(),
            headers: BTreeMap::new(),
            timeout: HumanDuration(Duration::from_secs(60)),
        }
    }
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SloSpec {
    /// Time to first token at most.
    pub ttft: Option<HumanDuration>,
    /// Time per output token after the first at most.
    pub tpot: Option<HumanDuration>,
    /// Whole answer at most.
    pub latency: Option<HumanDuration>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LoadModel {
    /// Virtual users, each sending a request, waiting for the whole answer, thinking, again.
    #[default]
    Closed,
    /// Requests arrive at a set rate whatever the answers do (k6's arrival-rate executors).
    Open,
}

/// How the open model spaces its arrivals.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Exponential gaps: independent arrivals, as real traffic has.
    #[default]
    Poisson,
    /// Evenly spaced arrivals.
    Constant,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    #[serde(default)]
    pub model: LoadModel,
    /// Closed model: users at the start of the first stage.
    #[serde(default)]
    pub start_users: u32,
    /// Open model: arrival rate at the start of the first stage (`50`, `50/s`, `3000/m`).
    pub start_rate: Option<Spanned<ScalarText>>,
    /// Each stage ramps linearly from the previous level to its `users` (closed) or `rate`
    /// (open), or jumps there at once with `shape: step`.
    pub stages: Spanned<Vec<StageSpec>>,
    /// Closed model: pause between a user's answer and its next request.
    pub think_time: Option<Spanned<DurationDist>>,
    /// Closed model: a joining user first waits a random part of one think time, so users that
    /// join together (a fast ramp, a squeezed run) do not send in one synchronised wave.
    #[serde(default)]
    pub stagger: bool,
    /// Open model: how arrivals are spaced.
    #[serde(default)]
    pub arrivals: Arrivals,
    /// Open model: requests in flight at most; a scheduled request beyond it is `dropped`.
    pub max_inflight: Option<Spanned<u32>>,
    #[serde(default = "default_connections")]
    pub connections: Spanned<ConnectionSpec>,
    /// At the end, how long in-flight requests may finish before they are counted `interrupted`.
    #[serde(default = "default_graceful_stop")]
    pub graceful_stop: HumanDuration,
}

fn default_connections() -> Spanned<ConnectionSpec> {
    unspanned(ConnectionSpec::default())
}

fn default_graceful_stop() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// How a stage moves from the previous level to its own.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StageShape {
    #[default]
    Linear,
    /// Jump to the stage's level at its start and hold it (spikes).
    Step,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub duration: Spanned<HumanDuration>,
    /// Closed model: virtual users at the end of the stage.
    pub users: Option<u32>,
    /// Open model: arrivals per second at the end of the stage (`100`, `100/s`, `6000/m`).
    pub rate: Option<Spanned<ScalarText>>,
    #[serde(default)]
    pub shape: StageShape,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 keep-alive.
    #[default]
    Http1,
    /// h2c, all users multiplexed over a shared pool of `count` connections.
    Http2,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionSpec {
    pub protocol: Protocol,
    /// Shared connections. HTTP/2: streams are multiplexed over them (default 64). HTTP/1.1:
    /// a pool each request borrows from (waiting when all are busy); without it, closed-model
    /// users each own a connection and the open model uses 64.
    pub count: Option<u32>,
}

impl Default for ConnectionSpec {
    fn default() -> Self {
        ConnectionSpec {
            protocol: Protocol::Http1,
            count: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSpec {
    /// Where run folders are created (`<dir>/<name>-<UTC time>/`); `--out` overrides.
    pub dir: PathBuf,
    /// How often plain progress lines are printed when stdout is not a terminal.
    pub progress_interval: HumanDuration,
}

impl Default for ReportSpec {
    fn default() -> Self {
        ReportSpec {
            dir: PathBuf::from("reports"),
            progress_interval: HumanDuration(Duration::from_secs(5)),
        }
    }
}

fn unspanned<T>(value: T) -> Spanned<T> {
    let here = serde_saphyr::Location::UNKNOWN;
    Spanned::new(value, here, here)
}

//! Ad-hoc runs without a scenario file (`loadgen run --target URL --users N --duration D`), like
//! oha or wrk: the flags are turned into scenario text and go through the same parser and
//! checks, so an ad-hoc run behaves, reports and fails exactly like a scenario would.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::scenario::{self, Plan, human::format_duration};

/// Flags of an ad-hoc run.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdHocArgs {
    /// Load this URL instead of running a scenario file (with --users or --rate, and --duration).
    #[arg(long)]
    pub target: Option<String>,
    /// Closed model: this many virtual users, each sending again as soon as answered.
    #[arg(long, requires = "target", conflicts_with = "rate")]
    pub users: Option<u32>,
    /// Open model: arrivals per second (`500`, `500/s`, `30000/m`).
    #[arg(long, requires = "target")]
    pub rate: Option<String>,
    /// Open model: `poisson` (default) or `constant` spacing of arrivals.
    #[arg(long, requires = "rate")]
    pub arrivals: Option<String>,
    /// Open model: requests in flight at most; more are dropped.
    #[arg(long, requires = "rate")]
    pub max_inflight: Option<u32>,
    /// Closed model: pause between an answer and the next request (e.g. 100ms).
    #[arg(long, requires = "users")]
    pub think: Option<String>,
    /// Shared connections (for --rate, or to pool --users); default one per user / 64.
    #[arg(long, requires = "target")]
    pub connections: Option<u32>,
    /// Multiplex requests over h2c connections.
    #[arg(long, requires = "target")]
    pub http2: bool,
    /// Ask for SSE streams and measure TTFT and inter-token latency.
    #[arg(long, requires = "target")]
    pub stream: bool,
    /// The request's "model" field.
    #[arg(long, requires = "target")]
    pub model: Option<String>,
    #[arg(long, requires = "target")]
    pub max_tokens: Option<u32>,
    /// https: trust the CA certificates in this PEM file too.
    #[arg(long, requires = "target")]
    pub ca: Option<std::path::PathBuf>,
    /// https: accept any server certificate (self-signed test servers).
    #[arg(long, requires = "target")]
    pub insecure: bool,
    /// A budget, as in a scenario: `--budget latency_p99=300ms` (repeatable).
    #[arg(long, requires = "target")]
    pub budget: Vec<String>,
}

/// Builds the plan of an ad-hoc run.
pub fn plan(args: &AdHocArgs, duration: Option<Duration>) -> Result<Plan, String> {
    let target = args.target.as_deref().unwrap_or_default();
    let duration = duration.ok_or("an ad-hoc run needs --duration (e.g. --duration 30s)")?;
    let uri: http::Uri = target
        .parse()
        .map_err(|e| format!("--target {target:?}: {e}"))?;
    // A bare server URL gets the chat completions path; a URL with a path is loaded as given.
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("/") | Some("") => "/v1/chat/completions".to_owned(),
        Some(path) => path.to_owned(),
    };
    let base = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let mut yaml = String::new();
    let _ = writeln!(yaml, "name: adhoc\ntarget: {}", quoted(&base));
    let _ = writeln!(
        yaml,
        "request:\n  path: {}\n  stream: {}",
        quoted(&path),
        args.stream
    );
    if let Some(model) = &args.model {
        let _ = writeln!(yaml, "  model: {}", quoted(model));
    }
    if let Some(n) = args.max_tokens {
        let _ = writeln!(yaml, "  max_tokens: {n}");
    }
    if args.insecure || args.ca.is_some() {
        let _ = writeln!(yaml, "tls:\n  insecure: {}", args.insecure);
        if let Some(ca) = &args.ca {
            let _ = writeln!(yaml, "  ca: {}", quoted(&ca.display().to_string()));
        }
    }
    let length = format_duration(duration);
    match (&args.users, &args.rate) {
        (Some(users), None) => {
            let think = args.think.as_deref().unwrap_or("0");
            let _ = writeln!(
                yaml,
                "load:\n  model: closed\n  start_users: {users}\n  stages:\n    - {{ duration: {length}, users: {users} }}\n  think_time: {}",
                quoted(think)
            );
        }
        (None, Some(rate)) => {
            let _ = writeln!(
                yaml,
                "load:\n  model: open\n  start_rate: {r}\n  stages:\n    - {{ duration: {length}, rate: {r} }}\n  arrivals: {}",
                args.arrivals.as_deref().unwrap_or("poisson"),
                r = quoted(rate)
            );
            if let Some(max) = args.max_inflight {
                let _ = writeln!(yaml, "  max_inflight: {max}");
            }
        }
        _ => return Err("an ad-hoc run needs --users N or --rate R".into()),
    }
    let protocol = if args.http2 { "http2" } else { "http1" };
    match args.connections {
        Some(n) => {
            let _ = writeln!(
                yaml,
                "  connections: {{ protocol: {protocol}, count: {n} }}"
            );
        }
        None => {
            let _ = writeln!(yaml, "  connections: {{ protocol: {protocol} }}");
        }
    }
    if !args.budget.is_empty() {
        yaml.push_str("budgets:\n");
        for budget in &args.budget {
            let (metric, value) = budget.split_once('=').ok_or_else(|| {
                format!("--budget {budget:?}: write it as metric=value, e.g. latency_p99=300ms")
            })?;
            let _ = writeln!(yaml, "  {}: {}", metric.trim(), quoted(value.trim()));
        }
    }
    scenario::parse(Path::new("<command line>"), &yaml).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(target: &str) -> AdHocArgs {
        AdHocArgs {
            target: Some(target.into()),
            ..AdHocArgs::default()
        }
    }

    #[test]
    fn users_make_a_closed_run_and_rates_an_open_one() {
        let closed = plan(
            &AdHocArgs {
                users: Some(64),
                ..args("http://127.0.0.1:8080")
            },
            Some(Duration::from_secs(10)),
        )
        .unwrap();
        assert_eq!(closed.load.peak_users(), 64);
        assert_eq!(
            closed.load.users_at(Duration::ZERO),
            64,
            "all users from the start"
        );
        assert_eq!(closed.request.path.value, "/v1/chat/completions");

        let open = plan(
            &AdHocArgs {
                rate: Some("500/s".into()),
                budget: vec!["latency_p99=20ms".into()],
                ..args("http://127.0.0.1:8080/ping")
            },
            Some(Duration::from_secs(10)),
        )
        .unwrap();
        assert!(open.load.is_open());
        assert_eq!(open.load.level_at(Duration::ZERO), 500.0);
        assert_eq!(open.request.path.value, "/ping");
        assert_eq!(open.budgets.len(), 1);
    }

    #[test]
    fn missing_or_bad_flags_are_explained() {
        assert!(
            plan(&args("http://127.0.0.1:1"), Some(Duration::from_secs(1)))
                .unwrap_err()
                .contains("--users")
        );
        assert!(
            plan(
                &AdHocArgs {
                    users: Some(1),
                    ..args("http://127.0.0.1:1")
                },
                None
            )
            .unwrap_err()
            .contains("--duration")
        );
        let bad = AdHocArgs {
            users: Some(1),
            budget: vec!["latency_p99".into()],
            ..args("http://127.0.0.1:1")
        };
        assert!(
            plan(&bad, Some(Duration::from_secs(1)))
                .unwrap_err()
                .contains("metric=value")
        );
        let unknown = AdHocArgs {
            users: Some(1),
            budget: vec!["nonsense=1".into()],
            ..args("http://127.0.0.1:1")
        };
        assert!(
            plan(&unknown, Some(Duration::from_secs(1)))
                .unwrap_err()
                .contains("unknown metric")
        );
    }
}

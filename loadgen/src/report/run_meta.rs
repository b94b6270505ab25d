//! `run.json`: what was run, where, with which builds, when, and how it ended — the resolved
//! scenario, loadgen and forwarder versions, git revision, host, start and end times, and the
//! budget verdict — so a report folder explains itself months later.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::budget::{Bound, Verdict};
use super::format::REPORT_FORMAT;
use crate::scenario::{Model, Plan};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunMeta {
    pub format_version: u32,
    /// The resolved plan (after `--duration` squeezed it): name, stages, budgets, request...
    pub scenario: Value,
    pub loadgen_version: String,
    pub forwarder_version: Option<String>,
    pub git_revision: Option<String>,
    pub host: Host,
    pub started_at: String,
    pub ended_at: String,
    pub duration_s: f64,
    /// The user stopped the run (q, Ctrl-C, SIGTERM) before its stages ended.
    #[serde(default)]
    pub stopped_early: bool,
    pub verdict: RunVerdict,
    #[serde(default)]
    pub budgets: Vec<BudgetResult>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Host {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub cpus: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunVerdict {
    /// `pass` or `fail`.
    pub result: String,
    /// What `loadgen run` exits with for this verdict.
    pub exit_code: i32,
    pub budgets_met: usize,
    pub budgets_missed: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BudgetResult {
    pub metric: String,
    /// `at_most` or `at_least`.
    pub bound: String,
    pub limit: f64,
    pub unit: String,
    pub measured: Option<f64>,
    pub passed: bool,
}

/// What the reporter knows at the end of a run.
pub struct RunFacts<'a> {
    pub plan: &'a Plan,
    pub started: SystemTime,
    pub ended: SystemTime,
    pub load_time: Duration,
    pub stopped_early: bool,
    pub verdicts: &'a [Verdict],
    /// Whether the stack started a forwarder (then its version is asked for).
    pub with_forwarder: bool,
}

impl RunMeta {
    /// Gathers the metadata; the forwarder and git are asked with a short timeout each.
    pub async fn gather(facts: &RunFacts<'_>) -> RunMeta {
        let forwarder_version = match facts.with_forwarder {
            true => match forwarder_binary(facts.plan) {
                Some(binary) => command_line(&binary, &["--version"]).await,
                None => None,
            },
            false => None,
        };
        let git_revision = match std::env::var("GITHUB_SHA") {
            Ok(sha) if !sha.is_empty() => Some(sha),
            _ => command_line(Path::new("git"), &["rev-parse", "HEAD"]).await,
        };
        let missed = facts.verdicts.iter().filter(|v| !v.passed).count();
        RunMeta {
            format_version: REPORT_FORMAT,
            scenario: describe_plan(facts.plan),
            loadgen_version: env!("CARGO_PKG_VERSION").to_owned(),
            forwarder_version,
            git_revision,
            host: Host::here(),
            started_at: rfc3339(facts.started),
            ended_at: rfc3339(facts.ended),
            duration_s: facts.load_time.as_secs_f64(),
            stopped_early: facts.stopped_early,
            verdict: RunVerdict {
                result: if missed == 0 { "pass" } else { "fail" }.to_owned(),
                exit_code: if missed == 0 {
                    crate::exit::OK
                } else {
                    crate::exit::BUDGET_FAILED
                },
                budgets_met: facts.verdicts.len() - missed,
                budgets_missed: missed,
            },
            budgets: facts.verdicts.iter().map(BudgetResult::from).collect(),
        }
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    pub fn scenario_name(&self) -> &str {
        self.scenario["name"].as_str().unwrap_or("")
    }
}

impl From<&Verdict> for BudgetResult {
    fn from(v: &Verdict) -> Self {
        BudgetResult {
            metric: v.budget.metric.clone(),
            bound: match v.budget.bound {
                Bound::AtMost => "at_most",
                Bound::AtLeast => "at_least",
            }
            .to_owned(),
            limit: v.budget.limit,
            unit: v.budget.unit.label().to_owned(),
            measured: v.measured,
            passed: v.passed,
        }
    }
}

impl Host {
    fn here() -> Host {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Host {
            hostname,
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        }
    }
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The plan as JSON: everything that shaped the load, after `--duration` squeezed it.
fn describe_plan(plan: &Plan) -> Value {
    let load = &plan.load;
    let model = match &load.model {
        Model::Closed {
            think_time,
            stagger,
        } => {
            json!({ "kind": "closed", "think_time_s": think_time.0.to_string(), "stagger": stagger })
        }
        Model::Open {
            arrivals,
            max_inflight,
        } => json!({ "kind": "open", "arrivals": format!("{arrivals:?}").to_lowercase(),
                     "max_inflight": max_inflight }),
    };
    let stages: Vec<Value> = load
        .stages
        .iter()
        .map(|s| json!({ "duration_s": s.duration.as_secs_f64(), "target": s.target, "step": s.step }))
        .collect();
    let budgets: Vec<Value> = plan
        .budgets
        .iter()
        .map(|b| {
            json!({ "metric": b.metric, "bound": match b.bound { Bound::AtMost => "at_most",
                    Bound::AtLeast => "at_least" }, "limit": b.limit, "unit": b.unit.label() })
        })
        .collect();
    let r = &plan.request;
    let stack = plan.stack.as_ref().map(|s| {
        json!({
            "backends": s.backends.count.value,
            "degraded": s.degraded.iter().map(|d| d.count.value).sum::<u32>(),
            "forwarder": {
                "enabled": s.forwarder.enabled,
                "max_inflight": s.forwarder.max_inflight,
                "max_queue": s.forwarder.max_queue,
                "args": s.forwarder.args,
            },
        })
    });
    json!({
        "name": plan.name,
        "description": plan.description,
        "target": plan.target.as_ref().map(ToString::to_string),
        "stack": stack,
        "request": {
            "path": r.path.value,
            "model": r.model,
            "stream": r.stream,
            "max_tokens": r.max_tokens,
            "timeout_s": r.timeout.0.as_secs_f64(),
        },
        "load": {
            "model": model,
            "start": load.start,
            "stages": stages,
            "total_duration_s": load.total_duration().as_secs_f64(),
            "protocol": format!("{:?}", load.protocol).to_lowercase(),
            "connections": load.connections,
            "graceful_stop_s": load.graceful_stop.as_secs_f64(),
        },
        "budgets": budgets,
    })
}

/// The forwarder binary the stack starts: the same lookup (configured, beside loadgen, PATH).
fn forwarder_binary(plan: &Plan) -> Option<PathBuf> {
    let spec = plan.stack.as_ref()?;
    if let Some(path) = &spec.forwarder.binary {
        return Some(path.clone());
    }
    let sibling = std::env::current_exe()
        .ok()?
        .parent()
        .map(|d| d.join("forwarder"))?;
    if sibling.is_file() {
        return Some(sibling);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("forwarder"))
        .find(|p| p.is_file())
}

/// The first line a command prints, if it runs and succeeds within two seconds.
async fn command_line(program: &Path, args: &[&str]) -> Option<String> {
    let output = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

//! Cross-field rules that serde cannot express, applied to a parsed scenario to make a [`Plan`].

use std::path::Path;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::distribution::DurationDist;
use super::schema::{LoadModel, Protocol, Scenario, StageShape};
use super::{LoadPlan, Model, Plan, ScenarioError, Stage};
use crate::chaos::Target;
use crate::engine::request::RequestTemplate;
use crate::report::budget::Budget;

/// Open files loadgen keeps for itself (children's pipes, logs, reports, the scrape client).
pub const FILE_RESERVE: u64 = 200;

/// Most users one scenario may ask for; far beyond what one machine can drive.
const MAX_USERS: u32 = 1_000_000;
/// Highest arrival rate accepted, per second.
const MAX_RATE: f64 = 10_000_000.0;
/// Open model: requests in flight at most, unless the scenario says.
const DEFAULT_MAX_INFLIGHT: u32 = 10_000;
/// Shared connections (h2, or the open model's HTTP/1.1 pool) unless the scenario says.
const DEFAULT_SHARED_CONNECTIONS: u32 = 64;

/// Checks a parsed scenario; relative paths in it are resolved against the file's folder.
pub fn validate(path: &Path, scenario: Scenario) -> Result<Plan, ScenarioError> {
    let err = |at: Option<Location>, field: &str, message: String| ScenarioError {
        file: path.to_owned(),
        position: at
            .filter(|l| *l != Location::UNKNOWN)
            .map(|l| (l.line(), l.column())),
        field: Some(field.to_owned()),
        message,
    };
    let at = |s: &dyn HasLocation| Some(s.location());

    let name = scenario.name.value.trim().to_owned();
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err(err(
            at(&scenario.name),
            "name",
            "must be a non-empty name without slashes (it names the report folder)".into(),
        ));
    }

    let load = &scenario.load;
    let open = load.model == LoadModel::Open;
    if load.stages.value.is_empty() {
        return Err(err(
            at(&load.stages),
            "load.stages",
            "needs at least one stage".into(),
        ));
    }
    let mut stages = Vec::with_capacity(load.stages.value.len());
    for (i, stage) in load.stages.value.iter().enumerate() {
        let field = |name: &str| format!("load.stages[{i}].{name}");
        if stage.duration.value.0.is_zero() {
            return Err(err(
                at(&stage.duration),
                &field("duration"),
                "must be longer than zero".into(),
            ));
        }
        let target = match (open, stage.users, &stage.rate) {
            (false, Some(users), None) => {
                if users > MAX_USERS {
                    return Err(err(
                        at(&stage.duration),
                        &field("users"),
                        format!("{users} users is more than the {MAX_USERS} one run can drive"),
                    ));
                }
                f64::from(users)
            }
            (true, None, Some(rate)) => {
                parse_rate(&rate.value.0).map_err(|m| err(at(rate), &field("rate"), m))?
            }
            (false, _, _) => {
                return Err(err(
                    at(&stage.duration),
                    &field("users"),
                    "each closed-model stage gives `users` (for arrivals per second use `model: open` and `rate`)".into(),
                ));
            }
            (true, _, _) => {
                return Err(err(
                    at(&stage.duration),
                    &field("rate"),
                    "each open-model stage gives `rate` (arrivals per second), not `users`".into(),
                ));
            }
        };
        stages.push(Stage {
            duration: stage.duration.value.0,
            target,
            step: stage.shape == StageShape::Step,
        });
    }

    let model = if open {
        if let Some(think) = &load.think_time {
            return Err(err(
                at(think),
                "load.think_time",
                "applies to the closed model; the open model's pace is its `rate`".into(),
            ));
        }
        let max_inflight = load
            .max_inflight
            .as_ref()
            .map_or(Ok(DEFAULT_MAX_INFLIGHT), |m| {
                if m.value == 0 {
                    Err(err(at(m), "load.max_inflight", "must be at least 1".into()))
                } else {
                    Ok(m.value)
                }
            })?;
        Model::Open {
            arrivals: load.arrivals,
            max_inflight,
        }
    } else {
        if let Some(m) = &load.max_inflight {
            return Err(err(
                at(m),
                "load.max_inflight",
                "applies to the open model; closed-model users each have one request in flight"
                    .into(),
            ));
        }
        let think_time = load.think_time.as_ref().map_or_else(
            || DurationDist::constant(Duration::from_secs(1)),
            |t| t.value.clone(),
        );
        Model::Closed {
            think_time,
            stagger: load.stagger,
        }
    };
    let start = match (&load.start_rate, open) {
        (Some(rate), true) => {
            parse_rate(&rate.value.0).map_err(|m| err(at(rate), "load.start_rate", m))?
        }
        (Some(rate), false) => {
            return Err(err(
                at(rate),
                "load.start_rate",
                "applies to the open model; use start_users".into(),
            ));
        }
        (None, _) => f64::from(load.start_users),
    };

    let connections = load.connections.value;
    let count = match (connections.protocol, connections.count) {
        (_, Some(0)) => {
            return Err(err(
                at(&load.connections),
                "load.connections.count",
                "must be at least 1".into(),
            ));
        }
        (_, Some(n)) => n,
        (Protocol::Http1, None) if !open => 0,
        (_, None) => DEFAULT_SHARED_CONNECTIONS,
    };
    let plan_load = LoadPlan {
        model,
        start,
        stages,
        protocol: connections.protocol,
        connections: count,
        graceful_stop: load.graceful_stop.0,
    };
    let needed = plan_load.connections_needed();
    let limit = crate::run::limits::open_files_limit();
    if needed + FILE_RESERVE > limit {
        // Point at the connections line if written, else at the stages that ask for the users.
        let written = Some(load.connections.referenced).filter(|l| *l != Location::UNKNOWN);
        return Err(err(
            written.or(at(&load.stages)),
            "load.connections",
            format!(
                "{needed} connections are needed, but this process may open only {limit} files \
                 ({FILE_RESERVE} kept for loadgen itself); multiplex the users with \
                 `connections: {{ protocol: http2, count: 64 }}` or share an HTTP/1.1 pool \
                 with `connections: {{ protocol: http1, count: 1000 }}`"
            ),
        ));
    }

    let target = match &scenario.target {
        Some(t) => {
            let uri: http::Uri = t
                .value
                .parse()
                .map_err(|e| err(at(t), "target", format!("{:?} is not a URL: {e}", t.value)))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(err(
                    at(t),
                    "target",
                    format!(
                        "{:?}: give an http:// or https:// URL with a host, e.g. http://127.0.0.1:8080",
                        t.value
                    ),
                ));
            }
            Some(uri)
        }
        None => None,
    };
    if target.is_none() && scenario.stack.is_none() {
        return Err(err(
            at(&scenario.name),
            "target",
            "nothing to test: give a `stack` to start locally or a `target` URL".into(),
        ));
    }
    let mut stack = scenario.stack;
    if let Some(stack) = &mut stack {
        let count = &stack.backends.count;
        if !(1..=64).contains(&count.value) {
            return Err(err(
                at(count),
                "stack.backends.count",
                "must be between 1 and 64".into(),
            ));
        }
        let mut started = count.value;
        for (i, group) in stack.degraded.iter().enumerate() {
            started += group.count.value;
            if group.count.value == 0 || started > 64 {
                return Err(err(
                    at(&group.count),
                    &format!("stack.degraded[{i}].count"),
                    "must be at least 1, and all backends together at most 64".into(),
                ));
            }
        }
        if !stack.forwarder.enabled && started != 1 && target.is_none() {
            return Err(err(
                at(count),
                "stack.forwarder.enabled",
                "without the forwarder the load goes to one backend: set backends.count to 1"
                    .into(),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [
            stack.forwarder.binary.as_mut(),
            stack.forwarder.config.as_mut().map(|c| &mut c.value),
        ]
        .into_iter()
        .flatten()
        {
            if file.is_relative() && file.components().count() > 1 {
                *file = base.join(&*file);
            }
        }
        // Found missing now, not when the forwarder it was meant for fails to start mid-setup.
        if let Some(config) = &stack.forwarder.config
            && !config.value.is_file()
        {
            return Err(err(
                at(config),
                "stack.forwarder.config",
                format!("no such file: {}", config.value.display()),
            ));
        }
    }

    let mut request = scenario.request;
    if !request.path.value.starts_with('/') {
        return Err(err(
            at(&request.path),
            "request.path",
            "must start with '/'".into(),
        ));
    }
    if let Some(file) = &request.prompts_file {
        let base = path.parent().unwrap_or(Path::new("."));
        let prompts = read_prompts(&base.join(&file.value))
            .map_err(|m| err(at(file), "request.prompts_file", m))?;
        request.prompts.extend(prompts);
    }
    // Build one request now, so a template or header that cannot work is bad input, not a
    // failure in the middle of the run.
    let probe_target: http::Uri = "http://localhost/".parse().expect("static URI");
    RequestTemplate::new(&request, &probe_target, Protocol::Http1)
        .map_err(|e| err(at(&request.path), e.field, e.message))?;

    let mut proxies = Vec::with_capacity(scenario.chaos_proxies.len());
    for (name, url) in &scenario.chaos_proxies {
        let field = format!("chaos_proxies.{name}");
        let control =
            crate::chaos::spec::proxy_control(&url.value).map_err(|m| err(at(url), &field, m))?;
        let taken = ["all", "forwarder"].contains(&name.as_str())
            || stack
                .as_ref()
                .is_some_and(|s| crate::stack::backend_names(s).contains(name));
        if taken {
            return Err(err(
                at(url),
                &field,
                format!("{name:?} already names a backend or target: give the proxy another name"),
            ));
        }
        proxies.push((name.clone(), control));
    }
    let faults = match (&stack, scenario.faults.first()) {
        (_, None) => Vec::new(),
        (None, Some(first)) if proxies.is_empty() => {
            return Err(err(
                at(&first.kind),
                "faults[0]",
                "faults act on the processes the stack starts, or on running chaos proxies: \
                 add a `stack`, or name the proxies in `chaos_proxies`"
                    .into(),
            ));
        }
        (stack, Some(_)) => {
            let names = stack
                .as_ref()
                .map(crate::stack::backend_names)
                .unwrap_or_default();
            let faults = crate::chaos::spec::resolve(
                &scenario.faults,
                &names,
                &proxies,
                plan_load.total_duration(),
            )
            .map_err(|e| err(Some(e.at), &e.field, e.message))?;
            // The stack's fault proxies sit between the forwarder and the backends.
            if let Some(i) = faults
                .iter()
                .position(|f| f.is_network() && matches!(f.target, Target::Backends(_)))
                && stack.as_ref().is_some_and(|s| !s.forwarder.enabled)
            {
                return Err(err(
                    at(&scenario.faults[i].kind),
                    &format!("faults[{i}].kind"),
                    "network faults act between the forwarder and the backends: enable \
                     stack.forwarder, or target a chaos proxy"
                        .into(),
                ));
            }
            faults
        }
    };
    let forwarder_scraped = stack.as_ref().is_some_and(|s| s.forwarder.enabled);
    let mut budgets = Vec::with_capacity(scenario.budgets.len());
    for (metric, value) in &scenario.budgets {
        let field = format!("budgets.{metric}");
        let budget =
            Budget::parse(metric, &value.value.0).map_err(|m| err(at(value), &field, m))?;
        if crate::chaos::figures::METRICS.contains(&metric.as_str()) && faults.is_empty() {
            return Err(err(
                at(value),
                &field,
                "is measured around scheduled faults, so it needs a `faults:` list".into(),
            ));
        }
        if metric == "breaker_open_after" && !forwarder_scraped {
            return Err(err(
                at(value),
                &field,
                "is read from the forwarder's /metrics, so it needs a stack with the forwarder"
                    .into(),
            ));
        }
        if matches!(
            metric.as_str(),
            "queue_depth_max" | "shed" | "cache_hit_rate"
        ) && !forwarder_scraped
        {
            return Err(err(
                at(value),
                &field,
                "is read from the forwarder's /metrics, so it needs a stack with the forwarder"
                    .into(),
            ));
        }
        if (metric.starts_with("ttft_") || metric.starts_with("itl_")) && !request.stream {
            return Err(err(
                at(value),
                &field,
                "needs `request.stream: true`".into(),
            ));
        }
        budgets.push(budget);
    }

    let slo = crate::engine::slo::Slo {
        ttft: request.slo.ttft.map(|d| d.0),
        tpot: request.slo.tpot.map(|d| d.0),
        latency: request.slo.latency.map(|d| d.0),
    };
    let mut tls = scenario.tls;
    if let Some(ca) = &mut tls.ca
        && ca.is_relative()
    {
        *ca = path.parent().unwrap_or(Path::new(".")).join(&*ca);
    }
    Ok(Plan {
        name,
        tls,
        description: scenario.description,
        stack,
        target,
        slo,
        request,
        load: plan_load,
        faults,
        budgets,
        report: scenario.report,
    })
}

impl LoadPlan {
    /// Sockets the engine will hold at the peak.
    pub fn connections_needed(&self) -> u64 {
        if self.connections == 0 {
            u64::from(self.peak_users())
        } else {
            u64::from(self.connections)
        }
    }
}

/// Reads prompts from a JSONL file: each non-empty line a JSON string or `{"prompt": "..."}`.
fn read_prompts(file: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut prompts = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: not JSON: {e}", file.display(), n + 1))?;
        let prompt = match &value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => match o.get("prompt") {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => {
                    return Err(format!(
                        "{}:{}: an object needs a string \"prompt\" field",
                        file.display(),
                        n + 1
                    ));
                }
            },
            _ => {
                return Err(format!(
                    "{}:{}: write a JSON string or {{\"prompt\": ...}}",
                    file.display(),
                    n + 1
                ));
            }
        };
        prompts.push(prompt);
    }
    if prompts.is_empty() {
        return Err(format!("{} holds no prompts", file.display()));
    }
    Ok(prompts)
}

/// Reads an arrival rate: `100`, `100/s`, `6000/m`, `1/h`, as arrivals per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, per) = match t.split_once('/') {
        Some((n, unit)) => (n.trim(), unit.trim()),
        None => (t, "s"),
    };
    let seconds = match per {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "{t:?}: write a rate like 100, 100/s, 6000/m or 10/h"
            ));
        }
    };
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v / seconds <= MAX_RATE => Ok(v / seconds),
        _ => Err(format!(
            "{t:?}: write a rate like 100, 100/s, 6000/m (0 to {MAX_RATE}/s)"
        )),
    }
}

/// Anything with a source location, so one closure can point at any spanned field.
trait HasLocation {
    fn location(&self) -> Location;
}

impl<T> HasLocation for Spanned<T> {
    fn location(&self) -> Location {
        self.referenced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prompts file with `text` in a temporary folder (kept alive by the guard).
    fn prompts_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prompts.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn prompts_are_read_from_strings_and_objects_skipping_blank_lines() {
        let (_dir, path) = prompts_file(
            "\"plain string\"\n\n{\"prompt\": \"from an object\", \"tag\": 3}\n   \n\"with \\\"quotes\\\" and \\u00e9\"\n",
        );
        assert_eq!(
            read_prompts(&path).unwrap(),
            ["plain string", "from an object", "with \"quotes\" and é"]
        );
    }

    #[test]
    fn a_bad_prompt_line_is_named_by_file_and_line() {
        // Line numbers count blank lines too, so they match what an editor shows.
        let cases = [
            ("\"ok\"\n\nnot json\n", 3, "not JSON"),
            ("\"ok\"\n{\"text\": \"no prompt field\"}\n", 2, "\"prompt\""),
            ("{\"prompt\": 7}\n", 1, "\"prompt\""),
            ("\"ok\"\n[\"a list\"]\n", 2, "JSON string"),
        ];
        for (text, line, why) in cases {
            let (_dir, path) = prompts_file(text);
            let error = read_prompts(&path).unwrap_err();
            let at = format!("{}:{line}: ", path.display());
            assert!(error.starts_with(&at), "want {at:?} in {error:?}");
            assert!(error.contains(why), "want {why:?} in {error:?}");
        }
    }

    #[test]
    fn an_empty_or_missing_prompts_file_is_refused() {
        let (dir, path) = prompts_file("\n  \n");
        assert!(
            read_prompts(&path)
                .unwrap_err()
                .contains("holds no prompts")
        );
        let missing = dir.path().join("absent.jsonl");
        let error = read_prompts(&missing).unwrap_err();
        assert!(
            error.starts_with(&format!("cannot read {}", missing.display())),
            "{error}"
        );
    }

    #[test]
    fn a_scenario_with_a_bad_prompts_file_is_bad_input_pointing_at_the_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.jsonl"), "\"fine\"\n{oops}\n").unwrap();
        let scenario = dir.path().join("s.yaml");
        let text = "name: p\ntarget: http://127.0.0.1:1\nrequest:\n  prompts_file: p.jsonl\nload:\n  stages: [{ duration: 1s, users: 1 }]\n";
        let error = crate::scenario::parse(&scenario, text).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("request.prompts_file"));
        assert_eq!(error.position.map(|(line, _)| line), Some(4));
        // Resolved against the scenario's folder, and the bad line named.
        let bad_line = format!("{}:2: not JSON", dir.path().join("p.jsonl").display());
        assert!(error.message.contains(&bad_line), "{}", error.message);
    }

    #[test]
    fn a_missing_forwarder_config_is_bad_input_at_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("s.yaml");
        let text = |config: &str| {
            format!(
                "name: f\nstack:\n  forwarder:\n    config: {config}\nload:\n  stages: [{{ duration: 1s, users: 1 }}]\n"
            )
        };
        let error = crate::scenario::parse(&scenario, &text("conf/missing.yaml")).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("stack.forwarder.config"));
        assert_eq!(error.position.map(|(line, _)| line), Some(4));
        let resolved = dir.path().join("conf/missing.yaml");
        assert!(
            error.message.contains(&resolved.display().to_string()),
            "{}",
            error.message
        );

        std::fs::create_dir(dir.path().join("conf")).unwrap();
        std::fs::write(&resolved, "{}\n").unwrap();
        assert!(crate::scenario::parse(&scenario, &text("conf/missing.yaml")).is_ok());
    }
}

//! Cross-field rules that serde cannot express, applied to a parsed scenario to make a [`Plan`].

use std::path::Path;

use serde_saphyr::{Location, Spanned};

use super::schema::{Protocol, Scenario};
use super::{LoadPlan, Plan, ScenarioError, Stage};
use crate::report::budget::Budget;

/// Open files loadgen keeps for itself (children's pipes, logs, reports, the scrape client).
pub const FILE_RESERVE: u64 = 200;

/// Most users one scenario may ask for; far beyond what one machine can drive.
const MAX_USERS: u32 = 1_000_000;

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
    if load.stages.value.is_empty() {
        return Err(err(
            at(&load.stages),
            "load.stages",
            "needs at least one stage".into(),
        ));
    }
    let mut stages = Vec::with_capacity(load.stages.value.len());
    for (i, stage) in load.stages.value.iter().enumerate() {
        if stage.duration.value.0.is_zero() {
            return Err(err(
                at(&stage.duration),
                &format!("load.stages[{i}].duration"),
                "must be longer than zero".into(),
            ));
        }
        if stage.users > MAX_USERS {
            return Err(err(
                at(&stage.duration),
                &format!("load.stages[{i}].users"),
                format!(
                    "{} users is more than the {MAX_USERS} one run can drive",
                    stage.users
                ),
            ));
        }
        stages.push(Stage {
            duration: stage.duration.value.0,
            users: stage.users,
        });
    }

    let connections = load.connections.value;
    let count = match (connections.protocol, connections.count) {
        (Protocol::Http1, Some(_)) => {
            return Err(err(
                at(&load.connections),
                "load.connections.count",
                "HTTP/1.1 gives each user its own connection; `count` applies to protocol: http2"
                    .into(),
            ));
        }
        (Protocol::Http1, None) => 0,
        (Protocol::Http2, None) => 64,
        (Protocol::Http2, Some(0)) => {
            return Err(err(
                at(&load.connections),
                "load.connections.count",
                "must be at least 1".into(),
            ));
        }
        (Protocol::Http2, Some(n)) => n,
    };
    let plan_load = LoadPlan {
        start_users: load.start_users,
        stages,
        think_time: load.think_time.clone(),
        stagger: load.stagger,
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
                "{} users over HTTP/1.1 need {needed} connections, but this process may open only \
                 {limit} files ({FILE_RESERVE} kept for loadgen itself); multiplex them with \
                 `connections: {{ protocol: http2, count: 64 }}`",
                plan_load.peak_users()
            ),
        ));
    }

    let target = match &scenario.target {
        Some(t) => {
            let uri: http::Uri = t
                .value
                .parse()
                .map_err(|e| err(at(t), "target", format!("{:?} is not a URL: {e}", t.value)))?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                return Err(err(
                    at(t),
                    "target",
                    format!(
                        "{:?}: give an http:// URL with a host, e.g. http://127.0.0.1:8080",
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
        for file in [&mut stack.forwarder.binary, &mut stack.forwarder.config]
            .into_iter()
            .flatten()
        {
            if file.is_relative() && file.components().count() > 1 {
                *file = base.join(&*file);
            }
        }
    }

    let request = scenario.request;
    if !request.path.value.starts_with('/') {
        return Err(err(
            at(&request.path),
            "request.path",
            "must start with '/'".into(),
        ));
    }

    let forwarder_scraped = stack.as_ref().is_some_and(|s| s.forwarder.enabled);
    let mut budgets = Vec::with_capacity(scenario.budgets.len());
    for (metric, value) in &scenario.budgets {
        let field = format!("budgets.{metric}");
        let budget =
            Budget::parse(metric, &value.value.0).map_err(|m| err(at(value), &field, m))?;
        if matches!(metric.as_str(), "queue_depth_max" | "shed") && !forwarder_scraped {
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

    Ok(Plan {
        name,
        description: scenario.description,
        stack,
        target,
        request,
        load: plan_load,
        budgets,
        report: scenario.report,
    })
}

impl LoadPlan {
    /// Sockets the engine will hold at the peak.
    pub fn connections_needed(&self) -> u64 {
        match self.protocol {
            Protocol::Http1 => u64::from(self.peak_users()),
            Protocol::Http2 => u64::from(self.connections),
        }
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

//! The `faults:` list as written in a scenario, and its checks: each fault resolved against the
//! stack's backends and the scenario's chaos proxies into a [`Fault`], or an error naming
//! `faults[i].field` and its place.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::fault::{Fault, FaultKind, ProcessAction, Target};
use super::proxy::{Direction, Per, Toxic};
use crate::mock::chaos::HttpFault;
use crate::scenario::human::{HumanDuration, ScalarText, parse_percent};

/// One entry of `faults:`. Which parameters apply depends on `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Names the fault in the reports; default `<kind>-<target>`.
    pub name: Option<Spanned<String>>,
    /// When it starts, from the start of the load.
    pub at: Spanned<HumanDuration>,
    /// How long it lasts; omitted: until the end of the run.
    pub duration: Option<Spanned<HumanDuration>>,
    /// `backend-0` (a name), `0` (an index), `all`, `50%` (a share of the backends), `forwarder`.
    pub target: Spanned<ScalarText>,
    /// crash, stop, hang (processes); error, delay, slow_first_token, cut_stream (HTTP).
    pub kind: Spanned<String>,
    /// Process faults: start the child again when the fault ends.
    pub restart: Option<Spanned<bool>>,
    /// `error`: the status to answer with (400..599, default 500).
    pub status: Option<Spanned<u16>>,
    /// `error`: the body to answer with (default: an OpenAI-style error).
    pub body: Option<Spanned<String>>,
    /// `error`: the `Retry-After` to send (429 and 503 send 1s by default).
    pub retry_after: Option<Spanned<HumanDuration>>,
    /// `delay`, `slow_first_token`, `latency`: how much longer; `slicer`: between slices;
    /// `slow_close`: how long a close is held back.
    pub delay: Option<Spanned<HumanDuration>>,
    /// `delay`, `slow_first_token`: up to this much more or less, evenly drawn.
    pub jitter: Option<Spanned<HumanDuration>>,
    /// `cut_stream`: tokens sent before the stream is cut.
    pub after_tokens: Option<Spanned<u32>>,
    /// `bandwidth`: kilobytes a second.
    pub rate: Option<Spanned<u64>>,
    /// `slicer`: bytes per slice.
    pub size: Option<Spanned<u64>>,
    /// `limit_data`: bytes let through before the connection closes.
    pub bytes: Option<Spanned<u64>>,
    /// `reset_peer`, `timeout`: how long a connection lives first (`timeout` 0: never closes).
    pub after: Option<Spanned<HumanDuration>>,
    /// Share affected (`50%` or `0.5`): of requests for HTTP faults; for network faults of
    /// connections, or of requests with `per: request`.
    pub toxicity: Option<Spanned<ScalarText>>,
    /// Network faults: what one toxicity roll covers, `connection` (the default) or `request`
    /// (rolled again for each request on a keep-alive connection).
    pub per: Option<Spanned<String>>,
    /// Network faults (latency, bandwidth, slicer, limit_data, slow_close): `downstream`
    /// (answers, the default) or `upstream` (requests).
    pub direction: Option<Spanned<String>>,
}

/// Why a fault is not valid: where, which field (`faults[2].kind`), what is wrong.
#[derive(Debug)]
pub struct SpecError {
    pub at: Location,
    pub field: String,
    pub message: String,
}

pub const KINDS: &str = "crash, stop, hang, error, delay, slow_first_token, cut_stream, \
                         latency, bandwidth, slicer, limit_data, slow_close, reset_peer, timeout, down";

/// Kinds applied by the fault proxy between the forwarder and the backends.
pub const NETWORK_KINDS: [&str; 8] = [
    "latency",
    "bandwidth",
    "slicer",
    "limit_data",
    "slow_close",
    "reset_peer",
    "timeout",
    "down",
];

/// A running `loadgen chaos-proxy` a scenario names: what faults call it, and its control API.
pub type ChaosProxy = (String, SocketAddr);

/// Resolves every fault; `backends` are the names of the stack's backends in start order,
/// `proxies` the chaos proxies the scenario names, and `run` is how long the load lasts
/// (before any squeeze).
pub fn resolve(
    specs: &[FaultSpec],
    backends: &[String],
    proxies: &[ChaosProxy],
    run: Duration,
) -> Result<Vec<Fault>, SpecError> {
    if let Some(extra) = specs.get(crate::stats::MAX_FAULTS) {
        return Err(error(
            crate::stats::MAX_FAULTS,
            "at",
            extra.at.referenced,
            format!(
                "a scenario schedules at most {} faults",
                crate::stats::MAX_FAULTS
            ),
        ));
    }
    let mut faults: Vec<Fault> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let mut fault = resolve_one(i, spec, backends, proxies, run)?;
        if faults.iter().any(|f| f.name == fault.name) {
            if let Some(name) = &spec.name {
                return Err(error(
                    i,
                    "name",
                    name.referenced,
                    format!("{:?} names another fault already", name.value),
                ));
            }
            fault.name = format!("{}-{i}", fault.name);
        }
        faults.push(fault);
    }
    Ok(faults)
}

fn error(i: usize, field: &str, at: Location, message: String) -> SpecError {
    SpecError {
        at,
        field: format!("faults[{i}].{field}"),
        message,
    }
}

fn resolve_one(
    i: usize,
    spec: &FaultSpec,
    backends: &[String],
    proxies: &[ChaosProxy],
    run: Duration,
) -> Result<Fault, SpecError> {
    let fail = |field: &str, at: Location, message: String| Err(error(i, field, at, message));
    let kind_at = spec.kind.referenced;
    let process = match spec.kind.value.as_str() {
        "crash" => Some(ProcessAction::Crash),
        "stop" => Some(ProcessAction::Stop),
        "hang" => Some(ProcessAction::Hang),
        "error" | "delay" | "slow_first_token" | "cut_stream" => None,
        other if NETWORK_KINDS.contains(&other) => None,
        other => {
            return fail(
                "kind",
                kind_at,
                format!("unknown fault kind {other:?}; use {KINDS}"),
            );
        }
    };
    let kind = spec.kind.value.as_str();

    // Parameters of one kind given to another are mistakes worth naming.
    // Network kinds a roll can miss (every one but `down`).
    let rolled: Vec<&str> = NETWORK_KINDS
        .into_iter()
        .filter(|kind| *kind != "down")
        .collect();
    let given: [(&str, Option<Location>, &[&str]); 14] = [
        (
            "restart",
            spec.restart.as_ref().map(|s| s.referenced),
            &["crash", "stop", "hang"],
        ),
        (
            "status",
            spec.status.as_ref().map(|s| s.referenced),
            &["error"],
        ),
        ("body", spec.body.as_ref().map(|s| s.referenced), &["error"]),
        (
            "retry_after",
            spec.retry_after.as_ref().map(|s| s.referenced),
            &["error"],
        ),
        (
            "delay",
            spec.delay.as_ref().map(|s| s.referenced),
            &[
                "delay",
                "slow_first_token",
                "latency",
                "slicer",
                "slow_close",
            ],
        ),
        (
            "jitter",
            spec.jitter.as_ref().map(|s| s.referenced),
            &["delay", "slow_first_token", "latency"],
        ),
        (
            "rate",
            spec.rate.as_ref().map(|s| s.referenced),
            &["bandwidth"],
        ),
        (
            "size",
            spec.size.as_ref().map(|s| s.referenced),
            &["slicer"],
        ),
        (
            "bytes",
            spec.bytes.as_ref().map(|s| s.referenced),
            &["limit_data"],
        ),
        (
            "after",
            spec.after.as_ref().map(|s| s.referenced),
            &["reset_peer", "timeout"],
        ),
        (
            "direction",
            spec.direction.as_ref().map(|s| s.referenced),
            &["latency", "bandwidth", "slicer", "limit_data", "slow_close"],
        ),
        ("per", spec.per.as_ref().map(|s| s.referenced), &rolled),
        (
            "after_tokens",
            spec.after_tokens.as_ref().map(|s| s.referenced),
            &["cut_stream"],
        ),
        (
            "toxicity",
            spec.toxicity.as_ref().map(|s| s.referenced),
            &[
                "error",
                "delay",
                "slow_first_token",
                "cut_stream",
                "latency",
                "bandwidth",
                "slicer",
                "limit_data",
                "slow_close",
                "reset_peer",
                "timeout",
            ],
        ),
    ];
    for (field, at, kinds) in given {
        if let Some(at) = at
            && !kinds.contains(&kind)
        {
            return fail(
                field,
                at,
                format!(
                    "does not apply to a {kind} fault (only to {})",
                    kinds.join(", ")
                ),
            );
        }
    }
    let direction = match spec
        .direction
        .as_ref()
        .map(|d| (d.value.as_str(), d.referenced))
    {
        None | Some(("downstream", _)) => Direction::Downstream,
        Some(("upstream", _)) => Direction::Upstream,
        Some((other, at)) => {
            return fail(
                "direction",
                at,
                format!("{other:?}: use downstream or upstream"),
            );
        }
    };
    let per = match spec.per.as_ref().map(|p| (p.value.as_str(), p.referenced)) {
        None | Some(("connection", _)) => Per::Connection,
        Some(("request", _)) => Per::Request,
        Some((other, at)) => {
            return fail("per", at, format!("{other:?}: use connection or request"));
        }
    };

    let at = spec.at.value.0;
    if at >= run {
        return fail(
            "at",
            spec.at.referenced,
            format!(
                "starts at {} but the load lasts {}",
                spec.at.value,
                HumanDuration(run)
            ),
        );
    }
    let duration = match &spec.duration {
        Some(d) if d.value.0.is_zero() => {
            return fail(
                "duration",
                d.referenced,
                "must be longer than zero (omit it to last until the end)".into(),
            );
        }
        Some(d) => Some(d.value.0),
        None => None,
    };

    let target_text = spec.target.value.0.trim();
    let target = if let Some((name, control)) = proxies.iter().find(|(n, _)| n == target_text) {
        if !NETWORK_KINDS.contains(&kind) {
            return fail(
                "kind",
                kind_at,
                format!(
                    "{name} is a chaos proxy: it takes network faults only ({})",
                    NETWORK_KINDS.join(", ")
                ),
            );
        }
        Target::Proxy {
            name: name.clone(),
            control: *control,
        }
    } else if target_text == "forwarder" {
        if process.is_none() {
            return fail(
                "target",
                spec.target.referenced,
                format!("a {kind} fault acts on mock backends, not on the forwarder"),
            );
        }
        Target::Forwarder
    } else {
        Target::Backends(
            resolve_backends(target_text, backends, proxies)
                .map_err(|m| error(i, "target", spec.target.referenced, m))?,
        )
    };

    let toxicity = match &spec.toxicity {
        Some(t) => parse_toxicity(&t.value.0).map_err(|m| error(i, "toxicity", t.referenced, m))?,
        None => 1.0,
    };
    let millis =
        |d: &Option<Spanned<HumanDuration>>| d.as_ref().map_or(0, |d| d.value.0.as_millis() as u64);
    let needs = |field: &str, example: &str| {
        Err(error(
            i,
            field,
            kind_at,
            format!("a {kind} fault needs `{field}`, e.g. `{field}: {example}`"),
        ))
    };
    let kind = match process {
        Some(action) => FaultKind::Process {
            action,
            restart: spec.restart.as_ref().is_some_and(|r| r.value),
        },
        None if NETWORK_KINDS.contains(&kind) => FaultKind::Network(match kind {
            "latency" => {
                if spec.delay.is_none() {
                    return needs("delay", "500ms");
                }
                Toxic::Latency {
                    latency_ms: millis(&spec.delay),
                    jitter_ms: millis(&spec.jitter),
                    direction,
                    toxicity,
                    per,
                }
            }
            "bandwidth" => match &spec.rate {
                Some(rate) if rate.value > 0 => Toxic::Bandwidth {
                    rate_kbps: rate.value,
                    direction,
                    toxicity,
                    per,
                },
                Some(rate) => {
                    return fail("rate", rate.referenced, "must be at least 1 (KB/s)".into());
                }
                None => return needs("rate", "100"),
            },
            "slicer" => match &spec.size {
                Some(size) if size.value > 0 => Toxic::Slicer {
                    size_bytes: size.value as usize,
                    delay_us: spec
                        .delay
                        .as_ref()
                        .map_or(0, |d| d.value.0.as_micros() as u64),
                    direction,
                    toxicity,
                    per,
                },
                Some(size) => {
                    return fail("size", size.referenced, "must be at least 1 byte".into());
                }
                None => return needs("size", "16"),
            },
            "limit_data" => match &spec.bytes {
                Some(bytes) => Toxic::LimitData {
                    bytes: bytes.value,
                    direction,
                    toxicity,
                    per,
                },
                None => return needs("bytes", "2048"),
            },
            "slow_close" => {
                if spec.delay.is_none() {
                    return needs("delay", "300ms");
                }
                Toxic::SlowClose {
                    delay_ms: millis(&spec.delay),
                    direction,
                    toxicity,
                    per,
                }
            }
            "reset_peer" => Toxic::ResetPeer {
                timeout_ms: millis(&spec.after),
                toxicity,
                per,
            },
            "timeout" => Toxic::Timeout {
                timeout_ms: millis(&spec.after),
                toxicity,
                per,
            },
            _ => Toxic::Down {},
        }),
        None => FaultKind::Http(match kind {
            "error" => {
                let status = spec.status.as_ref().map_or(500, |s| s.value);
                if !(400..=599).contains(&status) {
                    let at = spec.status.as_ref().map_or(kind_at, |s| s.referenced);
                    return fail(
                        "status",
                        at,
                        format!("{status} is not an error status (400..599)"),
                    );
                }
                HttpFault::Error {
                    status,
                    body: spec.body.as_ref().map(|b| b.value.clone()),
                    retry_after_s: spec.retry_after.as_ref().map(|r| r.value.0.as_secs()),
                    toxicity,
                }
            }
            "delay" | "slow_first_token" => {
                if spec.delay.is_none() {
                    return fail(
                        "delay",
                        kind_at,
                        format!("a {kind} fault needs `delay`, e.g. `delay: 500ms`"),
                    );
                }
                let (delay_ms, jitter_ms) = (millis(&spec.delay), millis(&spec.jitter));
                if kind == "delay" {
                    HttpFault::Delay {
                        delay_ms,
                        jitter_ms,
                        toxicity,
                    }
                } else {
                    HttpFault::SlowFirstToken {
                        delay_ms,
                        jitter_ms,
                        toxicity,
                    }
                }
            }
            _ => {
                let Some(after) = &spec.after_tokens else {
                    return fail(
                        "after_tokens",
                        kind_at,
                        "a cut_stream fault needs `after_tokens`, e.g. `after_tokens: 5`".into(),
                    );
                };
                HttpFault::CutStream {
                    after_tokens: after.value,
                    toxicity,
                }
            }
        }),
    };

    let target_name = match &target {
        Target::Forwarder => "forwarder".to_owned(),
        Target::Proxy { name, .. } => name.clone(),
        Target::Backends(list) if list.len() == backends.len() && list.len() > 1 => {
            "all".to_owned()
        }
        Target::Backends(list) => list
            .iter()
            .map(|&b| backends[b].as_str())
            .collect::<Vec<_>>()
            .join("+"),
    };
    let name = match &spec.name {
        Some(name) => {
            let ok = !name.value.is_empty()
                && name
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return fail(
                    "name",
                    name.referenced,
                    "use letters, digits, '-', '_' and '.' only".into(),
                );
            }
            name.value.clone()
        }
        None => format!("{}-{target_name}", spec.kind.value),
    };
    Ok(Fault {
        name,
        at,
        duration,
        target,
        kind,
    })
}

/// `backend-1` (a name), `1` (an index), `all`, or `50%` (the first half, at least one).
fn resolve_backends(
    text: &str,
    backends: &[String],
    proxies: &[ChaosProxy],
) -> Result<Vec<usize>, String> {
    let proxy_names = || {
        proxies
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let n = backends.len();
    if n == 0 {
        return Err(format!(
            "{text:?} is not one of the chaos proxies ({}), and without a `stack` there are no \
             backends to fault",
            proxy_names()
        ));
    }
    if text == "all" {
        return Ok((0..n).collect());
    }
    if let Some(index) = backends.iter().position(|b| b == text) {
        return Ok(vec![index]);
    }
    if let Ok(index) = text.parse::<usize>() {
        return if index < n {
            Ok(vec![index])
        } else {
            Err(format!(
                "backend index {index} is out of range: the stack starts {n} backends (0..{})",
                n - 1
            ))
        };
    }
    if text.ends_with('%') {
        let share = parse_percent(text)?;
        if share <= 0.0 {
            return Err("a share of backends must be above 0%".into());
        }
        let count = ((n as f64 * share / 100.0).ceil() as usize).clamp(1, n);
        return Ok((0..count).collect());
    }
    let proxies = if proxies.is_empty() {
        String::new()
    } else {
        format!(", a chaos proxy ({})", proxy_names())
    };
    Err(format!(
        "{text:?} is not a backend; use a name ({}), an index, `all`, a share like `50%`, \
         `forwarder`{proxies}",
        backends.join(", ")
    ))
}

/// A chaos proxy's control URL (`http://127.0.0.1:9101`) as the address to call; loopback only.
pub fn proxy_control(url: &str) -> Result<SocketAddr, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{url:?}: use the control API's http:// URL, as `loadgen chaos-proxy` prints it"
        ));
    }
    let host = uri.host().unwrap_or_default();
    let Some(port) = uri.port_u16() else {
        return Err(format!("{url:?} has no port"));
    };
    let ip: std::net::IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        other => other
            .parse()
            .map_err(|_| format!("{host:?}: give the proxy's address as an IP, e.g. 127.0.0.1"))?,
    };
    if !ip.is_loopback() {
        return Err(format!(
            "{ip} is not a loopback address: faults only ever touch this machine"
        ));
    }
    Ok((ip, port).into())
}

/// `50%` or `0.5`, as a probability.
fn parse_toxicity(text: &str) -> Result<f64, String> {
    let t = text.trim();
    if t.ends_with('%') {
        return parse_percent(t).map(|p| p / 100.0);
    }
    match t.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{t:?}: write a share like 50% or 0.5")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<Fault>, SpecError> {
        let specs: Vec<FaultSpec> = serde_saphyr::from_str(yaml).unwrap();
        let names: Vec<String> = ["backend-0", "backend-1", "backend-2", "degraded-0"]
            .map(String::from)
            .to_vec();
        let proxies = [("edge".to_owned(), "127.0.0.1:9101".parse().unwrap())];
        resolve(&specs, &names, &proxies, Duration::from_secs(600))
    }

    #[test]
    fn targets_resolve_by_name_index_share_and_all() {
        let faults = parse(
            "- { at: 10s, duration: 5s, target: backend-1, kind: crash, restart: true }\n\
             - { at: 10s, target: 3, kind: delay, delay: 500ms, jitter: 50ms, toxicity: 50% }\n\
             - { at: 1m, target: 50%, kind: error, status: 503 }\n\
             - { at: 1m, target: all, kind: cut_stream, after_tokens: 3 }\n\
             - { at: 1m, target: forwarder, kind: hang, duration: 2s }\n",
        )
        .unwrap();
        assert_eq!(faults[0].target, Target::Backends(vec![1]));
        assert_eq!(faults[0].name, "crash-backend-1");
        assert_eq!(faults[1].target, Target::Backends(vec![3]));
        assert_eq!(
            faults[1].kind,
            FaultKind::Http(HttpFault::Delay {
                delay_ms: 500,
                jitter_ms: 50,
                toxicity: 0.5
            })
        );
        assert_eq!(faults[2].target, Target::Backends(vec![0, 1]));
        assert_eq!(faults[3].name, "cut_stream-all");
        assert_eq!(faults[4].target, Target::Forwarder);
        assert_eq!(
            faults[4].end(Duration::from_secs(600)),
            Duration::from_secs(62)
        );
    }

    #[test]
    fn errors_name_the_fault_and_the_field() {
        let e =
            parse("- { at: 1s, target: 0, kind: crash }\n- { at: 1s, target: 0, kind: explode }\n")
                .unwrap_err();
        assert_eq!(e.field, "faults[1].kind");
        assert!(
            e.message.contains("explode") && e.at.line() == 2,
            "{}",
            e.message
        );
        let e = parse("- { at: 1s, target: backend-9, kind: crash }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].target");
        let e = parse("- { at: 1s, target: 0, kind: crash, status: 503 }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].status");
        let e = parse("- { at: 1s, target: 0, kind: delay }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].delay");
        let e = parse("- { at: 20m, target: 0, kind: crash }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].at");
        let e = parse("- { at: 1s, target: forwarder, kind: error }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].target");
        let e = parse("- { at: 1s, target: 0, kind: error, toxicity: 2 }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].toxicity");
    }

    #[test]
    fn squeezing_a_scenario_scales_its_fault_timeline_with_the_stages() {
        let text = "name: s\nstack: { backends: { count: 2 } }\n\
                    load: { stages: [{ duration: 10m, users: 5 }, { duration: 20m, users: 5 }] }\n\
                    faults:\n  - { at: 10m, duration: 5m, target: 0, kind: crash, restart: true }\n  \
                    - { at: 15m, target: 1, kind: delay, delay: 500ms }\n";
        let mut plan = crate::scenario::parse(std::path::Path::new("s.yaml"), text).unwrap();
        plan.squeeze(Duration::from_secs(120));
        assert_eq!(plan.load.total_duration(), Duration::from_secs(120));
        assert_eq!(plan.faults[0].at, Duration::from_secs(40));
        assert_eq!(plan.faults[0].duration, Some(Duration::from_secs(20)));
        assert_eq!(plan.faults[1].at, Duration::from_secs(60));
        assert_eq!(plan.faults[1].duration, None);
        // The delay is a property of the fault, not of the timeline: it is not squeezed.
        assert_eq!(
            plan.faults[1].kind,
            FaultKind::Http(HttpFault::Delay {
                delay_ms: 500,
                jitter_ms: 0,
                toxicity: 1.0
            })
        );
    }

    #[test]
    fn faults_need_a_stack() {
        let text = "name: s\ntarget: http://127.0.0.1:9/\nload: { stages: [{ duration: 1m, users: 5 }] }\n\
                    faults:\n  - { at: 10s, target: 0, kind: crash }\n";
        let e = crate::scenario::parse(std::path::Path::new("s.yaml"), text).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("faults[0]"), "{e}");
        assert_eq!(e.position.map(|p| p.0), Some(5), "{e}");
    }

    #[test]
    fn network_faults_take_their_parameters_and_direction() {
        let faults = parse(
            "- { at: 1s, target: 0, kind: latency, delay: 100ms, jitter: 10ms, direction: upstream }\n\
             - { at: 1s, target: 1, kind: bandwidth, rate: 50 }\n\
             - { at: 1s, target: 2, kind: timeout, after: 0 }\n\
             - { at: 1s, target: all, kind: down }\n",
        )
        .unwrap();
        assert_eq!(
            faults[0].kind,
            FaultKind::Network(Toxic::Latency {
                latency_ms: 100,
                jitter_ms: 10,
                direction: Direction::Upstream,
                toxicity: 1.0,
                per: Per::Connection,
            })
        );
        assert!(faults.iter().all(Fault::is_network));
        assert!(faults[3].must_be_noticed() && !faults[0].must_be_noticed());
        let e = parse("- { at: 1s, target: 0, kind: bandwidth }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].rate");
        let e = parse("- { at: 1s, target: 0, kind: down, direction: upstream }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].direction");
        let e = parse("- { at: 1s, target: 0, kind: latency, delay: 1s, direction: sideways }\n")
            .unwrap_err();
        assert_eq!(e.field, "faults[0].direction");
    }

    #[test]
    fn slow_close_and_per_request_toxicity_are_read() {
        let faults = parse(
            "- { at: 1s, target: 0, kind: slow_close, delay: 300ms }\n\
             - { at: 1s, target: 1, kind: latency, delay: 50ms, toxicity: 50%, per: request }\n",
        )
        .unwrap();
        assert_eq!(
            faults[0].kind,
            FaultKind::Network(Toxic::SlowClose {
                delay_ms: 300,
                direction: Direction::Downstream,
                toxicity: 1.0,
                per: Per::Connection,
            })
        );
        assert!(matches!(
            faults[1].kind,
            FaultKind::Network(Toxic::Latency {
                per: Per::Request,
                ..
            })
        ));
        let e = parse("- { at: 1s, target: 0, kind: slow_close }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].delay");
        let e =
            parse("- { at: 1s, target: 0, kind: latency, delay: 1s, per: packet }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].per");
        let e =
            parse("- { at: 1s, target: 0, kind: delay, delay: 1s, per: request }\n").unwrap_err();
        assert_eq!(
            e.field, "faults[0].per",
            "HTTP faults are always per request"
        );
    }

    #[test]
    fn chaos_proxies_take_network_faults_by_name() {
        let faults =
            parse("- { at: 1s, duration: 2s, target: edge, kind: latency, delay: 9ms }\n").unwrap();
        assert_eq!(
            faults[0].target,
            Target::Proxy {
                name: "edge".into(),
                control: "127.0.0.1:9101".parse().unwrap()
            }
        );
        assert_eq!(faults[0].name, "latency-edge");
        let e = parse("- { at: 1s, target: edge, kind: crash }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].kind");
        assert!(e.message.contains("network faults only"), "{}", e.message);
        let e = parse("- { at: 1s, target: egde, kind: down }\n").unwrap_err();
        assert_eq!(e.field, "faults[0].target");
        assert!(e.message.contains("chaos proxy (edge)"), "{}", e.message);
    }

    #[test]
    fn repeated_default_names_are_made_unique() {
        let faults =
            parse("- { at: 1s, target: 0, kind: crash }\n- { at: 9s, target: 0, kind: crash }\n")
                .unwrap();
        assert_eq!(faults[1].name, "crash-backend-0-1");
    }
}

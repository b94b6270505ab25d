//! Prometheus metrics: the registry, the handles the hot path updates, and the text encoder.
//!
//! Names are a contract with loadgen, which scrapes them:
//! `forwarder_requests_total{class}`, `forwarder_request_duration_seconds`,
//! `forwarder_inflight_requests`, `forwarder_queue_depth`, `forwarder_queue_depth_max`,
//! `forwarder_shed_total`, `forwarder_backend_up{backend}` and
//! `forwarder_upstream_errors_total{backend,kind}`. Beside them: `forwarder_ttft_seconds`,
//! `forwarder_overhead_seconds`, `forwarder_retries_total`, `forwarder_cache_requests_total{result}`,
//! `forwarder_breaker_state{backend}`, `forwarder_breaker_transitions_total{backend,state}`,
//! `forwarder_upstream_requests_total{backend}` and `forwarder_fallback_total`.
//!
//! Labelled series are resolved once (per status class, per backend) and kept as handles, so
//! the request path never touches the families' locks.

use std::time::{Duration, Instant};

use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of [`Metrics::encode_classic`]'s output.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics names a counter family without `_total` in HELP/TYPE while its samples carry
/// it; the classic format wants one name throughout, and has no `# EOF`.
fn openmetrics_to_classic(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + 16 * counters.len());
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?.split_once(' ')?)));
        match meta {
            Some((prefix, (name, rest))) if counters.contains(name) => {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(rest);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    backend: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    backend: String,
    kind: &'static str,
}

/// Why an upstream exchange failed, as counted in `forwarder_upstream_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Io,
    /// The backend answered 5xx.
    Status5xx,
}

impl UpstreamErrorKind {
    fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Io => "io",
            Self::Status5xx => "status_5xx",
        }
    }
}

/// A breaker's state as the `forwarder_breaker_state` gauge shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl BreakerState {
    fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// Per-backend handles.
#[derive(Clone, Debug)]
pub struct BackendMetrics {
    pub up: Gauge,
    connect: Counter,
    timeout: Counter,
    io: Counter,
    status_5xx: Counter,
    breaker_state: Gauge,
    /// Entered closed, open, half-open.
    transitions: [Counter; 3],
    pub requests: Counter,
}

impl BackendMetrics {
    pub fn count_error(&self, kind: UpstreamErrorKind) {
        match kind {
            UpstreamErrorKind::Connect => self.connect.inc(),
            UpstreamErrorKind::Timeout => self.timeout.inc(),
            UpstreamErrorKind::Io => self.io.inc(),
            UpstreamErrorKind::Status5xx => self.status_5xx.inc(),
        };
    }

    /// The initial state: shown, but not a transition.
    pub fn breaker_starts_closed(&self) {
        self.breaker_state.set(BreakerState::Closed as i64);
    }

    pub fn breaker_entered(&self, state: BreakerState) {
        self.breaker_state.set(state as i64);
        self.transitions[state as usize].inc();
    }
}

/// Queue handles, shared with admission control.
#[derive(Clone, Debug, Default)]
pub struct QueueMetrics {
    pub depth: Gauge,
    /// Highest depth since start, so a spike between two scrapes is still seen.
    pub depth_max: Gauge,
    pub shed: Counter,
}

pub struct Metrics {
    registry: Registry,
    /// 2xx, 3xx, 4xx, 5xx.
    classes: [Counter; 4],
    duration: Histogram,
    inflight: Gauge,
    queue: QueueMetrics,
    backend_up: Family<BackendLabels, Gauge>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    breaker_state: Family<BackendLabels, Gauge>,
    breaker_transitions: Family<TransitionLabels, Counter>,
    upstream_requests: Family<BackendLabels, Counter>,
    pub hot: HotMetrics,
}

/// Handles the request path updates directly.
#[derive(Clone, Debug)]
pub struct HotMetrics {
    pub ttft: Histogram,
    pub overhead: Histogram,
    pub retries: Counter,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub fallbacks: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();

        let requests = Family::<ClassLabels, Counter>::default();
        let classes = ["2xx", "3xx", "4xx", "5xx"]
            .map(|class| requests.get_or_create_owned(&ClassLabels { class }));
        registry.register(
            "forwarder_requests",
            "Requests answered, by status class (counted when the response head is sent)",
            requests,
        );

        // 1 ms doubling up to ~65 s: covers both overhead-only answers and long generations.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "forwarder_request_duration_seconds",
            "Time from request arrival to the end of the response body",
            duration.clone(),
        );

        let inflight = Gauge::default();
        registry.register(
            "forwarder_inflight_requests",
            "Requests being handled, queued ones included, until their response body ends",
            inflight.clone(),
        );

        let queue = QueueMetrics::default();
        registry.register(
            "forwarder_queue_depth",
            "Requests waiting for an upstream slot right now",
            queue.depth.clone(),
        );
        registry.register(
            "forwarder_queue_depth_max",
            "Highest forwarder_queue_depth seen since start",
            queue.depth_max.clone(),
        );
        registry.register(
            "forwarder_shed",
            "Requests rejected at once (429 or 503) because the wait queue was full",
            queue.shed.clone(),
        );

        let backend_up = Family::<BackendLabels, Gauge>::default();
        registry.register(
            "forwarder_backend_up",
            "1 if the backend passed its last health check, else 0",
            backend_up.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "forwarder_upstream_errors",
            "Failed upstream exchanges by backend and kind (connect, timeout, io, status_5xx)",
            upstream_errors.clone(),
        );

        let breaker_state = Family::<BackendLabels, Gauge>::default();
        registry.register(
            "forwarder_breaker_state",
            "Circuit breaker per backend: 0 closed, 1 open, 2 half-open (one probe in flight)",
            breaker_state.clone(),
        );
        let breaker_transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "forwarder_breaker_transitions",
            "Circuit breaker state changes by backend and the state entered",
            breaker_transitions.clone(),
        );
        let upstream_requests = Family::<BackendLabels, Counter>::default();
        registry.register(
            "forwarder_upstream_requests",
            "Requests sent to each backend, retries and probes included",
            upstream_requests.clone(),
        );

        // 100 us doubling up to ~100 s: TTFT spans queueing, model time and long prompts.
        let ttft = Histogram::new(exponential_buckets(0.0001, 2.0, 21));
        registry.register(
            "forwarder_ttft_seconds",
            "Streams: time from request arrival to the first body byte from the backend",
            ttft.clone(),
        );
        // 10 us doubling up to ~1.3 s: overhead should sit in the lowest buckets.
        let overhead = Histogram::new(exponential_buckets(0.00001, 2.0, 18));
        registry.register(
            "forwarder_overhead_seconds",
            "Time in the forwarder minus time waiting on backends, per request",
            overhead.clone(),
        );
        let retries = Counter::default();
        registry.register(
            "forwarder_retries",
            "Requests sent again to another backend after a failure before any byte reached the client",
            retries.clone(),
        );
        let cache = Family::<CacheLabels, Counter>::default();
        let cache_hits = cache.get_or_create_owned(&CacheLabels { result: "hit" });
        let cache_misses = cache.get_or_create_owned(&CacheLabels { result: "miss" });
        registry.register(
            "forwarder_cache_requests",
            "Cacheable requests by result (hit, miss)",
            cache,
        );
        let fallbacks = Counter::default();
        registry.register(
            "forwarder_fallback",
            "Requests answered with the fallback because no backend could be tried",
            fallbacks.clone(),
        );

        Self {
            registry,
            classes,
            duration,
            inflight,
            queue,
            backend_up,
            upstream_errors,
            breaker_state,
            breaker_transitions,
            upstream_requests,
            hot: HotMetrics {
                ttft,
                overhead,
                retries,
                cache_hits,
                cache_misses,
                fallbacks,
            },
        }
    }

    /// Creates (so they are exported from the start, at zero) and returns a backend's series.
    pub fn backend(&self, name: &str) -> BackendMetrics {
        let errors = |kind: UpstreamErrorKind| {
            self.upstream_errors
                .get_or_create_owned(&UpstreamErrorLabels {
                    backend: name.to_owned(),
                    kind: kind.label(),
                })
        };
        let label = BackendLabels {
            backend: name.to_owned(),
        };
        let transition = |state: BreakerState| {
            self.breaker_transitions
                .get_or_create_owned(&TransitionLabels {
                    backend: name.to_owned(),
                    state: state.label(),
                })
        };
        BackendMetrics {
            up: self.backend_up.get_or_create_owned(&label),
            connect: errors(UpstreamErrorKind::Connect),
            timeout: errors(UpstreamErrorKind::Timeout),
            io: errors(UpstreamErrorKind::Io),
            status_5xx: errors(UpstreamErrorKind::Status5xx),
            breaker_state: self.breaker_state.get_or_create_owned(&label),
            transitions: [
                transition(BreakerState::Closed),
                transition(BreakerState::Open),
                transition(BreakerState::HalfOpen),
            ],
            requests: self.upstream_requests.get_or_create_owned(&label),
        }
    }

    pub fn queue(&self) -> QueueMetrics {
        self.queue.clone()
    }

    pub fn count_response(&self, status: StatusCode) {
        let index = match status.as_u16() {
            ..300 => 0,
            300..400 => 1,
            400..500 => 2,
            _ => 3,
        };
        self.classes[index].inc();
    }

    /// Starts tracking one request; it stays in flight until the timer is dropped.
    pub fn start_request(&self) -> RequestTimer {
        self.inflight.inc();
        RequestTimer {
            started: Instant::now(),
            inflight: self.inflight.clone(),
            duration: self.duration.clone(),
            overhead: None,
            upstream_wait: Duration::ZERO,
        }
    }

    /// The whole registry in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The whole registry in the classic Prometheus text format (0.0.4), for scrapers and
    /// tools (promtool) that do not ask for OpenMetrics.
    pub fn encode_classic(&self) -> Result<String, std::fmt::Error> {
        Ok(openmetrics_to_classic(&self.encode()?))
    }
}

/// One request's presence in `forwarder_inflight_requests` and its duration observation.
///
/// Held by the response body, so it ends when the body is finished or dropped.
#[derive(Debug)]
pub struct RequestTimer {
    started: Instant,
    inflight: Gauge,
    duration: Histogram,
    /// Set for requests the forwarder routes; probes and scrapes have no overhead to speak of.
    overhead: Option<Histogram>,
    upstream_wait: Duration,
}

impl RequestTimer {
    /// Also observe `forwarder_overhead_seconds` when this request ends.
    pub fn track_overhead(&mut self, overhead: Histogram) {
        self.overhead = Some(overhead);
    }

    /// Time spent waiting on a backend: not the forwarder's overhead.
    pub fn add_upstream_wait(&mut self, waited: Duration) {
        self.upstream_wait += waited;
    }

    pub fn started(&self) -> Instant {
        self.started
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.inflight.dec();
        let elapsed = self.started.elapsed();
        self.duration.observe(elapsed.as_secs_f64());
        if let Some(overhead) = &self.overhead {
            overhead.observe(elapsed.saturating_sub(self.upstream_wait).as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_the_contract_names() {
        let m = Metrics::new();
        let b = m.backend("a");
        b.up.set(1);
        b.count_error(UpstreamErrorKind::Timeout);
        m.count_response(StatusCode::OK);
        m.count_response(StatusCode::SERVICE_UNAVAILABLE);
        drop(m.start_request());
        let text = m.encode().unwrap();
        for needle in [
            "forwarder_requests_total{class=\"2xx\"} 1",
            "forwarder_requests_total{class=\"5xx\"} 1",
            "forwarder_requests_total{class=\"4xx\"} 0",
            "forwarder_request_duration_seconds_count 1",
            "forwarder_inflight_requests 0",
            "forwarder_queue_depth 0",
            "forwarder_queue_depth_max 0",
            "forwarder_shed_total 0",
            "forwarder_backend_up{backend=\"a\"} 1",
            "forwarder_upstream_errors_total{backend=\"a\",kind=\"timeout\"} 1",
            "forwarder_upstream_errors_total{backend=\"a\",kind=\"connect\"} 0",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn classic_format_names_counters_with_total_throughout() {
        let m = Metrics::new();
        let text = m.encode_classic().unwrap();
        assert!(
            text.contains("# TYPE forwarder_shed_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP forwarder_shed_total "), "{text}");
        assert!(
            text.contains("# TYPE forwarder_queue_depth gauge\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
    }
}

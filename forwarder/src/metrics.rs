//! Prometheus metrics: the registry, the handles the hot path updates, and the text encoder.
//!
//! Names are a contract with loadgen, which scrapes them:
//! `forwarder_requests_total{class}`, `forwarder_request_duration_seconds`,
//! `forwarder_inflight_requests`, `forwarder_queue_depth`, `forwarder_queue_depth_max`,
//! `forwarder_shed_total`, `forwarder_backend_up{backend}` and
//! `forwarder_upstream_errors_total{backend,kind}`.
//!
//! Labelled series are resolved once (per status class, per backend) and kept as handles, so
//! the request path never touches the families' locks.

use std::time::Instant;

use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
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
}

impl UpstreamErrorKind {
    fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Io => "io",
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
}

impl BackendMetrics {
    pub fn count_error(&self, kind: UpstreamErrorKind) {
        match kind {
            UpstreamErrorKind::Connect => self.connect.inc(),
            UpstreamErrorKind::Timeout => self.timeout.inc(),
            UpstreamErrorKind::Io => self.io.inc(),
        };
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
            "Requests rejected with 503 because the wait queue was full",
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
            "Failed upstream exchanges by backend and kind (connect, timeout, io)",
            upstream_errors.clone(),
        );

        Self {
            registry,
            classes,
            duration,
            inflight,
            queue,
            backend_up,
            upstream_errors,
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
        BackendMetrics {
            up: self.backend_up.get_or_create_owned(&BackendLabels {
                backend: name.to_owned(),
            }),
            connect: errors(UpstreamErrorKind::Connect),
            timeout: errors(UpstreamErrorKind::Timeout),
            io: errors(UpstreamErrorKind::Io),
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
        }
    }

    /// The whole registry in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
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
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.inflight.dec();
        self.duration.observe(self.started.elapsed().as_secs_f64());
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
}

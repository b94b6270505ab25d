//! The path of one `/v1/*` request: admission -> pick a backend -> upstream -> stream back.

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::{Instant, timeout_at};

use crate::admission::{Admission, QueueFull, Slot};
use crate::backend::Backend;
use crate::balance::Balancer;
use crate::body::ResponseBody;
use crate::config::Timeouts;
use crate::error_body::{overloaded, upstream_failure};
use crate::headers::{X_FORWARDER_BACKEND, remove_hop_by_hop};
use crate::metrics::UpstreamErrorKind;
use crate::upstream::{Upstream, UpstreamError};

pub struct Pipeline {
    admission: Admission,
    balancer: Balancer,
    upstream: Upstream,
    timeouts: Timeouts,
}

impl Pipeline {
    pub fn new(
        admission: Admission,
        balancer: Balancer,
        upstream: Upstream,
        timeouts: Timeouts,
    ) -> Self {
        Self {
            admission,
            balancer,
            upstream,
            timeouts,
        }
    }

    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    /// Forwards one request; every failure becomes an OpenAI-style error response.
    ///
    /// `arrived` starts the total request timeout, so time spent queued counts against it.
    pub async fn forward(
        &self,
        req: Request<Incoming>,
        client_ip: IpAddr,
        arrived: Instant,
    ) -> Response<ResponseBody> {
        let deadline = arrived + self.timeouts.request;
        let slot = match timeout_at(deadline, self.admission.admit()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(QueueFull)) => return overloaded("forwarder queue full"),
            Err(_) => return overloaded("timed out waiting in the forwarder queue"),
        };

        let backend = Arc::clone(self.balancer.pick());
        let first_byte_deadline = deadline.min(Instant::now() + self.timeouts.first_byte);
        let sent = timeout_at(
            first_byte_deadline,
            self.upstream.send(&backend, req, client_ip),
        )
        .await;
        match sent {
            Ok(Ok(resp)) => stream_back(resp, backend, deadline, slot),
            Ok(Err(err)) => upstream_error(&backend, &err),
            Err(_) => {
                backend.metrics().count_error(UpstreamErrorKind::Timeout);
                upstream_failure(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    &format!(
                        "backend {} sent no response headers in time",
                        backend.name()
                    ),
                    backend.name(),
                )
            }
        }
    }
}

fn upstream_error(backend: &Backend, err: &UpstreamError) -> Response<ResponseBody> {
    let (kind, code) = match err {
        UpstreamError::Connect(_) => {
            // Stop sending it traffic now; the next health check can bring it back.
            backend.set_up(false);
            (UpstreamErrorKind::Connect, "upstream_unavailable")
        }
        UpstreamError::Io(_) | UpstreamError::Request(_) => {
            (UpstreamErrorKind::Io, "upstream_error")
        }
    };
    backend.metrics().count_error(kind);
    upstream_failure(
        StatusCode::BAD_GATEWAY,
        code,
        &format!("backend {}: {}", backend.name(), error_chain(err)),
        backend.name(),
    )
}

/// `outer: inner: innermost`, because hyper's own messages ("client error (Connect)") only
/// make sense together with their causes.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn stream_back(
    resp: Response<Incoming>,
    backend: Arc<Backend>,
    deadline: Instant,
    slot: Slot,
) -> Response<ResponseBody> {
    let (mut parts, body) = resp.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    if let Ok(name) = HeaderValue::from_str(backend.name()) {
        parts.headers.insert(X_FORWARDER_BACKEND, name);
    }
    // An extra error event would overrun a declared length, so only chunked SSE gets one.
    let sse = !parts.headers.contains_key(CONTENT_LENGTH)
        && parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
    // The upstream spoke HTTP/1.1; let the server pick the client's version.
    parts.version = http::Version::default();
    let body = ResponseBody::upstream(body, backend, sse, deadline, slot);
    Response::from_parts(parts, body)
}

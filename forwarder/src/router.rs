//! The forwarder's shared state and its routes: `/healthz`, `/readyz`, `/metrics` and `/v1/*`.
//!
//! Request metrics cover what callers send (`/v1/*` and unknown paths), not the forwarder's own
//! probe and scrape endpoints, so a monitoring loop does not show up as traffic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::admission::Admission;
use crate::backend::Backend;
use crate::body::ResponseBody;
use crate::config::Config;
use crate::error_body::{method_not_allowed, not_found};
use crate::metrics::{self, Metrics};
use crate::pipeline::Pipeline;
use crate::routing::{NoBackends, Routing};
use crate::upstream::{Upstream, UpstreamAuth};
use crate::{request, ws};

pub struct Router {
    metrics: Metrics,
    pipeline: Pipeline,
    /// Worker threads whose warm-up is not over yet (none when there is no warm-up);
    /// `/readyz` waits for them.
    warming: AtomicUsize,
}

impl Router {
    /// `workers`: the threads serving with their own connection pools, each warmed up.
    pub fn new(config: &Config, workers: usize) -> Result<Self, NoBackends> {
        let metrics = Metrics::new();
        let policies = &config.policies;
        let backends = config
            .backends
            .iter()
            .map(|b| {
                Arc::new(Backend::new(
                    b,
                    policies.breaker,
                    config.admission.per_backend,
                    &metrics,
                ))
            })
            .collect();
        let admission = Admission::new(
            config.admission.max_inflight,
            config.admission.max_queue,
            metrics.queue(),
        );
        let auth = UpstreamAuth::new(
            policies.auth.upstream_key.as_ref(),
            !policies.auth.client_keys.is_empty(),
        );
        let pipeline = Pipeline::new(
            Arc::new(config.clone()),
            admission,
            Routing::new(backends, &policies.routing)?,
            Upstream::new(config.timeouts.connect, auth),
            metrics.hot.clone(),
        );
        let warming = AtomicUsize::new(if policies.warmup.enabled() {
            workers
        } else {
            0
        });
        Ok(Self {
            metrics,
            pipeline,
            warming,
        })
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        self.pipeline.routing().backends()
    }

    pub fn upstream(&self) -> &Upstream {
        self.pipeline.upstream()
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn config(&self) -> &Config {
        self.pipeline.config()
    }

    /// One WebSocket message through the pipeline, counted like an HTTP request.
    pub async fn exchange_message(
        &self,
        body: bytes::Bytes,
        headers: &http::HeaderMap,
        peer: SocketAddr,
    ) -> Response<ResponseBody> {
        let timer = self.metrics.start_request();
        let deadline = tokio::time::Instant::now() + self.config().timeouts.request;
        let opts = self.pipeline.read_options(deadline);
        let resp = match request::from_message(body, headers, ws::chat_path(), &opts) {
            Ok(request) => {
                self.pipeline
                    .forward_request(request, peer.ip(), timer)
                    .await
            }
            Err(resp) => resp.map(|body| body.with_timer(timer)),
        };
        self.metrics.count_response(resp.status());
        resp
    }

    /// One worker's warm-up is over.
    pub fn set_warmed(&self) {
        let _ = self
            .warming
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Answers one request; never fails (errors are responses).
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResponseBody> {
        let path = req.uri().path();
        let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
        match path {
            "/healthz" if read_only => text(StatusCode::OK, "ok"),
            "/readyz" if read_only => {
                if self.warming.load(Ordering::Acquire) > 0 {
                    text(StatusCode::SERVICE_UNAVAILABLE, "warming up")
                } else if self.pipeline.routing().any_up() {
                    text(StatusCode::OK, "ready")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "no backend is up")
                }
            }
            "/metrics" if read_only => self.metrics_page(req.headers()),
            "/healthz" | "/readyz" | "/metrics" => method_not_allowed("GET, HEAD"),
            ws::PATH if *req.method() == Method::GET => ws::accept(self, req, peer),
            _ => self.handle_traffic(req, peer).await,
        }
    }

    async fn handle_traffic(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResponseBody> {
        let timer = self.metrics.start_request();
        let resp = if !req.uri().path().starts_with("/v1/") {
            not_found(req.uri().path()).map(|body| body.with_timer(timer))
        } else if matches!(*req.method(), Method::GET | Method::POST) {
            // Boxed: the pipeline's future is large, and hyper keeps a slot for the service's
            // future in every connection, idle ones included; boxed, idle ones stay small.
            Box::pin(self.pipeline.forward(req, peer.ip(), timer)).await
        } else {
            method_not_allowed("GET, POST").map(|body| body.with_timer(timer))
        };
        self.metrics.count_response(resp.status());
        resp
    }

    /// OpenMetrics when the scraper asks for it (Prometheus does), else the classic format.
    fn metrics_page(&self, headers: &http::HeaderMap) -> Response<ResponseBody> {
        let openmetrics = headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/openmetrics-text"));
        let (page, content_type) = if openmetrics {
            (self.metrics.encode(), metrics::CONTENT_TYPE)
        } else {
            (self.metrics.encode_classic(), metrics::CLASSIC_CONTENT_TYPE)
        };
        match page {
            Ok(page) => {
                let mut resp = Response::new(ResponseBody::full(page));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                resp
            }
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed"),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

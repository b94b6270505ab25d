//! The forwarder's shared state and its routes: `/healthz`, `/readyz`, `/metrics` and `/v1/*`.
//!
//! Request metrics cover what callers send (`/v1/*` and unknown paths), not the forwarder's own
//! probe and scrape endpoints, so a monitoring loop does not show up as traffic.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::admission::Admission;
use crate::backend::Backend;
use crate::balance::{Balancer, NoBackends};
use crate::body::ResponseBody;
use crate::config::Config;
use crate::error_body::{method_not_allowed, not_found};
use crate::metrics::{self, Metrics};
use crate::pipeline::Pipeline;
use crate::upstream::Upstream;

pub struct Router {
    metrics: Metrics,
    pipeline: Pipeline,
}

impl Router {
    pub fn new(config: &Config) -> Result<Self, NoBackends> {
        let metrics = Metrics::new();
        let backends = config
            .backends
            .iter()
            .map(|b| Arc::new(Backend::new(b, &metrics)))
            .collect();
        let admission = Admission::new(
            config.admission.max_inflight,
            config.admission.max_queue,
            metrics.queue(),
        );
        let pipeline = Pipeline::new(
            admission,
            Balancer::new(backends)?,
            Upstream::new(config.timeouts.connect),
            config.timeouts,
        );
        Ok(Self { metrics, pipeline })
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        self.pipeline.balancer().backends()
    }

    /// Answers one request; never fails (errors are responses).
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ResponseBody> {
        let path = req.uri().path();
        let read_only = matches!(*req.method(), Method::GET | Method::HEAD);
        match path {
            "/healthz" if read_only => text(StatusCode::OK, "ok"),
            "/readyz" if read_only => {
                if self.pipeline.balancer().any_up() {
                    text(StatusCode::OK, "ready")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "no backend is up")
                }
            }
            "/metrics" if read_only => self.metrics_page(),
            "/healthz" | "/readyz" | "/metrics" => method_not_allowed("GET, HEAD"),
            _ => self.handle_traffic(req, peer).await,
        }
    }

    async fn handle_traffic(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResponseBody> {
        let timer = self.metrics.start_request();
        let arrived = Instant::now();
        let resp = if !req.uri().path().starts_with("/v1/") {
            not_found(req.uri().path())
        } else if matches!(*req.method(), Method::GET | Method::POST) {
            self.pipeline.forward(req, peer.ip(), arrived).await
        } else {
            method_not_allowed("GET, POST")
        };
        self.metrics.count_response(resp.status());
        resp.map(|body| body.with_timer(timer))
    }

    fn metrics_page(&self) -> Response<ResponseBody> {
        match self.metrics.encode() {
            Ok(page) => {
                let mut resp = Response::new(ResponseBody::full(page));
                resp.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
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

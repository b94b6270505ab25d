//! The routes: `/healthz`, `/readyz`, `/metrics` and `/v1/*`.
//!
//! Request metrics cover what callers send (`/v1/*` and unknown paths), not the forwarder's own
//! probe and scrape endpoints, so a monitoring loop does not show up as traffic.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::front::state::Router;
use crate::front::ws;
use crate::metrics;
use crate::pipeline::answer::ResponseBody;
use crate::pipeline::errors::{method_not_allowed, not_found};

impl Router {
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
                if !self.warmed() {
                    text(StatusCode::SERVICE_UNAVAILABLE, "warming up")
                } else if self.pipeline().routing().any_up() {
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
        let timer = self.metrics().start_request();
        let resp = if !req.uri().path().starts_with("/v1/") {
            not_found(req.uri().path()).map(|body| body.with_timer(timer))
        } else if matches!(*req.method(), Method::GET | Method::POST) {
            // Boxed: the pipeline's future is large, and hyper keeps a slot for the service's
            // future in every connection, idle ones included; boxed, idle ones stay small.
            Box::pin(self.pipeline().forward(req, peer.ip(), timer)).await
        } else {
            method_not_allowed("GET, POST").map(|body| body.with_timer(timer))
        };
        self.metrics().count_response(resp.status());
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
            (self.metrics().encode(), metrics::CONTENT_TYPE)
        } else {
            (
                self.metrics().encode_classic(),
                metrics::CLASSIC_CONTENT_TYPE,
            )
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

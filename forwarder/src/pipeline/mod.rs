//! The path of one `/v1/*` request: authenticate -> read (buffered, checked) -> cache ->
//! admission -> route -> breaker -> upstream (retrying within budget) -> answer back.
//!
//! Retries happen only before anything reached the client: after a connect failure, an
//! exchange that broke before response headers, or a 5xx answer, on the next candidate backend,
//! within the retry budget. A first-byte timeout is not retried: the time is gone, and a slow
//! backend is usually slow for everyone.

// The stages, in the order a request meets them.
// Who is asking: the client's key.
pub mod auth;
// The request read whole and checked (size, JSON, gzip).
pub mod read;
// Answers kept for identical non-streaming requests.
pub mod cache;
// Bounded concurrency and a bounded wait queue.
pub mod admission;
// Which backend: consistent hash with bounded loads, p2c or round robin.
pub mod route;
// One try at one backend, holding its slots.
pub mod attempt;
// The answer streamed back to the client.
pub mod answer;

// Used by several stages.
pub mod compression;
pub mod errors;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, VARY,
};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::{Instant, timeout_at};

use crate::config::{CompressionConfig, Config, FallbackConfig};
use crate::headers::{X_FORWARDER_BACKEND, remove_hop_by_hop};
use crate::metrics::{HotMetrics, RequestTimer, UpstreamErrorKind};
use crate::pipeline::admission::{Admission, QueueFull};
use crate::pipeline::answer::{ResponseBody, StreamOptions};
use crate::pipeline::attempt::{Attempt, Verdict};
use crate::pipeline::auth::ClientKeys;
use crate::pipeline::cache::{CachedAnswer, ResponseCache};
use crate::pipeline::errors::{fallback, overloaded, unauthorized, upstream_failure};
use crate::pipeline::read::{ClientRequest, ReadOptions};
use crate::pipeline::route::Routing;
use crate::upstream::backend::{Backend, BackendSlot};
use crate::upstream::breaker::Permit;
use crate::upstream::client::{Upstream, UpstreamError};
use crate::upstream::retry_budget::RetryBudget;

pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

pub struct Pipeline {
    admission: Admission,
    routing: Routing,
    upstream: Upstream,
    config: Arc<Config>,
    retries: RetryBudget,
    cache: Option<ResponseCache>,
    keys: ClientKeys,
    metrics: HotMetrics,
}

/// Everything an answer needs to know about its request.
struct Context<'a> {
    request: &'a ClientRequest,
    /// Set when the cache is on and the request is one it may answer.
    cache_key: Option<Bytes>,
    gzip: bool,
    deadline: Instant,
}

impl Pipeline {
    pub fn new(
        config: Arc<Config>,
        admission: Admission,
        routing: Routing,
        upstream: Upstream,
        metrics: HotMetrics,
    ) -> Self {
        let p = &config.policies;
        Self {
            admission,
            routing,
            upstream,
            retries: RetryBudget::new(&p.retries),
            cache: ResponseCache::new(&p.cache),
            keys: ClientKeys::new(p.auth.client_keys.clone()),
            metrics,
            config,
        }
    }

    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Forwards one request; every failure becomes an OpenAI-style error response. The timer
    /// rides on the answer's body, so the request counts until its last byte.
    pub async fn forward(
        &self,
        req: Request<Incoming>,
        client_ip: IpAddr,
        mut timer: RequestTimer,
    ) -> Response<ResponseBody> {
        timer.track_overhead(self.metrics.overhead.clone());
        let resp = self.forward_timed(req, client_ip, &mut timer).await;
        resp.map(|body| body.with_timer(timer))
    }

    /// Whether the headers carry an accepted client key (always, with no keys configured).
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        self.keys.admits(headers)
    }

    /// How request bodies are read and inspected, for callers that read them themselves.
    pub fn read_options(&self, deadline: Instant) -> ReadOptions<'_> {
        let p = &self.config.policies;
        ReadOptions {
            max_body: p.limits.max_body,
            user_header: &p.routing.hash_header,
            deadline,
            cache_keys: self.cache.is_some(),
        }
    }

    /// Forwards a request that was read already (a WebSocket message), without gzip.
    pub async fn forward_request(
        &self,
        request: ClientRequest,
        client_ip: IpAddr,
        mut timer: RequestTimer,
    ) -> Response<ResponseBody> {
        timer.track_overhead(self.metrics.overhead.clone());
        let deadline = Instant::now() + self.config.timeouts.request;
        let resp = self
            .forward_read(&request, false, false, deadline, client_ip, &mut timer)
            .await;
        resp.map(|body| body.with_timer(timer))
    }

    async fn forward_timed(
        &self,
        req: Request<Incoming>,
        client_ip: IpAddr,
        timer: &mut RequestTimer,
    ) -> Response<ResponseBody> {
        let arrived = Instant::now();
        let t = &self.config.timeouts;
        if !self.keys.admits(req.headers()) {
            return unauthorized();
        }
        let gzip =
            self.config.policies.compression.gzip && compression::accepts_gzip(req.headers());
        let no_cache = wants_no_cache(req.headers());
        let deadline = arrived + t.request;
        let opts = self.read_options(deadline.min(arrived + t.header_read));
        let request = match read::read(req, &opts).await {
            Ok(request) => request,
            Err(resp) => return *resp,
        };
        self.forward_read(&request, gzip, no_cache, deadline, client_ip, timer)
            .await
    }

    /// From a read request on: cache, admission, attempts.
    async fn forward_read(
        &self,
        request: &ClientRequest,
        gzip: bool,
        no_cache: bool,
        deadline: Instant,
        client_ip: IpAddr,
        timer: &mut RequestTimer,
    ) -> Response<ResponseBody> {
        let p = &self.config.policies;
        self.retries.deposit();

        let cache_key = self.cache.as_ref().and(request.cache_key.clone());
        if let (Some(cache), Some(key)) = (&self.cache, &cache_key) {
            if !no_cache && let Some(hit) = cache.get(key) {
                self.metrics.cache_hits.inc();
                return cached_answer(hit, gzip, &p.compression);
            }
            self.metrics.cache_misses.inc();
        }

        let slot = match timeout_at(deadline, self.admission.admit()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(QueueFull)) => {
                return overloaded(self.config.admission.shed_status, "forwarder queue full");
            }
            Err(_) => {
                return overloaded(
                    self.config.admission.shed_status,
                    "timed out waiting in the forwarder queue",
                );
            }
        };
        let cx = Context {
            request,
            cache_key,
            gzip,
            deadline,
        };
        self.attempts(&cx, client_ip, slot, timer).await
    }

    /// Tries candidates in routing order until one answers, a failure may not be retried, or
    /// none is left (then the fallback answer).
    async fn attempts(
        &self,
        cx: &Context<'_>,
        client_ip: IpAddr,
        slot: crate::pipeline::admission::Slot,
        timer: &mut RequestTimer,
    ) -> Response<ResponseBody> {
        let mut candidates: VecDeque<Arc<Backend>> = self
            .routing
            .candidates(
                cx.request.user.as_deref(),
                cx.request.model.as_deref(),
                Instant::now(),
            )
            .into();
        let mut slot = Some(slot);
        let mut attempts = 0;
        let mut last_failure = None;
        while let Some((backend, permit, backend_slot)) =
            next_backend(&mut candidates, cx.deadline).await
        {
            attempts += 1;
            backend.metrics().requests.inc();
            let mut attempt = Attempt {
                permit,
                _pending: backend.load().start(),
                _backend_slot: backend_slot,
                slot: slot.take(),
                sent: Instant::now(),
                failed: false,
            };
            let first_byte = cx
                .deadline
                .min(attempt.sent + self.config.timeouts.first_byte);
            let sent = timeout_at(
                first_byte,
                self.upstream
                    .send(&backend, cx.request.outgoing(), client_ip),
            )
            .await;
            let failure = match sent {
                Ok(Ok(resp)) if !resp.status().is_server_error() => {
                    backend
                        .load()
                        .observe(attempt.sent.elapsed(), Instant::now());
                    return self.answer(cx, resp, backend, attempt, timer).await;
                }
                Ok(Ok(resp)) => {
                    backend.metrics().count_error(UpstreamErrorKind::Status5xx);
                    if !self.may_retry(attempts, &candidates) {
                        // The backend's own error goes to the client; the breaker hears of it.
                        attempt.failed = true;
                        return self.stream_back(cx, resp, backend, attempt);
                    }
                    upstream_failure(
                        StatusCode::BAD_GATEWAY,
                        "upstream_error",
                        &format!("backend {} answered {}", backend.name(), resp.status()),
                        backend.name(),
                    )
                }
                Ok(Err(err)) => {
                    let resp = upstream_error(&backend, &err);
                    if !self.may_retry(attempts, &candidates) {
                        timer.add_upstream_wait(attempt.settle(Verdict::Failure));
                        return resp;
                    }
                    resp
                }
                Err(_) => {
                    backend.metrics().count_error(UpstreamErrorKind::Timeout);
                    timer.add_upstream_wait(attempt.settle(Verdict::Failure));
                    return upstream_failure(
                        StatusCode::GATEWAY_TIMEOUT,
                        "upstream_timeout",
                        &format!(
                            "backend {} sent no response headers in time",
                            backend.name()
                        ),
                        backend.name(),
                    );
                }
            };
            // Retrying: keep the global slot for the next attempt.
            slot = attempt.take_slot();
            timer.add_upstream_wait(attempt.settle(Verdict::Failure));
            last_failure = Some(failure);
        }
        last_failure.unwrap_or_else(|| {
            self.metrics.fallbacks.inc();
            let FallbackConfig { status, message } = &self.config.policies.fallback;
            fallback(*status, message)
        })
    }

    /// Whether another attempt is allowed, taking it from the budget if so.
    fn may_retry(&self, attempts: u32, candidates: &VecDeque<Arc<Backend>>) -> bool {
        let allowed = attempts < self.config.policies.retries.max_attempts
            && !candidates.is_empty()
            && self.retries.try_withdraw(Instant::now());
        if allowed {
            self.metrics.retries.inc();
        }
        allowed
    }

    /// A good answer: whole and maybe cached or gzipped when small and known in size,
    /// otherwise streamed through frame by frame.
    async fn answer(
        &self,
        cx: &Context<'_>,
        resp: Response<Incoming>,
        backend: Arc<Backend>,
        attempt: Attempt,
        timer: &mut RequestTimer,
    ) -> Response<ResponseBody> {
        let compression = &self.config.policies.compression;
        let len = content_length(resp.headers());
        let json = is_json(resp.headers()) && !resp.headers().contains_key(CONTENT_ENCODING);
        let cacheable = cx.cache_key.is_some()
            && resp.status() == StatusCode::OK
            && self.cache.as_ref().zip(len).is_some_and(|(c, n)| c.fits(n));
        let gzippable = cx.gzip
            && json
            && len.is_some_and(|n| n >= compression.min_size && n <= compression.max_size);
        let Some(len) = len.filter(|_| cacheable || gzippable) else {
            return self.stream_back(cx, resp, backend, attempt);
        };

        let (mut parts, body) = resp.into_parts();
        let collected = timeout_at(cx.deadline, Limited::new(body, len).collect()).await;
        let bytes = match collected {
            Ok(Ok(c)) => c.to_bytes(),
            Ok(Err(_)) | Err(_) => {
                backend.metrics().count_error(UpstreamErrorKind::Io);
                timer.add_upstream_wait(attempt.settle(Verdict::Failure));
                return upstream_failure(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    &format!("backend {}: the answer broke off", backend.name()),
                    backend.name(),
                );
            }
        };
        timer.add_upstream_wait(attempt.settle(Verdict::Success));
        remove_hop_by_hop(&mut parts.headers);
        parts.version = http::Version::default();
        if let Some(name) = backend.name_header() {
            parts.headers.insert(X_FORWARDER_BACKEND, name.clone());
        }
        if let (Some(cache), Some(key)) = (&self.cache, &cx.cache_key) {
            parts
                .headers
                .insert(X_CACHE, HeaderValue::from_static("miss"));
            if cacheable {
                cache.insert(
                    key.clone(),
                    CachedAnswer {
                        content_type: parts.headers.get(CONTENT_TYPE).cloned(),
                        body: bytes.clone(),
                    },
                );
            }
        }
        let body = if gzippable {
            gzip_headers(&mut parts.headers);
            compression::gzip(&bytes)
        } else {
            bytes
        };
        parts.headers.insert(CONTENT_LENGTH, body.len().into());
        Response::from_parts(parts, ResponseBody::full(body))
    }

    fn stream_back(
        &self,
        cx: &Context<'_>,
        resp: Response<Incoming>,
        backend: Arc<Backend>,
        attempt: Attempt,
    ) -> Response<ResponseBody> {
        let (mut parts, body) = resp.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        if let Some(name) = backend.name_header() {
            parts.headers.insert(X_FORWARDER_BACKEND, name.clone());
        }
        if self.cache.is_some() && cx.cache_key.is_some() {
            parts
                .headers
                .insert(X_CACHE, HeaderValue::from_static("miss"));
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
        let opts = StreamOptions {
            sse,
            deadline: cx.deadline,
            idle: self.config.timeouts.idle,
            ttft: self.metrics.ttft.clone(),
        };
        let body = ResponseBody::upstream(body, backend, attempt, opts);
        Response::from_parts(parts, body)
    }
}

/// The first candidate with a free slot whose breaker lets a request through. When every
/// candidate's slots are busy, waits for the first busy one rather than failing.
async fn next_backend(
    candidates: &mut VecDeque<Arc<Backend>>,
    deadline: Instant,
) -> Option<(Arc<Backend>, Permit, BackendSlot)> {
    let mut busy: Option<Arc<Backend>> = None;
    while let Some(backend) = candidates.pop_front() {
        let Some(slot) = backend.try_slot() else {
            busy.get_or_insert(backend);
            continue;
        };
        if let Some(permit) = backend.breaker().try_acquire(Instant::now()) {
            return Some((backend, permit, slot));
        }
    }
    let backend = busy?;
    let slot = timeout_at(deadline, backend.slot()).await.ok()??;
    let permit = backend.breaker().try_acquire(Instant::now())?;
    Some((backend, permit, slot))
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

fn cached_answer(
    hit: CachedAnswer,
    gzip: bool,
    compression: &CompressionConfig,
) -> Response<ResponseBody> {
    let mut headers = HeaderMap::new();
    if let Some(ct) = hit.content_type {
        headers.insert(CONTENT_TYPE, ct);
    }
    headers.insert(X_CACHE, HeaderValue::from_static("hit"));
    let json = is_json(&headers);
    let body = if gzip && json && hit.body.len() >= compression.min_size {
        gzip_headers(&mut headers);
        compression::gzip(&hit.body)
    } else {
        hit.body
    };
    headers.insert(CONTENT_LENGTH, body.len().into());
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.headers_mut() = headers;
    resp
}

fn gzip_headers(headers: &mut HeaderMap) {
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.append(VARY, HeaderValue::from_static("accept-encoding"));
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

fn wants_no_cache(headers: &HeaderMap) -> bool {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim();
            d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store")
        })
}

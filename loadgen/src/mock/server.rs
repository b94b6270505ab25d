//! The mock's HTTP side: accept loop (HTTP/1.1 and h2c on one port), routing, the completion
//! handler, and graceful shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::body::MockBody;
use super::chaos::{Faults, HttpFault};
use super::cold_start::ColdStart;
use super::completion::{Identity, MODELS, error_body, full_answer};
use super::metrics::{Metrics, Outcome};
use super::plan::Plan;
use super::profile::MockProfile;
use super::request::{Api, Ask, Usage};
use super::stream::TokenStream;
use super::words;

/// How long in-flight answers may take to finish once shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Prompts can be long; anything past this is surely a mistake.
const MAX_REQUEST_BODY: usize = 8 << 20;

/// h2c clients may multiplex thousands of virtual users over a few connections; hyper's default
/// stream limit (200) would queue them.
const MAX_H2_STREAMS: u32 = 65_536;

/// State shared by every connection.
struct Mock {
    profile: MockProfile,
    error_status: StatusCode,
    metrics: Arc<Metrics>,
    seed: u64,
    requests: AtomicU64,
    /// HTTP faults switched on at run time through `/_chaos`.
    faults: Faults,
    cold_start: ColdStart,
}

impl Mock {
    fn new(profile: MockProfile) -> Mock {
        Mock {
            error_status: StatusCode::from_u16(profile.error_status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            seed: profile.seed.unwrap_or_else(rand::random),
            cold_start: ColdStart::new(profile.cold_start.0),
            profile,
            metrics: Arc::default(),
            requests: AtomicU64::new(0),
            faults: Faults::default(),
        }
    }

    /// Each request gets its own generator, seeded from the profile's seed and its arrival
    /// number: no lock shared between requests, and a seed reproduces a sequential run.
    fn rng(&self) -> SmallRng {
        SmallRng::seed_from_u64(self.seed.wrapping_add(self.requests.fetch_add(1, Relaxed)))
    }
}

/// Serves the mock on `listener` until `shutdown` completes, then lets in-flight answers finish
/// for up to [`SHUTDOWN_GRACE`] and closes whatever is left.
pub async fn serve(
    listener: TcpListener,
    profile: MockProfile,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, profile, None, shutdown).await;
}

/// [`serve`], over TLS when given an acceptor.
pub async fn serve_with(
    listener: TcpListener,
    profile: MockProfile,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let mock = Arc::new(Mock::new(profile));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Virtual users may think for longer than hyper's default header timeout between requests.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut accept_errors = AcceptErrors::default();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections so the set does not grow for the whole run.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Tokens are tiny writes that must leave at once.
                    let _ = stream.set_nodelay(true);
                    let mock = Arc::clone(&mock);
                    // Only this machine may switch faults on (the control has no other guard).
                    let loopback = peer.ip().is_loopback();
                    let service = service_fn(move |req| route(Arc::clone(&mock), req, loopback));
                    if let Some(tls) = &tls {
                        // The handshake runs in the connection's task, never in the accept loop.
                        let (tls, builder, watcher) = (tls.clone(), builder.clone(), graceful.watcher());
                        connections.spawn(async move {
                            let Ok(stream) = tls.accept(stream).await else { return };
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn.into_owned()).await;
                        });
                        continue;
                    }
                    let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    let conn = graceful.watch(conn);
                    connections.spawn(async move {
                        // A client that resets or sends garbage only ends its own connection.
                        let _ = conn.await;
                    });
                }
                Err(e) => accept_errors.back_off(e).await,
            },
        }
    }

    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    connections.shutdown().await;
}

/// Accept can fail when the process is out of file descriptors (the machines cap them at 20,000);
/// pausing briefly lets answers finish and free some instead of spinning.
#[derive(Default)]
struct AcceptErrors {
    last_report: Option<Instant>,
}

impl AcceptErrors {
    async fn back_off(&mut self, error: std::io::Error) {
        if self
            .last_report
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            eprintln!("loadgen mock: accept failed: {error}");
            self.last_report = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn route(
    mock: Arc<Mock>,
    req: Request<Incoming>,
    loopback: bool,
) -> Result<Response<MockBody>, Infallible> {
    if loopback && req.uri().path().starts_with(CHAOS_PATH) {
        return Ok(chaos_control(&mock, req).await);
    }
    let response = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => complete(&mock, Api::Chat, req).await,
        (&Method::POST, "/v1/completions") => complete(&mock, Api::Text, req).await,
        (&Method::GET, "/v1/models") => respond(StatusCode::OK, "application/json", MODELS),
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok"),
        (&Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            mock.metrics.render(),
        ),
        (
            _,
            "/v1/chat/completions" | "/v1/completions" | "/v1/models" | "/healthz" | "/metrics",
        ) => {
            let message = format!(
                "Method {} is not allowed on {}",
                req.method(),
                req.uri().path()
            );
            openai_error(StatusCode::METHOD_NOT_ALLOWED, &message)
        }
        _ => {
            let message = format!("Unknown request URL: {} {}", req.method(), req.uri().path());
            openai_error(StatusCode::NOT_FOUND, &message)
        }
    };
    Ok(response)
}

/// A chat or text completion: parse, draw the plan, then fail, stream or answer whole.
async fn complete(mock: &Mock, api: Api, req: Request<Incoming>) -> Response<MockBody> {
    // From here until the answer is complete the request is in flight; if hyper drops this
    // future or the stream because the client left, the guard counts it as cancelled.
    let mut guard = mock.metrics.start();
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            guard.finish(Outcome::Invalid);
            return if e.is::<LengthLimitError>() {
                openai_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The request body is too large",
                )
            } else {
                openai_error(
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read",
                )
            };
        }
    };
    let ask = match Ask::parse(api, &body) {
        Ok(ask) => ask,
        Err(e) => {
            guard.finish(Outcome::Invalid);
            return openai_error(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    drop(body);
    mock.cold_start.ready().await;

    let mut rng = mock.rng();
    let mut plan = Plan::draw(&mock.profile, ask.max_tokens, &mut rng);
    let effect = mock.faults.roll(&mut rng);
    if !effect.delay.is_zero() {
        tokio::time::sleep(effect.delay).await;
    }
    if let Some((status, body, retry_after)) = effect.error {
        // Like the profile's errors, an injected one costs about a first token's time.
        tokio::time::sleep(plan.ttft).await;
        guard.finish(Outcome::Error);
        return scheduled_error(status, body, retry_after);
    }
    plan.ttft += effect.first_token_delay;
    if plan.fail {
        // Errors take about as long as a first token: a failing backend is not a free one.
        tokio::time::sleep(plan.ttft).await;
        guard.finish(Outcome::Error);
        return injected_error(mock.error_status);
    }

    let identity = Identity::new(api, ask.model, &mut rng);
    let usage = Usage::new(ask.prompt_tokens, plan.tokens);
    if ask.stream {
        let usage = ask.include_usage.then_some(usage);
        let stream = TokenStream::new(&identity, plan, usage, rng, Instant::now(), guard)
            .cut_after(effect.cut_after);
        let mut response = Response::new(MockBody::Tokens(Box::new(stream)));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return response;
    }

    tokio::time::sleep(plan.complete_after()).await;
    let mut content = String::with_capacity(plan.tokens as usize * 7);
    for i in 0..plan.tokens {
        if i > 0 {
            content.push(' ');
        }
        content.push_str(words::pick(&mut rng));
    }
    guard.tokens_sent(u64::from(plan.tokens));
    guard.finish(Outcome::Ok);
    respond(
        StatusCode::OK,
        "application/json",
        full_answer(&identity, &content, plan.finish, usage),
    )
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<MockBody> {
    let mut response = Response::new(MockBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn openai_error(status: StatusCode, message: &str) -> Response<MockBody> {
    respond(
        status,
        "application/json",
        error_body(message, "invalid_request_error", None),
    )
}

/// The profile's injected error, shaped like OpenAI's own for that status.
fn injected_error(status: StatusCode) -> Response<MockBody> {
    let (kind, code) = match status {
        StatusCode::TOO_MANY_REQUESTS => ("requests", Some("rate_limit_exceeded")),
        s if s.is_server_error() => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    let message = format!("The mock backend injected this {} error", status.as_u16());
    let mut response = respond(status, "application/json", error_body(&message, kind, code));
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Where the fault control lives; see [`super::chaos`].
const CHAOS_PATH: &str = "/_chaos";

/// `GET /_chaos`, `PUT /_chaos/<id>` (JSON fault), `DELETE /_chaos[/<id>]`.
async fn chaos_control(mock: &Mock, req: Request<Incoming>) -> Response<MockBody> {
    let id = req.uri().path()[CHAOS_PATH.len()..]
        .trim_start_matches('/')
        .to_owned();
    let ok = |text: String| respond(StatusCode::OK, "application/json", text);
    match *req.method() {
        Method::GET => ok(mock.faults.list_json()),
        Method::DELETE => {
            mock.faults.clear((!id.is_empty()).then_some(id.as_str()));
            ok(mock.faults.list_json())
        }
        Method::PUT | Method::POST if !id.is_empty() => {
            let body = match Limited::new(req.into_body(), 64 << 10).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => return openai_error(StatusCode::BAD_REQUEST, "unreadable body"),
            };
            let fault: HttpFault = match serde_json::from_slice(&body) {
                Ok(fault) => fault,
                Err(e) => return openai_error(StatusCode::BAD_REQUEST, &format!("bad fault: {e}")),
            };
            match mock.faults.set(&id, fault) {
                Ok(()) => ok(mock.faults.list_json()),
                Err(e) => openai_error(StatusCode::BAD_REQUEST, &e),
            }
        }
        _ => openai_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET /_chaos, PUT /_chaos/<id> or DELETE /_chaos[/<id>]",
        ),
    }
}

/// A scheduled error fault's answer: its own body if given, else OpenAI's shape for the status.
fn scheduled_error(
    status: u16,
    body: Option<String>,
    retry_after: Option<u64>,
) -> Response<MockBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match body {
        Some(body) => respond(status, "application/json", body),
        None => injected_error(status),
    };
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

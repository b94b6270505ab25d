//! Connections to the target ("lanes") and one request/answer exchange over them.
//!
//! Three strategies, chosen in the scenario: HTTP/1.1 with one keep-alive connection per virtual
//! user; HTTP/1.1 with a shared pool of N connections (a request waits for a free one, as in
//! wrk2); or h2c with every request multiplexed over a shared pool (so 20,000 users fit in a
//! process's 20,000 open files). Both HTTP/1.1 strategies use the lean client of [`super::h1`],
//! driven in the sending task; h2 uses hyper, its connections driven by tasks of their own.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::answer::{Answer, Scratch};
use super::h1::Connection;
use super::request::{Rendered, RequestTemplate};
use super::tls::{Stream, Tls};
use crate::stats::{ErrorClass, Outcome};

type Body = Full<Bytes>;

/// A failure before any answer arrived.
#[derive(Debug)]
enum SendFailure {
    Connect,
    Reset,
}

impl From<SendFailure> for ErrorClass {
    fn from(f: SendFailure) -> ErrorClass {
        match f {
            SendFailure::Connect => ErrorClass::Connect,
            SendFailure::Reset => ErrorClass::Reset,
        }
    }
}

/// Where requests go: the address, and TLS for `https://` targets.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub tls: Option<Tls>,
}

impl Endpoint {
    /// A new connection, TLS handshake included; any failure is a `connect` failure.
    async fn connect(&self) -> Result<Stream, SendFailure> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|_| SendFailure::Connect)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(tls) => {
                let tls = tls.handshake(tcp).await.map_err(|_| SendFailure::Connect)?;
                Ok(Stream::Tls(Box::new(tls)))
            }
        }
    }

    async fn connect_http1(&self) -> Result<Connection, SendFailure> {
        Ok(Connection::new(self.connect().await?))
    }
}

/// The shared h2c connections.
pub struct H2Pool {
    endpoint: Arc<Endpoint>,
    slots: Vec<Mutex<Option<http2::SendRequest<Body>>>>,
}

impl H2Pool {
    pub fn new(endpoint: Arc<Endpoint>, connections: u32) -> Arc<H2Pool> {
        let slots = (0..connections.max(1)).map(|_| Mutex::new(None)).collect();
        Arc::new(H2Pool { endpoint, slots })
    }

    /// A sender on slot `index`, (re)connecting it if it is missing or closed. The slot's lock is
    /// held while connecting, so a broken connection is replaced once, not once per request.
    async fn sender(&self, index: usize) -> Result<http2::SendRequest<Body>, SendFailure> {
        let mut slot = self.slots[index % self.slots.len()].lock().await;
        if let Some(sender) = slot.as_ref()
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        *slot = None;
        let stream = self.endpoint.connect().await?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| SendFailure::Connect)?;
        tokio::spawn(connection);
        *slot = Some(sender.clone());
        Ok(sender)
    }
}

/// A shared pool of at most N HTTP/1.1 keep-alive connections.
pub struct H1Pool {
    endpoint: Arc<Endpoint>,
    idle: std::sync::Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl H1Pool {
    pub fn new(endpoint: Arc<Endpoint>, connections: u32) -> Arc<H1Pool> {
        Arc::new(H1Pool {
            endpoint,
            idle: std::sync::Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(connections.max(1) as usize)),
        })
    }

    /// Waits for a free connection (reusing an idle one that is still open, else opening one).
    async fn checkout(&self) -> Result<(Connection, OwnedSemaphorePermit), SendFailure> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SendFailure::Reset)?;
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match idle {
                Some(mut connection) => {
                    if connection.usable() {
                        return Ok((connection, permit));
                    }
                }
                None => return Ok((self.endpoint.connect_http1().await?, permit)),
            }
        }
    }

    fn checkin(&self, connection: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(connection);
    }
}

/// How one worker reaches the target.
enum Route {
    /// Its own HTTP/1.1 connection, opened on first use and after any failure.
    Own {
        endpoint: Arc<Endpoint>,
        connection: Option<Connection>,
    },
    /// A connection borrowed from the shared HTTP/1.1 pool for each request.
    Pooled(Arc<H1Pool>),
    /// A slot in the shared HTTP/2 pool.
    Http2 { pool: Arc<H2Pool>, slot: usize },
}

/// One worker's way to the target, with the buffers it reuses from request to request.
pub struct Lane {
    route: Route,
    /// The HTTP/1.1 request being sent, serialised.
    wire: Vec<u8>,
    scratch: Scratch,
    deadline: Deadline,
}

impl Lane {
    fn new(route: Route) -> Lane {
        Lane {
            route,
            wire: Vec::new(),
            scratch: Scratch::default(),
            deadline: Deadline::default(),
        }
    }

    /// Its own HTTP/1.1 connection to `endpoint`.
    pub fn own(endpoint: Arc<Endpoint>) -> Lane {
        Lane::new(Route::Own {
            endpoint,
            connection: None,
        })
    }

    /// A connection of the shared HTTP/1.1 `pool` for each request.
    pub fn pooled(pool: Arc<H1Pool>) -> Lane {
        Lane::new(Route::Pooled(pool))
    }

    /// Slot `slot` of the shared h2 `pool`.
    pub fn http2(pool: Arc<H2Pool>, slot: usize) -> Lane {
        Lane::new(Route::Http2 { pool, slot })
    }

    /// Sends `request` (built from `template`) and reads the whole answer; `start` is now (the
    /// caller has read the clock already). `due` is when the request should have gone out (open
    /// model); response time counts from it, service time from the actual send. Everything,
    /// waiting for a connection included, is bounded by `timeout`.
    pub async fn exchange(
        &mut self,
        template: &RequestTemplate,
        request: &Rendered,
        timeout: Duration,
        start: Instant,
        due: Option<Instant>,
        outcome: &mut Outcome,
    ) {
        let due_at = due.unwrap_or(start);
        let mut sent = start;
        let streaming = template.stream;
        let Lane {
            route,
            wire,
            scratch,
            deadline,
        } = self;
        let result = deadline
            .bound(due_at.max(start) + timeout, async {
                match route {
                    Route::Own {
                        endpoint,
                        connection,
                    } => {
                        template.write_http1(request, wire);
                        if !connection.as_mut().is_some_and(Connection::usable) {
                            *connection = Some(endpoint.connect_http1().await?);
                            sent = Instant::now();
                        }
                        let own = connection.as_mut().expect("connected just above");
                        let result = own.exchange(wire, streaming, sent, outcome, scratch).await;
                        if !reusable(&result) {
                            *connection = None;
                        }
                        result
                    }
                    Route::Pooled(pool) => {
                        template.write_http1(request, wire);
                        let (mut connection, _permit) = pool.checkout().await?;
                        sent = Instant::now();
                        let result = connection
                            .exchange(wire, streaming, sent, outcome, scratch)
                            .await;
                        if reusable(&result) {
                            pool.checkin(connection);
                        }
                        result
                    }
                    Route::Http2 { pool, slot } => {
                        let mut sender = pool.sender(*slot).await?;
                        sent = Instant::now();
                        let response = sender
                            .send_request(template.to_request(request))
                            .await
                            .map_err(|_| ErrorClass::Reset)?;
                        let status = response.status().as_u16();
                        let answer = Answer::new(status, streaming, sent, outcome, scratch);
                        read_body(response.into_body(), answer).await
                    }
                }
            })
            .await;
        let end = Instant::now();
        outcome.latency = end - due_at;
        if due.is_some() {
            outcome.service_time = Some(end - sent);
        }
        outcome.failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(class)) => Some(class),
            Err(TimedOut) => {
                // The answer was abandoned mid-way: the connection's state is unknown.
                if let Route::Own { connection, .. } = &mut self.route {
                    *connection = None;
                }
                Some(ErrorClass::Timeout)
            }
        };
    }
}

/// The time limit of a lane's exchanges, kept in one timer for the lane's whole life.
///
/// Deadlines only move forward, so the timer is left set to an earlier one and, when it fires
/// before the current deadline, set again then: at a timeout of seconds and requests of
/// microseconds the timer wheel is touched about once per timeout, not once per request (a
/// fresh `timeout_at` would insert and remove an entry each time).
#[derive(Default)]
struct Deadline {
    timer: Option<Pin<Box<Sleep>>>,
}

/// The exchange ran past its deadline.
struct TimedOut;

impl Deadline {
    /// Runs `work` to its end, or until `deadline`.
    async fn bound<T>(
        &mut self,
        deadline: Instant,
        work: impl Future<Output = T>,
    ) -> Result<T, TimedOut> {
        let timer = match &mut self.timer {
            Some(timer) => {
                // A timer set past this deadline would fire too late: set it now.
                if timer.is_elapsed() || timer.deadline() > deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                done = &mut work => return Ok(done),
                () = timer.as_mut() => {
                    if Instant::now() >= deadline {
                        return Err(TimedOut);
                    }
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }
}

/// Whether a connection that ended an exchange this way can carry the next request.
fn reusable(result: &Result<(), ErrorClass>) -> bool {
    matches!(
        result,
        Ok(()) | Err(ErrorClass::Http4xx | ErrorClass::Http5xx | ErrorClass::HttpOther)
    )
}

/// Reads an h2 answer's body to its end, each frame timed as it arrives.
async fn read_body(mut body: Incoming, mut answer: Answer<'_>) -> Result<(), ErrorClass> {
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(answer.cut());
        };
        if let Some(data) = frame.data_ref() {
            answer.feed(data, Instant::now());
            if answer.broken() {
                return Err(ErrorClass::StreamCut);
            }
        }
    }
    answer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lane keeps one timer set to an older deadline; each exchange must still end at its
    /// own deadline, whether that is later (the timer fires early and is set again) or sooner.
    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_ends_each_exchange_at_its_own_deadline() {
        let mut deadline = Deadline::default();
        let second = Duration::from_secs(1);
        let first = Instant::now();
        assert!(deadline.bound(first + second, async {}).await.is_ok());

        tokio::time::sleep(Duration::from_millis(600)).await;
        let later = Instant::now();
        let hung = deadline.bound(later + second, std::future::pending::<()>());
        assert!(hung.await.is_err());
        assert_eq!(Instant::now(), later + second, "not at the older deadline");

        let quick = deadline.bound(Instant::now() + second, tokio::time::sleep(second / 2));
        assert!(quick.await.is_ok(), "work done in time is not cut");

        assert!(
            deadline
                .bound(Instant::now() + 10 * second, async {})
                .await
                .is_ok()
        );
        let sooner = Instant::now();
        let hung = deadline.bound(sooner + second, std::future::pending::<()>());
        assert!(hung.await.is_err());
        assert_eq!(
            Instant::now(),
            sooner + second,
            "a sooner deadline is kept too"
        );
    }
}

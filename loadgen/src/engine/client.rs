//! Connections to the target ("lanes") and one request/answer exchange over them.
//!
//! Three strategies, chosen in the scenario: HTTP/1.1 with one keep-alive connection per virtual
//! user; HTTP/1.1 with a shared pool of N connections (a request waits for a free one, as in
//! wrk2); or h2c with every request multiplexed over a shared pool (so 20,000 users fit in a
//! process's 20,000 open files).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::sse::{Event, SseReader};
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
}

type Http1Connection = http1::Connection<TokioIo<Stream>, Body>;

async fn handshake_http1(
    endpoint: &Endpoint,
) -> Result<(http1::SendRequest<Body>, Http1Connection), SendFailure> {
    let stream = endpoint.connect().await?;
    http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| SendFailure::Connect)
}

/// An HTTP/1.1 connection whose I/O runs in a task of its own (pooled connections).
async fn connect_http1(endpoint: &Endpoint) -> Result<http1::SendRequest<Body>, SendFailure> {
    let (sender, connection) = handshake_http1(endpoint).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A worker's own HTTP/1.1 connection, driven inside the worker's task: a request then wakes
/// no other task, which is most of a client's cost at high request rates.
pub struct OwnConnection {
    sender: http1::SendRequest<Body>,
    driver: Pin<Box<Http1Connection>>,
    /// The connection future finished (closed or failed): the next request reconnects.
    ended: bool,
}

impl OwnConnection {
    async fn open(endpoint: &Endpoint) -> Result<OwnConnection, SendFailure> {
        let (sender, driver) = handshake_http1(endpoint).await?;
        Ok(OwnConnection {
            sender,
            driver: Box::pin(driver),
            ended: false,
        })
    }

    /// Whether it can carry another request, after letting it notice a close the server sent
    /// while the worker was thinking.
    fn usable(&mut self) -> bool {
        if !self.ended && self.driver.as_mut().now_or_never().is_some() {
            self.ended = true;
        }
        !self.ended && !self.sender.is_closed()
    }

    /// One whole exchange, the connection's I/O driven alongside it.
    async fn exchange(
        &mut self,
        request: Request<Body>,
        streaming: bool,
        sent: Instant,
        outcome: &mut Outcome,
    ) -> Result<(), ErrorClass> {
        let OwnConnection {
            sender,
            driver,
            ended,
        } = self;
        let work = async {
            sender.ready().await.map_err(|_| ErrorClass::Reset)?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|_| ErrorClass::Reset)?;
            read_response(response, streaming, sent, outcome).await
        };
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                biased;
                result = &mut work => return result,
                _ = driver.as_mut(), if !*ended => *ended = true,
            }
        }
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
    idle: std::sync::Mutex<Vec<http1::SendRequest<Body>>>,
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

    /// Waits for a free connection (reusing an idle one, else opening one).
    async fn checkout(
        &self,
    ) -> Result<(http1::SendRequest<Body>, OwnedSemaphorePermit), SendFailure> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SendFailure::Reset)?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            std::iter::from_fn(|| idle.pop()).find(|s| !s.is_closed())
        };
        let sender = match reused {
            Some(sender) => sender,
            None => connect_http1(&self.endpoint).await?,
        };
        Ok((sender, permit))
    }

    fn checkin(&self, sender: http1::SendRequest<Body>) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sender);
    }
}

/// One worker's way to the target.
pub enum Lane {
    /// Its own HTTP/1.1 connection, opened on first use and after any failure.
    Own {
        endpoint: Arc<Endpoint>,
        connection: Option<OwnConnection>,
    },
    /// A connection borrowed from the shared HTTP/1.1 pool for each request.
    Pooled(Arc<H1Pool>),
    /// A slot in the shared HTTP/2 pool.
    Http2 { pool: Arc<H2Pool>, slot: usize },
}

impl Lane {
    /// Sends `request` and reads the whole answer. `due` is when the request should have gone
    /// out (open model); response time counts from it, service time from the actual send.
    /// Everything, waiting for a connection included, is bounded by `timeout`.
    pub async fn exchange(
        &mut self,
        request: Request<Body>,
        streaming: bool,
        timeout: Duration,
        due: Option<Instant>,
        outcome: &mut Outcome,
    ) {
        let start = Instant::now();
        let due_at = due.unwrap_or(start);
        let mut sent = start;
        let result = tokio::time::timeout_at(due_at.max(start) + timeout, async {
            match self {
                Lane::Own {
                    endpoint,
                    connection,
                } => {
                    if !connection.as_mut().is_some_and(OwnConnection::usable) {
                        *connection = Some(OwnConnection::open(endpoint).await?);
                    }
                    let own = connection.as_mut().expect("connected just above");
                    sent = Instant::now();
                    let result = own.exchange(request, streaming, sent, outcome).await;
                    if !reusable(&result) {
                        *connection = None;
                    }
                    result
                }
                Lane::Pooled(pool) => {
                    let (mut sender, _permit) = pool.checkout().await?;
                    sent = Instant::now();
                    sender.ready().await.map_err(|_| ErrorClass::Reset)?;
                    let response = sender
                        .send_request(request)
                        .await
                        .map_err(|_| ErrorClass::Reset)?;
                    let result = read_response(response, streaming, sent, outcome).await;
                    if reusable(&result) {
                        pool.checkin(sender);
                    }
                    result
                }
                Lane::Http2 { pool, slot } => {
                    let mut sender = pool.sender(*slot).await?;
                    sent = Instant::now();
                    let response = sender
                        .send_request(request)
                        .await
                        .map_err(|_| ErrorClass::Reset)?;
                    read_response(response, streaming, sent, outcome).await
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
            Err(_elapsed) => {
                // The answer was abandoned mid-way: the connection's state is unknown.
                if let Lane::Own { connection, .. } = self {
                    *connection = None;
                }
                Some(ErrorClass::Timeout)
            }
        };
    }
}

/// Whether a connection that ended an exchange this way can carry the next request.
fn reusable(result: &Result<(), ErrorClass>) -> bool {
    matches!(
        result,
        Ok(()) | Err(ErrorClass::Http4xx | ErrorClass::Http5xx | ErrorClass::HttpOther)
    )
}

/// Reads an answer to its end: an error status (its small body drained so the connection can be
/// reused), an SSE stream, or a whole JSON answer.
async fn read_response(
    response: Response<Incoming>,
    streaming: bool,
    sent: Instant,
    outcome: &mut Outcome,
) -> Result<(), ErrorClass> {
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                return Err(ErrorClass::Reset);
            }
        }
        return Err(ErrorClass::from_status(status.as_u16()));
    }
    if streaming {
        read_stream(&mut body, sent, outcome).await
    } else {
        read_whole(&mut body, outcome).await
    }
}

/// Reads an SSE answer, timing each content token; a stream that does not reach `[DONE]` is cut.
async fn read_stream(
    body: &mut Incoming,
    sent: Instant,
    outcome: &mut Outcome,
) -> Result<(), ErrorClass> {
    let mut reader = SseReader::default();
    let mut last_token: Option<Instant> = None;
    let mut tokens = 0u64;
    let mut reported_tokens = None;
    let mut done = false;
    let mut broken = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(ErrorClass::StreamCut);
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let now = Instant::now();
        reader.feed(data, |event| match event {
            Event::Token => {
                tokens += 1;
                match last_token {
                    None => outcome.ttft = Some(now - sent),
                    Some(previous) => outcome
                        .inter_token_us
                        .push((now - previous).as_micros() as u64),
                }
                last_token = Some(now);
            }
            Event::Meta { completion_tokens } => {
                if completion_tokens.is_some() {
                    reported_tokens = completion_tokens;
                }
            }
            Event::Done => done = true,
            Event::Error => broken = true,
        });
        if broken {
            return Err(ErrorClass::StreamCut);
        }
    }
    if !done {
        return Err(ErrorClass::StreamCut);
    }
    outcome.output_tokens = reported_tokens.unwrap_or(tokens);
    Ok(())
}

/// Reads a non-streamed answer; the token count comes from its `usage` when present.
async fn read_whole(body: &mut Incoming, outcome: &mut Outcome) -> Result<(), ErrorClass> {
    let collected = body
        .collect()
        .await
        .map_err(|_| ErrorClass::StreamCut)?
        .to_bytes();
    outcome.output_tokens = completion_tokens(&collected).unwrap_or(0);
    Ok(())
}

/// `usage.completion_tokens` of an OpenAI answer, found without parsing the whole JSON: this
/// runs once per request on the hot path, and answers can be large.
fn completion_tokens(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"completion_tokens\"";
    let at = body.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let rest = &body[at..];
    let start = rest
        .iter()
        .position(|b| !matches!(b, b' ' | b':' | b'\t' | b'\n' | b'\r'))?;
    let digits = rest[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&rest[start..start + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn completion_tokens_are_read_from_the_usage() {
        let body = br#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":5, "completion_tokens" : 17,"total_tokens":22}}"#;
        assert_eq!(super::completion_tokens(body), Some(17));
        assert_eq!(super::completion_tokens(b"{}"), None);
        assert_eq!(super::completion_tokens(b"not json"), None);
    }
}

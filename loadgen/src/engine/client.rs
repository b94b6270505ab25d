//! Connections to the target ("lanes") and one request/answer exchange over them.
//!
//! Three strategies, chosen in the scenario: HTTP/1.1 with one keep-alive connection per virtual
//! user; HTTP/1.1 with a shared pool of N connections (a request waits for a free one, as in
//! wrk2); or h2c with every request multiplexed over a shared pool (so 20,000 users fit in a
//! process's 20,000 open files).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::sse::{Event, SseReader};
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

async fn connect(addr: SocketAddr) -> Result<TcpStream, SendFailure> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|_| SendFailure::Connect)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn connect_http1(addr: SocketAddr) -> Result<http1::SendRequest<Body>, SendFailure> {
    let stream = connect(addr).await?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| SendFailure::Connect)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The shared h2c connections.
pub struct H2Pool {
    addr: SocketAddr,
    slots: Vec<Mutex<Option<http2::SendRequest<Body>>>>,
}

impl H2Pool {
    pub fn new(addr: SocketAddr, connections: u32) -> Arc<H2Pool> {
        let slots = (0..connections.max(1)).map(|_| Mutex::new(None)).collect();
        Arc::new(H2Pool { addr, slots })
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
        let stream = connect(self.addr).await?;
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
    addr: SocketAddr,
    idle: std::sync::Mutex<Vec<http1::SendRequest<Body>>>,
    permits: Arc<Semaphore>,
}

impl H1Pool {
    pub fn new(addr: SocketAddr, connections: u32) -> Arc<H1Pool> {
        Arc::new(H1Pool {
            addr,
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
            None => connect_http1(self.addr).await?,
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
        addr: SocketAddr,
        sender: Option<http1::SendRequest<Body>>,
    },
    /// A connection borrowed from the shared HTTP/1.1 pool for each request.
    Pooled(Arc<H1Pool>),
    /// A slot in the shared HTTP/2 pool.
    Http2 { pool: Arc<H2Pool>, slot: usize },
}

/// What a request is sent on, for the length of one exchange.
enum Held<'a> {
    Own(&'a mut Option<http1::SendRequest<Body>>),
    Pooled(&'a H1Pool, http1::SendRequest<Body>, OwnedSemaphorePermit),
    Http2(http2::SendRequest<Body>),
}

impl Lane {
    async fn hold(&mut self) -> Result<Held<'_>, SendFailure> {
        Ok(match self {
            Lane::Own { addr, sender } => {
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    *sender = Some(connect_http1(*addr).await?);
                }
                Held::Own(sender)
            }
            Lane::Pooled(pool) => {
                let (sender, permit) = pool.checkout().await?;
                Held::Pooled(pool, sender, permit)
            }
            Lane::Http2 { pool, slot } => Held::Http2(pool.sender(*slot).await?),
        })
    }

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
            let mut held = self.hold().await.map_err(ErrorClass::from)?;
            sent = Instant::now();
            let result = held.exchange(request, streaming, sent, outcome).await;
            held.release(
                result.is_ok() || matches!(result, Err(ErrorClass::Http4xx | ErrorClass::Http5xx)),
            );
            result
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
                if let Lane::Own { sender, .. } = self {
                    *sender = None;
                }
                Some(ErrorClass::Timeout)
            }
        };
    }
}

impl Held<'_> {
    async fn send(&mut self, request: Request<Body>) -> Result<Response<Incoming>, SendFailure> {
        match self {
            Held::Own(sender) => {
                let s = sender.as_mut().expect("held connections are connected");
                s.ready().await.map_err(|_| SendFailure::Reset)?;
                s.send_request(request)
                    .await
                    .map_err(|_| SendFailure::Reset)
            }
            Held::Pooled(_, s, _) => {
                s.ready().await.map_err(|_| SendFailure::Reset)?;
                s.send_request(request)
                    .await
                    .map_err(|_| SendFailure::Reset)
            }
            Held::Http2(s) => s
                .send_request(request)
                .await
                .map_err(|_| SendFailure::Reset),
        }
    }

    /// Keeps a connection that ended a whole exchange cleanly, drops one in an unknown state.
    fn release(self, reusable: bool) {
        match self {
            Held::Own(sender) if !reusable => *sender = None,
            Held::Pooled(pool, sender, _permit) if reusable => pool.checkin(sender),
            _ => {}
        }
    }

    async fn exchange(
        &mut self,
        request: Request<Body>,
        streaming: bool,
        sent: Instant,
        outcome: &mut Outcome,
    ) -> Result<(), ErrorClass> {
        let response = self.send(request).await?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            // Read the (small) error body so the connection can be reused.
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

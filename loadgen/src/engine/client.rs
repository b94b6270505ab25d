//! Connections to the target and one request/answer exchange over them.
//!
//! Two strategies, chosen in the scenario: HTTP/1.1 with one keep-alive connection per virtual
//! user, or h2c with every user multiplexed over a shared pool (so 20,000 users fit in a
//! process's 20,000 open files).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::sse::{Event, SseReader};
use crate::stats::{ErrorClass, Outcome};

type Body = Full<Bytes>;

/// A failure before any answer arrived.
#[derive(Debug)]
enum SendFailure {
    Connect,
    Reset,
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
    /// held while connecting, so a broken connection is replaced once, not once per user.
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

async fn connect(addr: SocketAddr) -> Result<TcpStream, SendFailure> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|_| SendFailure::Connect)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// One virtual user's way to the target.
pub enum Connection {
    /// Its own HTTP/1.1 connection, opened on first use and after any failure.
    Http1 {
        addr: SocketAddr,
        sender: Option<http1::SendRequest<Body>>,
    },
    /// A slot in the shared HTTP/2 pool.
    Http2 { pool: Arc<H2Pool>, slot: usize },
}

impl Connection {
    async fn send(&mut self, request: Request<Body>) -> Result<Response<Incoming>, SendFailure> {
        match self {
            Connection::Http1 { addr, sender } => {
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    let stream = connect(*addr).await?;
                    let (s, connection) = http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(|_| SendFailure::Connect)?;
                    tokio::spawn(connection);
                    *sender = Some(s);
                }
                let s = sender.as_mut().expect("connected just above");
                if s.ready().await.is_err() {
                    *sender = None;
                    return Err(SendFailure::Reset);
                }
                s.send_request(request).await.map_err(|_| {
                    *sender = None;
                    SendFailure::Reset
                })
            }
            Connection::Http2 { pool, slot } => {
                let mut s = pool.sender(*slot).await?;
                s.send_request(request)
                    .await
                    .map_err(|_| SendFailure::Reset)
            }
        }
    }

    /// Forgets an HTTP/1.1 connection whose state is unknown (an answer was abandoned).
    fn discard(&mut self) {
        if let Connection::Http1 { sender, .. } = self {
            *sender = None;
        }
    }

    /// Sends `request` and reads the whole answer, within `timeout`.
    pub async fn exchange(
        &mut self,
        request: Request<Body>,
        streaming: bool,
        timeout: Duration,
        outcome: &mut Outcome,
    ) {
        let started = Instant::now();
        let result = tokio::time::timeout(
            timeout,
            self.exchange_inner(request, streaming, started, outcome),
        )
        .await;
        outcome.latency = started.elapsed();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(class)) => {
                if class != ErrorClass::Http4xx && class != ErrorClass::Http5xx {
                    self.discard();
                }
                outcome.failure = Some(class);
            }
            Err(_elapsed) => {
                self.discard();
                outcome.failure = Some(ErrorClass::Timeout);
            }
        }
    }

    async fn exchange_inner(
        &mut self,
        request: Request<Body>,
        streaming: bool,
        started: Instant,
        outcome: &mut Outcome,
    ) -> Result<(), ErrorClass> {
        let response = self.send(request).await.map_err(|f| match f {
            SendFailure::Connect => ErrorClass::Connect,
            SendFailure::Reset => ErrorClass::Reset,
        })?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            // Read the (small) error body so the connection can be reused.
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    break;
                }
            }
            return Err(ErrorClass::from_status(status.as_u16()));
        }
        if streaming {
            read_stream(&mut body, started, outcome).await
        } else {
            read_whole(&mut body, outcome).await
        }
    }
}

/// Reads an SSE answer, timing each content token; a stream that does not reach `[DONE]` is cut.
async fn read_stream(
    body: &mut Incoming,
    started: Instant,
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
                    None => outcome.ttft = Some(now - started),
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
    #[derive(serde::Deserialize)]
    struct Answer {
        usage: Option<Usage>,
    }
    #[derive(serde::Deserialize)]
    struct Usage {
        completion_tokens: Option<u64>,
    }
    if let Ok(answer) = serde_json::from_slice::<Answer>(&collected) {
        outcome.output_tokens = answer.usage.and_then(|u| u.completion_tokens).unwrap_or(0);
    }
    Ok(())
}

//! The response body the forwarder sends: either a small local answer or an upstream body
//! streamed frame by frame.
//!
//! The body also owns what must live exactly as long as the response: the upstream attempt
//! (slots, pending count, breaker permit) and the request's metrics timer. They are released
//! when the body ends, fails or is dropped (client gone), and dropping the body drops the
//! upstream body too, which closes that upstream connection so the model server stops
//! generating. The attempt's verdict goes to the breaker: a clean end is a success, a broken
//! or stalled stream a failure, a client that left says nothing.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use prometheus_client::metrics::histogram::Histogram;
use tokio::time::{Instant, Sleep};

use crate::metrics::{RequestTimer, UpstreamErrorKind};
use crate::pipeline::attempt::{Attempt, Verdict};
use crate::upstream::backend::Backend;

/// Sent to SSE clients before an interrupted stream is aborted, so a client that reads events
/// sees why the stream ended without a final event.
const SSE_INTERRUPTED: &[u8] = b"data: {\"error\":{\"message\":\"upstream stream interrupted\",\"type\":\"server_error\",\"code\":\"stream_interrupted\"}}\n\n";

/// Lets the SSE error event be flushed before the abort; erroring at once can make the
/// connection close with the event still in a write buffer.
const SSE_FLUSH_GRACE: Duration = Duration::from_millis(20);

/// Why a streamed response was aborted. The client sees a reset stream or a cut connection.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("upstream body failed")]
    Upstream(#[source] hyper::Error),
    #[error("request timeout elapsed while streaming the response")]
    Timeout,
    #[error("the upstream sent nothing for longer than the idle timeout")]
    Idle,
}

pub struct ResponseBody {
    inner: Inner,
    /// Dropped (released) as soon as the body is over.
    held: Held,
}

enum Inner {
    Full(Option<Bytes>),
    Upstream(Box<UpstreamStream>),
    /// Sent the SSE error event; abort once the grace delay is over.
    Aborting(Pin<Box<Sleep>>, Option<StreamError>),
    Done,
}

struct UpstreamStream {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    backend: Arc<Backend>,
    sse: bool,
    /// Observed at the first data frame of a stream, then taken.
    ttft: Option<Histogram>,
}

/// Upstream streaming settings.
pub struct StreamOptions {
    /// The answer is an event stream: count TTFT, send an error event before an abort.
    pub sse: bool,
    pub deadline: Instant,
    pub idle: Duration,
    pub ttft: Histogram,
}

#[derive(Default)]
struct Held {
    timer: Option<RequestTimer>,
    attempt: Option<Attempt>,
}

impl Held {
    /// Ends the attempt with `verdict`; the time it waited on the backend goes to the timer.
    fn settle(&mut self, verdict: Verdict) {
        if let Some(attempt) = self.attempt.take() {
            let waited = attempt.settle(verdict);
            if let Some(timer) = &mut self.timer {
                timer.add_upstream_wait(waited);
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.settle(Verdict::Unknown);
    }
}

impl ResponseBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            inner: Inner::Full(Some(bytes.into())),
            held: Held::default(),
        }
    }

    pub fn empty() -> Self {
        Self {
            inner: Inner::Done,
            held: Held::default(),
        }
    }

    /// Streams `body` through, holding `attempt` until it ends and aborting at the deadline or
    /// after an idle gap. `sse` asks for the error event before an abort (only safe without a
    /// content-length).
    pub fn upstream(
        body: Incoming,
        backend: Arc<Backend>,
        attempt: Attempt,
        opts: StreamOptions,
    ) -> Self {
        Self {
            inner: Inner::Upstream(Box::new(UpstreamStream {
                body,
                deadline: Box::pin(tokio::time::sleep_until(opts.deadline)),
                idle: opts.idle,
                idle_timer: Box::pin(tokio::time::sleep(opts.idle)),
                backend,
                sse: opts.sse,
                ttft: opts.sse.then_some(opts.ttft),
            })),
            held: Held {
                timer: None,
                attempt: Some(attempt),
            },
        }
    }

    /// Keeps the request counted as in flight until this body is over.
    pub fn with_timer(mut self, timer: RequestTimer) -> Self {
        self.held.timer = Some(timer);
        self
    }

    fn finish(&mut self) {
        self.inner = Inner::Done;
        self.held.settle(Verdict::Success);
        self.held.timer = None;
    }

    fn fail(
        &mut self,
        err: StreamError,
        kind: UpstreamErrorKind,
        sse: bool,
        backend: &Backend,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        backend.metrics().count_error(kind);
        self.held.settle(Verdict::Failure);
        if sse {
            // Replacing `inner` drops the upstream body now; the slots were freed just above.
            self.inner = Inner::Aborting(Box::pin(tokio::time::sleep(SSE_FLUSH_GRACE)), Some(err));
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(SSE_INTERRUPTED)))));
        }
        self.inner = Inner::Done;
        self.held.timer = None;
        Poll::Ready(Some(Err(err)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let this = self.get_mut();
        match &mut this.inner {
            Inner::Full(bytes) => {
                let frame = bytes.take().map(|b| Ok(Frame::data(b)));
                if frame.is_none() {
                    this.finish();
                }
                Poll::Ready(frame)
            }
            Inner::Upstream(up) => match Pin::new(&mut up.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let now = Instant::now();
                    up.idle_timer.as_mut().reset(now + up.idle);
                    if frame.data_ref().is_some_and(|d| !d.is_empty())
                        && let Some(ttft) = up.ttft.take()
                        && let Some(timer) = &this.held.timer
                    {
                        ttft.observe(timer.started().elapsed().as_secs_f64());
                    }
                    // With a known length the server stops polling after the last byte, so
                    // a clean end must be seen here, not only at `Ready(None)`.
                    if up.body.is_end_stream() {
                        this.held.settle(Verdict::Success);
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(None) => {
                    this.finish();
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Err(e))) => {
                    let (sse, backend) = (up.sse, Arc::clone(&up.backend));
                    this.fail(
                        StreamError::Upstream(e),
                        UpstreamErrorKind::Io,
                        sse,
                        &backend,
                    )
                }
                Poll::Pending => {
                    let err = if up.deadline.as_mut().poll(cx).is_ready() {
                        StreamError::Timeout
                    } else {
                        ready!(up.idle_timer.as_mut().poll(cx));
                        StreamError::Idle
                    };
                    let (sse, backend) = (up.sse, Arc::clone(&up.backend));
                    this.fail(err, UpstreamErrorKind::Timeout, sse, &backend)
                }
            },
            Inner::Aborting(grace, err) => {
                ready!(grace.as_mut().poll(cx));
                let err = err.take().unwrap_or(StreamError::Timeout);
                this.inner = Inner::Done;
                this.held.timer = None;
                Poll::Ready(Some(Err(err)))
            }
            Inner::Done => {
                this.held.timer = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Upstream(up) => up.body.is_end_stream(),
            Inner::Aborting(..) => false,
            Inner::Done => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Upstream(up) => up.body.size_hint(),
            Inner::Aborting(..) => SizeHint::default(),
            Inner::Full(None) | Inner::Done => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn full_body_releases_timer_when_read() {
        let metrics = Metrics::new();
        let body = ResponseBody::full("hello").with_timer(metrics.start_request());
        assert!(
            metrics
                .encode()
                .unwrap()
                .contains("forwarder_inflight_requests 1")
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "hello");
        assert!(
            metrics
                .encode()
                .unwrap()
                .contains("forwarder_inflight_requests 0")
        );
    }

    #[test]
    fn dropped_body_releases_timer() {
        let metrics = Metrics::new();
        let body = ResponseBody::empty().with_timer(metrics.start_request());
        drop(body);
        let text = metrics.encode().unwrap();
        assert!(text.contains("forwarder_inflight_requests 0"), "{text}");
        assert!(
            text.contains("forwarder_request_duration_seconds_count 1"),
            "{text}"
        );
    }
}

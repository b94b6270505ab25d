//! The response body the forwarder sends: either a small local answer or an upstream body
//! streamed frame by frame.
//!
//! The body also owns what must live exactly as long as the response: the upstream slot and
//! the request's metrics timer. Both are released when the body ends, fails or is dropped
//! (client gone), and dropping the body drops the upstream body too, which closes that upstream
//! connection so the model server stops generating.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::admission::Slot;
use crate::backend::Backend;
use crate::metrics::{RequestTimer, UpstreamErrorKind};

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
    backend: Arc<Backend>,
    sse: bool,
}

#[derive(Default)]
struct Held {
    timer: Option<RequestTimer>,
    slot: Option<Slot>,
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

    /// Streams `body` through, holding `slot` until it ends and aborting at `deadline`.
    /// `sse` asks for the error event before an abort (only safe without a content-length).
    pub fn upstream(
        body: Incoming,
        backend: Arc<Backend>,
        sse: bool,
        deadline: Instant,
        slot: Slot,
    ) -> Self {
        Self {
            inner: Inner::Upstream(Box::new(UpstreamStream {
                body,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                backend,
                sse,
            })),
            held: Held {
                timer: None,
                slot: Some(slot),
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
        self.held = Held::default();
    }

    fn fail(
        &mut self,
        err: StreamError,
        kind: UpstreamErrorKind,
        sse: bool,
        backend: &Backend,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        backend.metrics().count_error(kind);
        if sse {
            // Replacing `inner` drops the upstream body now; the slot is freed with it.
            self.inner = Inner::Aborting(Box::pin(tokio::time::sleep(SSE_FLUSH_GRACE)), Some(err));
            self.held.slot = None;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(SSE_INTERRUPTED)))));
        }
        self.finish();
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
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
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
                    ready!(up.deadline.as_mut().poll(cx));
                    let (sse, backend) = (up.sse, Arc::clone(&up.backend));
                    this.fail(
                        StreamError::Timeout,
                        UpstreamErrorKind::Timeout,
                        sse,
                        &backend,
                    )
                }
            },
            Inner::Aborting(grace, err) => {
                ready!(grace.as_mut().poll(cx));
                let err = err.take().unwrap_or(StreamError::Timeout);
                this.finish();
                Poll::Ready(Some(Err(err)))
            }
            Inner::Done => {
                this.finish();
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

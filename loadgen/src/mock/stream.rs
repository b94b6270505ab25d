//! A streamed answer as a body that paces itself: each poll yields the next SSE event once it is
//! due, or waits on one reusable timer.
//!
//! No task and no channel per stream: hyper polls the body directly, and when the client leaves
//! hyper drops it, which stops generation at once and counts the request as cancelled.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body::{Body, Frame, SizeHint};
use rand::rngs::SmallRng;
use tokio::time::{Instant, Sleep};

use super::completion::{ChunkWriter, DONE, Identity};
use super::metrics::{Outcome, RequestGuard};
use super::plan::Plan;
use super::request::{Api, Usage};
use super::words;

/// The event a stream sends next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Role,
    Token(u32),
    Finish,
    Usage(Usage),
    Done,
    End,
}

pub struct TokenStream {
    chunks: ChunkWriter,
    plan: Plan,
    usage: Option<Usage>,
    rng: SmallRng,
    start: Instant,
    /// Boxed once so it can be re-armed for every token without allocating.
    timer: Pin<Box<Sleep>>,
    next: Next,
    guard: RequestGuard,
    /// A scheduled fault ends the stream after this many tokens, without `[DONE]`.
    cut_after: Option<u32>,
}

impl TokenStream {
    /// A stream whose schedule runs from `start`; `usage` is the usage event to end with, if the
    /// client asked for one.
    pub fn new(
        identity: &Identity,
        plan: Plan,
        usage: Option<Usage>,
        rng: SmallRng,
        start: Instant,
        guard: RequestGuard,
    ) -> TokenStream {
        let next = match identity.api {
            Api::Chat => Next::Role,
            Api::Text => Next::Token(0),
        };
        TokenStream {
            chunks: ChunkWriter::new(identity),
            timer: Box::pin(tokio::time::sleep_until(start + plan.token_due(0))),
            plan,
            usage,
            rng,
            start,
            next,
            guard,
            cut_after: None,
        }
    }

    /// Ends the stream early (without `[DONE]`) after `tokens` tokens, if given.
    pub fn cut_after(mut self, tokens: Option<u32>) -> TokenStream {
        self.cut_after = tokens;
        self
    }

    /// Ready once token `i` is due. Deadlines count from the stream's start, so a late wake-up
    /// shortens the next gap instead of shifting every later token.
    fn due(&mut self, cx: &mut Context<'_>, i: u32) -> Poll<()> {
        let deadline = self.start + self.plan.token_due(i);
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.poll_unpin(cx)
    }

    fn is_done(&self) -> bool {
        self.next == Next::End
    }
}

impl Body for TokenStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        let event = match this.next {
            Next::Role => {
                // The role opens the answer together with the first token, at TTFT.
                ready!(this.due(cx, 0));
                this.next = Next::Token(0);
                this.chunks.role()
            }
            Next::Token(i) if this.cut_after.is_some_and(|cut| i >= cut) => {
                this.next = Next::End;
                this.guard.finish(Outcome::Error);
                return Poll::Ready(None);
            }
            Next::Token(i) => {
                ready!(this.due(cx, i));
                this.next = if i + 1 < this.plan.tokens {
                    Next::Token(i + 1)
                } else {
                    Next::Finish
                };
                this.guard.tokens_sent(1);
                let word = words::pick(&mut this.rng);
                this.chunks.token(i == 0, word)
            }
            Next::Finish => {
                this.next = this.usage.map_or(Next::Done, Next::Usage);
                this.chunks.finish(this.plan.finish)
            }
            Next::Usage(usage) => {
                this.next = Next::Done;
                this.chunks.usage(usage)
            }
            Next::Done => {
                this.next = Next::End;
                this.guard.finish(Outcome::Ok);
                Bytes::from_static(DONE)
            }
            Next::End => return Poll::Ready(None),
        };
        Poll::Ready(Some(Ok(Frame::data(event))))
    }

    fn is_end_stream(&self) -> bool {
        self.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        if self.is_done() {
            SizeHint::with_exact(0)
        } else {
            SizeHint::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use http_body_util::BodyExt as _;
    use rand::SeedableRng;

    use super::*;
    use crate::mock::metrics::Metrics;
    use crate::mock::plan::Finish;

    fn plan(tokens: u32) -> Plan {
        Plan {
            fail: false,
            ttft: Duration::from_millis(100),
            tokens_per_s: 10.0,
            tokens,
            finish: Finish::Stop,
        }
    }

    fn stream(api: Api, tokens: u32, usage: bool, metrics: &Arc<Metrics>) -> TokenStream {
        let mut rng = SmallRng::seed_from_u64(5);
        let identity = Identity::new(api, "m".into(), &mut rng);
        let usage = usage.then(|| Usage::new(1, tokens));
        TokenStream::new(
            &identity,
            plan(tokens),
            usage,
            rng,
            Instant::now(),
            metrics.start(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn events_arrive_on_schedule_and_in_order() {
        let metrics = Arc::new(Metrics::default());
        let start = Instant::now();
        let mut body = stream(Api::Chat, 3, true, &metrics);
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            seen.push((start.elapsed(), String::from_utf8(data.to_vec()).unwrap()));
        }
        let ms = |n| Duration::from_millis(n);
        let times: Vec<Duration> = seen.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            times,
            [
                ms(100),
                ms(100),
                ms(200),
                ms(300),
                ms(300),
                ms(300),
                ms(300)
            ]
        );
        assert!(seen[0].1.contains(r#""role":"assistant""#));
        assert!(seen[1].1.contains(r#""content":""#) && !seen[1].1.contains(r#""content":" "#));
        assert!(seen[4].1.contains(r#""finish_reason":"stop""#));
        assert!(seen[5].1.contains(r#""completion_tokens":3"#));
        assert_eq!(seen[6].1, "data: [DONE]\n\n");
        assert!(body.is_end_stream());
        drop(body);
        let text = metrics.render();
        assert!(
            text.contains("outcome=\"ok\"} 1\n") && text.contains("mock_tokens_total 3\n"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn text_streams_have_no_role_event() {
        let metrics = Arc::new(Metrics::default());
        let body = stream(Api::Text, 2, false, &metrics);
        let all = body.collect().await.unwrap().to_bytes();
        let text = std::str::from_utf8(&all).unwrap();
        assert_eq!(text.matches("data: ").count(), 4, "{text}");
        assert!(!text.contains("role"));
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_midway_counts_as_cancelled() {
        let metrics = Arc::new(Metrics::default());
        let mut body = stream(Api::Chat, 50, false, &metrics);
        for _ in 0..3 {
            body.frame().await.unwrap().unwrap();
        }
        drop(body);
        let text = metrics.render();
        assert!(text.contains("outcome=\"cancelled\"} 1\n"), "{text}");
        assert!(text.contains("mock_tokens_total 2\n"), "{text}");
        assert!(text.contains("mock_inflight_requests 0\n"), "{text}");
    }
}

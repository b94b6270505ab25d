//! Reading one answer's body as it arrives, whatever carries it (the lean HTTP/1.1 client or
//! hyper's h2): an error status is drained, an SSE stream is timed token by token with the time
//! of the read that brought each piece, a whole JSON answer is searched for its token count.

use std::sync::LazyLock;

use memchr::memmem;
use tokio::time::Instant;

use super::sse::{Event, SseReader};
use crate::stats::{ErrorClass, Outcome};

/// Buffers a lane keeps from answer to answer, so reading one allocates nothing once they have
/// grown to the answers' size.
#[derive(Debug, Default)]
pub struct Scratch {
    sse: SseReader,
    whole: Vec<u8>,
}

/// What the body is read for, decided by the status and the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A non-2xx status: the body is drained so the connection can be reused, then the status
    /// decides the class.
    Refused(u16),
    Stream,
    Whole,
}

/// One answer being read.
pub struct Answer<'a> {
    kind: Kind,
    sent: Instant,
    outcome: &'a mut Outcome,
    scratch: &'a mut Scratch,
    last_token: Option<Instant>,
    tokens: u64,
    reported_tokens: Option<u64>,
    done: bool,
    broken: bool,
}

impl<'a> Answer<'a> {
    /// An answer with `status` to a request sent at `sent`; `streaming` when SSE was asked for.
    pub fn new(
        status: u16,
        streaming: bool,
        sent: Instant,
        outcome: &'a mut Outcome,
        scratch: &'a mut Scratch,
    ) -> Answer<'a> {
        let kind = match (status, streaming) {
            (200..=299, true) => Kind::Stream,
            (200..=299, false) => Kind::Whole,
            (status, _) => Kind::Refused(status),
        };
        scratch.sse.reset();
        scratch.whole.clear();
        Answer {
            kind,
            sent,
            outcome,
            scratch,
            last_token: None,
            tokens: 0,
            reported_tokens: None,
            done: false,
            broken: false,
        }
    }

    /// Takes the next piece of the body, which arrived at `now`.
    pub fn feed(&mut self, bytes: &[u8], now: Instant) {
        match self.kind {
            Kind::Refused(_) => {}
            Kind::Whole => self.scratch.whole.extend_from_slice(bytes),
            Kind::Stream => {
                let Answer {
                    sent,
                    outcome,
                    scratch,
                    last_token,
                    tokens,
                    reported_tokens,
                    done,
                    broken,
                    ..
                } = self;
                scratch.sse.feed(bytes, |event| match event {
                    Event::Token => {
                        *tokens += 1;
                        match *last_token {
                            None => outcome.ttft = Some(now - *sent),
                            Some(previous) => outcome
                                .inter_token_us
                                .push((now - previous).as_micros() as u64),
                        }
                        *last_token = Some(now);
                    }
                    Event::Meta { completion_tokens } => {
                        if completion_tokens.is_some() {
                            *reported_tokens = completion_tokens;
                        }
                    }
                    Event::Done => *done = true,
                    Event::Error => *broken = true,
                });
            }
        }
    }

    /// The stream carried an error event: the producer gave up, the answer has failed already.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// The class of an answer whose body broke off: a cut stream for a 2xx answer, a broken
    /// connection for an error status (its class would otherwise hide that).
    pub fn cut(&self) -> ErrorClass {
        match self.kind {
            Kind::Refused(_) => ErrorClass::Reset,
            Kind::Stream | Kind::Whole => ErrorClass::StreamCut,
        }
    }

    /// The body ended cleanly: the answer's verdict. A stream that did not reach `[DONE]` is cut;
    /// a whole answer's token count comes from its `usage` when present.
    pub fn finish(self) -> Result<(), ErrorClass> {
        match self.kind {
            Kind::Refused(status) => Err(ErrorClass::from_status(status)),
            Kind::Stream if self.broken || !self.done => Err(ErrorClass::StreamCut),
            Kind::Stream => {
                self.outcome.output_tokens = self.reported_tokens.unwrap_or(self.tokens);
                Ok(())
            }
            Kind::Whole => {
                self.outcome.output_tokens = completion_tokens(&self.scratch.whole).unwrap_or(0);
                Ok(())
            }
        }
    }
}

/// `usage.completion_tokens` of an OpenAI answer, found without parsing the whole JSON: this
/// runs once per request on the hot path, and answers can be large.
fn completion_tokens(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"completion_tokens\"";
    static FINDER: LazyLock<memmem::FinderRev<'static>> =
        LazyLock::new(|| memmem::FinderRev::new(KEY));
    let at = FINDER.rfind(body)? + KEY.len();
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
    use super::*;
    use std::time::Duration;

    #[test]
    fn completion_tokens_are_read_from_the_usage() {
        let body = br#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":5, "completion_tokens" : 17,"total_tokens":22}}"#;
        assert_eq!(completion_tokens(body), Some(17));
        assert_eq!(completion_tokens(b"{}"), None);
        assert_eq!(completion_tokens(b"not json"), None);
    }

    #[test]
    fn a_stream_is_timed_per_piece_and_must_reach_done() {
        let sent = Instant::now();
        let mut scratch = Scratch::default();
        let mut outcome = Outcome::default();
        let mut answer = Answer::new(200, true, sent, &mut outcome, &mut scratch);
        let token = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
        // The first token split across two reads counts when its second half arrives.
        answer.feed(&token[..10], sent + Duration::from_millis(5));
        answer.feed(&token[10..], sent + Duration::from_millis(7));
        answer.feed(token, sent + Duration::from_millis(10));
        answer.feed(b"data: [DONE]\n\n", sent + Duration::from_millis(11));
        assert_eq!(answer.finish(), Ok(()));
        assert_eq!(outcome.ttft, Some(Duration::from_millis(7)));
        assert_eq!(outcome.inter_token_us, vec![3000]);
        assert_eq!(outcome.output_tokens, 2);

        let mut outcome = Outcome::default();
        let mut answer = Answer::new(200, true, sent, &mut outcome, &mut scratch);
        answer.feed(token, sent);
        assert_eq!(answer.cut(), ErrorClass::StreamCut);
        assert_eq!(answer.finish(), Err(ErrorClass::StreamCut), "no [DONE]");
    }

    #[test]
    fn an_error_status_is_drained_and_classed_by_its_status() {
        let mut scratch = Scratch::default();
        let mut outcome = Outcome::default();
        let mut answer = Answer::new(503, true, Instant::now(), &mut outcome, &mut scratch);
        answer.feed(b"data: [DONE]\n\n", Instant::now());
        assert_eq!(answer.cut(), ErrorClass::Reset);
        assert_eq!(answer.finish(), Err(ErrorClass::Http5xx));
    }

    #[test]
    fn a_status_neither_2xx_nor_4xx_nor_5xx_is_http_other() {
        // A redirect or a "not modified" is no success for a chat request, and no 4xx/5xx
        // either: it must land in its own class, streamed or not, whatever its body says.
        for status in [101, 199, 301, 302, 304, 399] {
            for streaming in [true, false] {
                let mut scratch = Scratch::default();
                let mut outcome = Outcome::default();
                let mut answer = Answer::new(
                    status,
                    streaming,
                    Instant::now(),
                    &mut outcome,
                    &mut scratch,
                );
                answer.feed(b"data: [DONE]\n\n", Instant::now());
                assert_eq!(
                    answer.finish(),
                    Err(ErrorClass::HttpOther),
                    "{status} streaming={streaming}"
                );
                assert_eq!(outcome.output_tokens, 0, "{status}: no tokens counted");
            }
        }
        // The edges of the neighbouring classes stay theirs.
        assert_eq!(ErrorClass::from_status(400), ErrorClass::Http4xx);
        assert_eq!(ErrorClass::from_status(599), ErrorClass::Http5xx);
        assert_eq!(ErrorClass::from_status(600), ErrorClass::HttpOther);
    }

    #[test]
    fn a_whole_answer_in_pieces_gives_its_usage() {
        let mut scratch = Scratch::default();
        let mut outcome = Outcome::default();
        let mut answer = Answer::new(200, false, Instant::now(), &mut outcome, &mut scratch);
        answer.feed(b"{\"usage\":{\"completion_", Instant::now());
        answer.feed(b"tokens\":42}}", Instant::now());
        assert_eq!(answer.finish(), Ok(()));
        assert_eq!(outcome.output_tokens, 42);
    }
}

//! Incremental Server-Sent Events reader for OpenAI-style streams: finds content tokens, the
//! `[DONE]` marker, and error events, however the bytes are split across frames.

use std::borrow::Cow;

use serde::Deserialize;

/// What one complete SSE event meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A chunk carrying (non-empty) generated text: one token.
    Token,
    /// A chunk without text (role, finish reason, usage); `usage` when it reports the count.
    Meta { completion_tokens: Option<u64> },
    /// `data: [DONE]`: the stream ended cleanly.
    Done,
    /// An error object inside the stream: the producer gave up mid-answer.
    Error,
}

/// Feeds on body bytes, yields events.
#[derive(Debug, Default)]
pub struct SseReader {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
}

impl SseReader {
    /// Forgets any partial line or event, keeping the buffers for the next stream.
    pub fn reset(&mut self) {
        self.line.clear();
        self.data.clear();
        self.has_data = false;
    }

    /// Consumes a chunk of the body, calling `on_event` for each event it completes.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_event: impl FnMut(Event)) {
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            let (head, rest) = bytes.split_at(newline);
            bytes = &rest[1..];
            if self.line.is_empty() {
                self.take_line(head, &mut on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.take_line(&line, &mut on_event);
                line.clear();
                self.line = line;
            }
        }
        self.line.extend_from_slice(bytes);
    }

    fn take_line(&mut self, line: &[u8], on_event: &mut impl FnMut(Event)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                on_event(classify(&self.data));
                self.data.clear();
                self.has_data = false;
            }
            return;
        }
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        // Comments (`:`), `event:`, `id:` and `retry:` lines carry nothing we measure.
    }
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    completion_tokens: Option<u64>,
}

fn classify(data: &[u8]) -> Event {
    if data == b"[DONE]" {
        return Event::Done;
    }
    let Ok(chunk) = serde_json::from_slice::<Chunk>(data) else {
        return Event::Meta {
            completion_tokens: None,
        };
    };
    if chunk.error.is_some() {
        return Event::Error;
    }
    let has_text = chunk.choices.iter().any(|c| {
        let delta = c.delta.as_ref().and_then(|d| d.content.as_deref());
        delta.or(c.text.as_deref()).is_some_and(|t| !t.is_empty())
    });
    if has_text {
        Event::Token
    } else {
        Event::Meta {
            completion_tokens: chunk.usage.and_then(|u| u.completion_tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        ": keep-alive comment\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\" Hello\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\" world\"}}]}\r\n\r\n",
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"completion_tokens\":2}}\n\n",
        "data: [DONE]\n\n",
    );

    fn events_split_every(n: usize) -> Vec<Event> {
        let mut reader = SseReader::default();
        let mut events = Vec::new();
        for piece in STREAM.as_bytes().chunks(n) {
            reader.feed(piece, |e| events.push(e));
        }
        events
    }

    #[test]
    fn tokens_and_done_are_found_however_the_bytes_are_split() {
        let whole = events_split_every(STREAM.len());
        assert_eq!(
            whole,
            vec![
                Event::Meta {
                    completion_tokens: None
                },
                Event::Token,
                Event::Token,
                Event::Meta {
                    completion_tokens: Some(2)
                },
                Event::Done,
            ]
        );
        for n in [1, 2, 3, 7, 64] {
            assert_eq!(events_split_every(n), whole, "split every {n} bytes");
        }
    }

    #[test]
    fn error_events_and_legacy_completions_are_recognised() {
        let mut reader = SseReader::default();
        let mut events = Vec::new();
        reader.feed(b"data: {\"choices\":[{\"text\":\"hi\"}]}\n\n", |e| {
            events.push(e)
        });
        reader.feed(
            b"data: {\"error\":{\"message\":\"upstream died\"}}\n\n",
            |e| events.push(e),
        );
        assert_eq!(events, vec![Event::Token, Event::Error]);
    }
}

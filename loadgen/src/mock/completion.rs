//! Building answers in OpenAI's shapes: SSE chunks for streams, whole `chat.completion` /
//! `text_completion` objects otherwise, and error objects.
//!
//! Stream chunks are spliced from a per-request prefix (id, created, model — JSON-escaped once)
//! and fixed tails into one reused buffer, so a token costs a few memcpys and no serialisation.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use rand::Rng;
use serde::Serialize;

use super::plan::Finish;
use super::request::{Api, Usage};

/// The last event of every stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// Enough for several chunks. Frames are written and dropped quickly, so `reserve` usually finds
/// the buffer unshared and reuses it instead of allocating.
const CHUNK_BUFFER: usize = 1024;

/// What an answer is called: id, creation time, model.
pub struct Identity {
    pub api: Api,
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl Identity {
    pub fn new<R: Rng + ?Sized>(api: Api, model: String, rng: &mut R) -> Identity {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let prefix = match api {
            Api::Chat => "chatcmpl-",
            Api::Text => "cmpl-",
        };
        let mut id = String::with_capacity(prefix.len() + 24);
        id.push_str(prefix);
        id.extend((0..24).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])));
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Identity {
            api,
            id,
            created,
            model,
        }
    }
}

/// Writes one stream's SSE events, each `data: <json>\n\n`, each its own `Bytes`.
pub struct ChunkWriter {
    api: Api,
    /// `data: {"id":...,"model":...,"choices":[` — everything before the choice.
    prefix: Bytes,
    buf: BytesMut,
}

impl ChunkWriter {
    pub fn new(identity: &Identity) -> ChunkWriter {
        let object = match identity.api {
            Api::Chat => "chat.completion.chunk",
            Api::Text => "text_completion",
        };
        let mut prefix = Vec::with_capacity(96 + identity.model.len());
        prefix.extend_from_slice(b"data: {\"id\":\"");
        prefix.extend_from_slice(identity.id.as_bytes());
        prefix.extend_from_slice(b"\",\"object\":\"");
        prefix.extend_from_slice(object.as_bytes());
        prefix.extend_from_slice(b"\",\"created\":");
        prefix.extend_from_slice(identity.created.to_string().as_bytes());
        prefix.extend_from_slice(b",\"model\":");
        // The model name is the client's text: the only part that may need escaping.
        let _ = serde_json::to_writer(&mut prefix, &identity.model);
        prefix.extend_from_slice(b",\"choices\":[");
        ChunkWriter {
            api: identity.api,
            prefix: prefix.into(),
            buf: BytesMut::with_capacity(CHUNK_BUFFER),
        }
    }

    /// The chat stream's opening event: the assistant role with empty content.
    pub fn role(&mut self) -> Bytes {
        self.event(&[br#"{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#])
    }

    /// One token. `word` must need no JSON escaping (the vocabulary guarantees it); tokens after
    /// the first carry their leading space, as real tokenizers' do.
    pub fn token(&mut self, first: bool, word: &str) -> Bytes {
        let space: &[u8] = if first { b"" } else { b" " };
        let (head, tail): (&[u8], &[u8]) = match self.api {
            Api::Chat => (
                br#"{"index":0,"delta":{"content":""#,
                br#""},"logprobs":null,"finish_reason":null}]}"#,
            ),
            Api::Text => (
                br#"{"text":""#,
                br#"","index":0,"logprobs":null,"finish_reason":null}]}"#,
            ),
        };
        self.event(&[head, space, word.as_bytes(), tail])
    }

    /// The event that closes the choice with its finish reason.
    pub fn finish(&mut self, finish: Finish) -> Bytes {
        let head: &[u8] = match self.api {
            Api::Chat => br#"{"index":0,"delta":{},"logprobs":null,"finish_reason":""#,
            Api::Text => br#"{"text":"","index":0,"logprobs":null,"finish_reason":""#,
        };
        self.event(&[head, finish.as_str().as_bytes(), br#""}]}"#])
    }

    /// The usage event sent when the client asked for `stream_options.include_usage`.
    pub fn usage(&mut self, usage: Usage) -> Bytes {
        let mut counts = String::with_capacity(80);
        let _ = write!(
            counts,
            r#"],"usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}}}}"#,
            usage.prompt_tokens, usage.completion_tokens, usage.total_tokens
        );
        // The prefix opened the choices array; usage chunks have none, so close it at once.
        self.event(&[counts.as_bytes()])
    }

    fn event(&mut self, parts: &[&[u8]]) -> Bytes {
        let len = self.prefix.len() + parts.iter().map(|p| p.len()).sum::<usize>() + 2;
        self.buf.reserve(len);
        self.buf.extend_from_slice(&self.prefix);
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        self.buf.extend_from_slice(b"\n\n");
        self.buf.split().freeze()
    }
}

/// A whole non-streamed answer.
pub fn full_answer(identity: &Identity, content: &str, finish: Finish, usage: Usage) -> Bytes {
    #[derive(Serialize)]
    struct Answer<'a, C> {
        id: &'a str,
        object: &'static str,
        created: u64,
        model: &'a str,
        choices: [C; 1],
        usage: Usage,
    }
    #[derive(Serialize)]
    struct ChatChoice<'a> {
        index: u32,
        message: Message<'a>,
        logprobs: Option<()>,
        finish_reason: &'static str,
    }
    #[derive(Serialize)]
    struct Message<'a> {
        role: &'static str,
        content: &'a str,
    }
    #[derive(Serialize)]
    struct TextChoice<'a> {
        text: &'a str,
        index: u32,
        logprobs: Option<()>,
        finish_reason: &'static str,
    }

    let finish_reason = finish.as_str();
    let json = match identity.api {
        Api::Chat => serde_json::to_vec(&Answer {
            id: &identity.id,
            object: "chat.completion",
            created: identity.created,
            model: &identity.model,
            choices: [ChatChoice {
                index: 0,
                message: Message {
                    role: "assistant",
                    content,
                },
                logprobs: None,
                finish_reason,
            }],
            usage,
        }),
        Api::Text => serde_json::to_vec(&Answer {
            id: &identity.id,
            object: "text_completion",
            created: identity.created,
            model: &identity.model,
            choices: [TextChoice {
                text: content,
                index: 0,
                logprobs: None,
                finish_reason,
            }],
            usage,
        }),
    };
    // Serialising plain strings and numbers into memory cannot fail.
    json.unwrap_or_default().into()
}

/// An OpenAI error object: `{"error":{"message":..,"type":..,"param":null,"code":..}}`.
pub fn error_body(message: &str, kind: &str, code: Option<&str>) -> Bytes {
    #[derive(Serialize)]
    struct Envelope<'a> {
        error: Error<'a>,
    }
    #[derive(Serialize)]
    struct Error<'a> {
        message: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        param: Option<&'a str>,
        code: Option<&'a str>,
    }
    let envelope = Envelope {
        error: Error {
            message,
            kind,
            param: None,
            code,
        },
    };
    serde_json::to_vec(&envelope).unwrap_or_default().into()
}

/// `GET /v1/models`: the one model the mock claims to serve.
pub const MODELS: &str = r#"{"object":"list","data":[{"id":"mock-llm","object":"model","created":0,"owned_by":"loadgen"}]}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use serde_json::{Value, json};

    fn identity(api: Api, model: &str) -> Identity {
        Identity::new(api, model.to_owned(), &mut SmallRng::seed_from_u64(1))
    }

    fn parse_event(event: &Bytes) -> Value {
        let text = std::str::from_utf8(event).unwrap();
        let json = text
            .strip_prefix("data: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap();
        assert!(!json.contains('\n'), "{text:?}");
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn chat_chunks_have_openai_shape() {
        let id = identity(Api::Chat, "m\"x");
        assert!(id.id.starts_with("chatcmpl-") && id.id.len() == 33);
        let mut w = ChunkWriter::new(&id);
        let head = json!({"id": id.id, "object": "chat.completion.chunk", "created": id.created, "model": "m\"x"});
        let with = |choices: Value| {
            let mut v = head.clone();
            v["choices"] = choices;
            v
        };
        assert_eq!(
            parse_event(&w.role()),
            with(
                json!([{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}])
            )
        );
        assert_eq!(
            parse_event(&w.token(true, "hello")),
            with(
                json!([{"index":0,"delta":{"content":"hello"},"logprobs":null,"finish_reason":null}])
            )
        );
        assert_eq!(
            parse_event(&w.token(false, "world"))["choices"][0]["delta"]["content"],
            " world"
        );
        assert_eq!(
            parse_event(&w.finish(Finish::Length)),
            with(json!([{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]))
        );
        let mut usage = with(json!([]));
        usage["usage"] = json!({"prompt_tokens":3,"completion_tokens":2,"total_tokens":5});
        assert_eq!(parse_event(&w.usage(Usage::new(3, 2))), usage);
    }

    #[test]
    fn text_chunks_have_legacy_shape() {
        let id = identity(Api::Text, "m");
        assert!(id.id.starts_with("cmpl-"));
        let mut w = ChunkWriter::new(&id);
        let token = parse_event(&w.token(false, "word"));
        assert_eq!(token["object"], "text_completion");
        assert_eq!(
            token["choices"],
            json!([{"text":" word","index":0,"logprobs":null,"finish_reason":null}])
        );
        let finish = parse_event(&w.finish(Finish::Stop));
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn many_chunks_reuse_the_buffer_without_mixing_up() {
        let mut w = ChunkWriter::new(&identity(Api::Chat, "m"));
        let kept: Vec<Bytes> = (0..100).map(|_| w.token(false, "abc")).collect();
        for event in &kept {
            assert_eq!(parse_event(event)["choices"][0]["delta"]["content"], " abc");
        }
    }

    #[test]
    fn full_answers_have_openai_shape() {
        let id = identity(Api::Chat, "m");
        let v: Value =
            serde_json::from_slice(&full_answer(&id, "a b", Finish::Stop, Usage::new(4, 2)))
                .unwrap();
        assert_eq!(
            v,
            json!({"id": id.id, "object": "chat.completion", "created": id.created, "model": "m",
                "choices": [{"index":0,"message":{"role":"assistant","content":"a b"},"logprobs":null,"finish_reason":"stop"}],
                "usage": {"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}})
        );
        let id = identity(Api::Text, "m");
        let v: Value =
            serde_json::from_slice(&full_answer(&id, "a", Finish::Length, Usage::new(1, 1)))
                .unwrap();
        assert_eq!(v["object"], "text_completion");
        assert_eq!(
            v["choices"],
            json!([{"text":"a","index":0,"logprobs":null,"finish_reason":"length"}])
        );
    }

    #[test]
    fn error_and_models_bodies_are_json() {
        let v: Value =
            serde_json::from_slice(&error_body("nope", "invalid_request_error", None)).unwrap();
        assert_eq!(
            v,
            json!({"error":{"message":"nope","type":"invalid_request_error","param":null,"code":null}})
        );
        let v: Value = serde_json::from_str(MODELS).unwrap();
        assert_eq!(v["data"][0]["id"], "mock-llm");
    }
}

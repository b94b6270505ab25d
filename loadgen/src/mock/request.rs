//! Reading completion requests: only the fields the mock honours, plus a prompt-size estimate
//! for `usage`. Prompt text is counted while parsing and never copied.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The model named in answers when the request names none.
pub const DEFAULT_MODEL: &str = "mock-llm";

/// Which OpenAI endpoint a request came in on; it decides the answer's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `/v1/chat/completions`
    Chat,
    /// `/v1/completions` (legacy text completions)
    Text,
}

/// What one request asks of the mock.
#[derive(Clone, Debug, PartialEq)]
pub struct Ask {
    pub api: Api,
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<u32>,
    pub prompt_tokens: u32,
}

/// Why a request body was refused; the text goes to the client in an OpenAI error object.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("We could not parse the JSON body of your request: {0}")]
    Json(#[from] serde_json::Error),
    #[error("'{0}' is a required property")]
    Missing(&'static str),
    #[error("'messages' must contain at least one message")]
    NoMessages,
    #[error("'{0}' must be at least 1")]
    ZeroMaxTokens(&'static str),
}

impl Ask {
    pub fn parse(api: Api, body: &[u8]) -> Result<Ask, AskError> {
        let fields: Body = serde_json::from_slice(body)?;
        let prompt_chars = match api {
            Api::Chat => {
                let messages = fields
                    .messages
                    .as_ref()
                    .ok_or(AskError::Missing("messages"))?;
                if messages.is_empty() {
                    return Err(AskError::NoMessages);
                }
                messages
                    .iter()
                    .fold(0usize, |sum, m| sum.saturating_add(m.content.0))
            }
            Api::Text => fields.prompt.as_ref().ok_or(AskError::Missing("prompt"))?.0,
        };
        // The newer name wins: OpenAI deprecated max_tokens in its favour.
        let max_tokens = match (fields.max_completion_tokens, fields.max_tokens) {
            (Some(n), _) => Some(("max_completion_tokens", n)),
            (None, Some(n)) => Some(("max_tokens", n)),
            (None, None) => None,
        };
        let max_tokens = match max_tokens {
            Some((name, 0)) => return Err(AskError::ZeroMaxTokens(name)),
            Some((_, n)) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            None => None,
        };
        Ok(Ask {
            api,
            model: fields
                .model
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            stream: fields.stream.unwrap_or(false),
            include_usage: fields
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            max_tokens,
            prompt_tokens: estimate_tokens(prompt_chars),
        })
    }
}

/// About four characters per token, the usual rule of thumb; never zero.
fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX).max(1)
}

/// Token counts reported in `usage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }
}

/// Both endpoints' bodies in one shape: each reads its own prompt field and ignores the other.
/// (A flattened shared part would make serde buffer every unknown field of every request.)
#[derive(Deserialize)]
struct Body {
    model: Option<String>,
    stream: Option<bool>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    stream_options: Option<StreamOptions>,
    messages: Option<Vec<Message>>,
    prompt: Option<TextSize>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: TextSize,
}

/// The number of characters of text in a JSON value: a string, `null`, an array of strings or of
/// content parts (`{"type":"text","text":"..."}`), nested as deep as the client likes.
#[derive(Default)]
struct TextSize(usize);

impl<'de> Deserialize<'de> for TextSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextSizeVisitor)
    }
}

struct TextSizeVisitor;

impl<'de> Visitor<'de> for TextSizeVisitor {
    type Value = TextSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("text, a list of texts or content parts")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TextSize, E> {
        Ok(TextSize(v.chars().count()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TextSize, E> {
        Ok(TextSize(0))
    }

    fn visit_none<E: de::Error>(self) -> Result<TextSize, E> {
        Ok(TextSize(0))
    }

    // Token-id prompts and other scalars carry no text we could count.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TextSize, E> {
        Ok(TextSize(0))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TextSize, E> {
        Ok(TextSize(0))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TextSize, E> {
        Ok(TextSize(0))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TextSize, E> {
        Ok(TextSize(0))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextSize, A::Error> {
        let mut total = 0usize;
        while let Some(TextSize(n)) = seq.next_element()? {
            total = total.saturating_add(n);
        }
        Ok(TextSize(total))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextSize, A::Error> {
        let mut total = 0usize;
        while let Some(TextKey(is_text)) = map.next_key()? {
            if is_text {
                total = total.saturating_add(map.next_value::<TextSize>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(TextSize(total))
    }
}

/// Whether a content part's key holds its text.
struct TextKey(bool);

impl<'de> Deserialize<'de> for TextKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = TextKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextKey, E> {
                Ok(TextKey(v == "text"))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<Ask, AskError> {
        Ask::parse(Api::Chat, body.as_bytes())
    }

    #[test]
    fn chat_fields_are_honoured() {
        let ask = chat(
            r#"{"model":"m","messages":[{"role":"user","content":"hello there, mock!"}],
                "stream":true,"max_tokens":9,"stream_options":{"include_usage":true},
                "temperature":0.2}"#,
        )
        .unwrap();
        assert_eq!(
            ask,
            Ask {
                api: Api::Chat,
                model: "m".into(),
                stream: true,
                include_usage: true,
                max_tokens: Some(9),
                prompt_tokens: 5, // 18 chars
            }
        );
    }

    #[test]
    fn defaults_when_fields_are_absent() {
        let ask = chat(r#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(ask.model, DEFAULT_MODEL);
        assert!(!ask.stream && !ask.include_usage);
        assert_eq!((ask.max_tokens, ask.prompt_tokens), (None, 1));
        let ask = chat(r#"{"messages":[{"role":"user","content":"hi"}],"stream":null,"model":""}"#);
        assert_eq!(ask.unwrap().model, DEFAULT_MODEL);
    }

    #[test]
    fn max_completion_tokens_wins() {
        let ask =
            chat(r#"{"messages":[{"content":"x"}],"max_tokens":50,"max_completion_tokens":5}"#);
        assert_eq!(ask.unwrap().max_tokens, Some(5));
        let err = chat(r#"{"messages":[{"content":"x"}],"max_tokens":0}"#).unwrap_err();
        assert!(err.to_string().contains("max_tokens"));
    }

    #[test]
    fn prompt_text_is_counted_in_every_shape() {
        let ask = chat(
            r#"{"messages":[{"role":"system","content":"abcd"},
                {"role":"user","content":[{"type":"text","text":"efgh"},{"type":"image_url","image_url":{"url":"zzzzzzzzzzzz"}}]},
                {"role":"assistant","content":null,"tool_calls":[]},
                {"role":"user","content":"系统繁忙"}]}"#,
        )
        .unwrap();
        assert_eq!(ask.prompt_tokens, 3); // 4 + 4 + 4 chars
        let text = Ask::parse(
            Api::Text,
            br#"{"prompt":["abcdefgh","ijkl"],"stream":true}"#,
        );
        assert_eq!(text.unwrap().prompt_tokens, 3);
    }

    #[test]
    fn bad_bodies_are_refused() {
        assert!(matches!(chat("{not json"), Err(AskError::Json(_))));
        assert!(matches!(chat(""), Err(AskError::Json(_))));
        assert!(matches!(
            chat(r#"{"model":"m"}"#),
            Err(AskError::Missing("messages"))
        ));
        assert!(matches!(
            chat(r#"{"messages":"hi"}"#),
            Err(AskError::Json(_))
        ));
        assert!(matches!(
            chat(r#"{"messages":[]}"#),
            Err(AskError::NoMessages)
        ));
        assert!(matches!(
            chat(r#"{"messages":[1]}"#),
            Err(AskError::Json(_))
        ));
        assert!(matches!(
            chat(r#"{"messages":[{}],"stream":"yes"}"#),
            Err(AskError::Json(_))
        ));
        assert!(matches!(chat("[1,2]"), Err(AskError::Json(_))));
        assert!(matches!(
            Ask::parse(Api::Text, b"{}"),
            Err(AskError::Missing("prompt"))
        ));
    }
}

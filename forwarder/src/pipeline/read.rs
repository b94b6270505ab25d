//! Reads a client's `/v1/*` request into a replayable form: the body buffered (bounded, gzip
//! decoded), JSON checked, and what routing and caching need picked out of it (user id,
//! `stream`, the normalised cache key). Chat requests are small, and a buffered body is what
//! makes retries possible.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::{Instant, timeout_at};

use crate::pipeline::answer::ResponseBody;
use crate::pipeline::compression::{self, DecodeError};
use crate::pipeline::errors::{ErrorType, error_response};
use crate::upstream::client::Outgoing;

/// Longer user ids are ignored rather than hashed: nobody's user id is a kilobyte.
const MAX_USER_ID: usize = 256;

/// A client request, read and checked.
#[derive(Debug)]
pub struct ClientRequest {
    pub method: Method,
    pub path: PathAndQuery,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub user: Option<String>,
    /// The body's `model` field, for per-model routing.
    pub model: Option<String>,
    pub stream: bool,
    /// Path plus the body with sorted keys and without `user`: set for non-streaming JSON
    /// POSTs, the ones the cache may answer.
    pub cache_key: Option<Bytes>,
}

impl ClientRequest {
    /// What goes upstream of this request.
    pub fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

pub struct ReadOptions<'a> {
    pub max_body: usize,
    pub user_header: &'a HeaderName,
    /// A client that has not sent its whole body by then gets 408.
    pub deadline: Instant,
    /// Build cache keys (the cache is on): the body is then parsed fully, not just peeked at.
    pub cache_keys: bool,
}

/// What the forwarder needs from a JSON body.
#[derive(Debug, Default)]
struct Fields {
    user: Option<String>,
    model: Option<String>,
    stream: bool,
    cache_key: Option<Bytes>,
}

/// The fields routing needs, borrowed; the rest of the body is checked but not kept.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
}

/// Checks the body is a JSON object and picks out its fields. With `cache_path` the whole
/// body becomes a `Value` for the cache key; without, a borrowed peek is much cheaper.
fn inspect(body: &[u8], cache_path: Option<&PathAndQuery>) -> Result<Fields, Rejection> {
    let invalid = |e: serde_json::Error| {
        bad_request(
            "invalid_json",
            &format!("the request body is not valid JSON: {e}"),
        )
    };
    // Serde reads a struct from an array too; an OpenAI request is always an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(bad_request(
            "invalid_json",
            "the request body must be a JSON object",
        ));
    }
    let user_ok = |u: &str| !u.is_empty() && u.len() <= MAX_USER_ID;
    let Some(path) = cache_path else {
        let peek: Peek<'_> = serde_json::from_slice(body).map_err(invalid)?;
        return Ok(Fields {
            user: peek.user.filter(|u| user_ok(u)).map(Cow::into_owned),
            model: peek.model.map(Cow::into_owned),
            stream: peek.stream.unwrap_or(false),
            cache_key: None,
        });
    };
    let Value::Object(mut map) = serde_json::from_slice::<Value>(body).map_err(invalid)? else {
        return Err(bad_request(
            "invalid_json",
            "the request body must be a JSON object",
        ));
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
    let user = text("user").filter(|u| user_ok(u));
    let model = text("model");
    let stream = map.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let cache_key = (!stream).then(|| {
        map.remove("user");
        let mut key = Vec::with_capacity(body.len() + path.as_str().len() + 1);
        key.extend_from_slice(path.as_str().as_bytes());
        key.push(b'\n');
        canonical(&Value::Object(map), &mut key);
        Bytes::from(key)
    });
    Ok(Fields {
        user,
        model,
        stream,
        cache_key,
    })
}

/// The error answer for a request that cannot be forwarded (boxed: it is the rare path).
pub type Rejection = Box<Response<ResponseBody>>;

/// Reads the request; a problem becomes the OpenAI-style error answer to send back.
pub async fn read(
    req: Request<Incoming>,
    opts: &ReadOptions<'_>,
) -> Result<ClientRequest, Rejection> {
    let (mut parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > opts.max_body as u64) {
        return Err(too_large(opts.max_body));
    }
    let raw = match timeout_at(opts.deadline, Limited::new(body, opts.max_body).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
            return Err(too_large(opts.max_body));
        }
        Ok(Err(_)) => return Err(bad_request("body_read_error", "the request body broke off")),
        Err(_) => {
            return Err(Box::new(error_response(
                StatusCode::REQUEST_TIMEOUT,
                ErrorType::InvalidRequest,
                "request_timeout",
                "the request body did not arrive in time",
            )));
        }
    };
    let body = decode(&mut parts.headers, raw, opts.max_body)?;

    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let fields = if parts.method == Method::POST && !body.is_empty() && is_json(&parts.headers) {
        inspect(&body, opts.cache_keys.then_some(&path))?
    } else {
        Fields::default()
    };
    let user = header_user(&parts.headers, opts.user_header).or(fields.user);
    if declared.is_some() || !body.is_empty() {
        parts.headers.insert(CONTENT_LENGTH, body.len().into());
    }
    Ok(ClientRequest {
        method: parts.method,
        path,
        headers: parts.headers,
        body,
        user,
        model: fields.model,
        stream: fields.stream,
        cache_key: fields.cache_key,
    })
}

/// A request that arrived as a message (WebSocket): `body` is the chat request JSON, `headers`
/// those of the upgrade request (user id, keys).
pub fn from_message(
    body: Bytes,
    headers: &HeaderMap,
    path: PathAndQuery,
    opts: &ReadOptions<'_>,
) -> Result<ClientRequest, Rejection> {
    if body.len() > opts.max_body {
        return Err(too_large(opts.max_body));
    }
    let fields = inspect(&body, opts.cache_keys.then_some(&path))?;
    let mut headers = headers.clone();
    // The upgrade request's own framing headers mean nothing for a chat request.
    for name in [
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "accept-encoding",
    ] {
        headers.remove(name);
    }
    headers.insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(CONTENT_LENGTH, body.len().into());
    Ok(ClientRequest {
        method: Method::POST,
        path,
        user: header_user(&headers, opts.user_header).or(fields.user),
        headers,
        body,
        model: fields.model,
        stream: fields.stream,
        cache_key: fields.cache_key,
    })
}

fn header_user(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty() && value.len() <= MAX_USER_ID).then(|| value.to_owned())
}

/// JSON, or no content type at all (curl -d sends form-encoded by default, but means JSON).
fn is_json(headers: &HeaderMap) -> bool {
    match headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json")
                || ct.starts_with("application/x-www-form-urlencoded")
                || ct.contains("+json")
        }
    }
}

fn decode(headers: &mut HeaderMap, raw: Bytes, limit: usize) -> Result<Bytes, Rejection> {
    let Some(encoding) = headers.get(CONTENT_ENCODING) else {
        return Ok(raw);
    };
    let encoding = encoding.to_str().unwrap_or("").trim().to_ascii_lowercase();
    let body = match encoding.as_str() {
        "identity" | "" => raw,
        "gzip" | "x-gzip" => compression::gunzip(&raw, limit).map_err(|e| match e {
            DecodeError::TooLarge(n) => too_large(n),
            DecodeError::Invalid => bad_request("invalid_encoding", "the gzip body is corrupt"),
        })?,
        _ => {
            return Err(Box::new(error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorType::InvalidRequest,
                "unsupported_encoding",
                "only gzip request bodies are accepted",
            )));
        }
    };
    headers.remove(CONTENT_ENCODING);
    Ok(body)
}

/// JSON with object keys sorted at every level, so `{"a":1,"b":2}` and `{"b":2,"a":1}` are
/// one cache entry.
fn canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut *out, key);
                out.push(b':');
                canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        leaf => {
            let _ = serde_json::to_writer(&mut *out, leaf);
        }
    }
}

fn too_large(limit: usize) -> Rejection {
    Box::new(error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorType::InvalidRequest,
        "request_too_large",
        &format!("the request body is larger than {limit} bytes"),
    ))
}

fn bad_request(code: &str, message: &str) -> Rejection {
    Box::new(error_response(
        StatusCode::BAD_REQUEST,
        ErrorType::InvalidRequest,
        code,
        message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let a: Value = serde_json::from_str(r#"{"b":[{"y":1,"x":2}],"a":"s"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"s","b":[{"x":2,"y":1}]}"#).unwrap();
        let (mut ka, mut kb) = (Vec::new(), Vec::new());
        canonical(&a, &mut ka);
        canonical(&b, &mut kb);
        assert_eq!(ka, kb);
        assert_eq!(ka, br#"{"a":"s","b":[{"x":2,"y":1}]}"#);
    }

    #[test]
    fn peek_and_full_parse_agree() {
        let body = br#" {"model":"m","user":"u1","stream":false,"messages":[{"role":"user","content":"x"}]}"#;
        let Ok(peek) = inspect(body, None) else {
            panic!("peek")
        };
        let path = PathAndQuery::from_static("/v1/chat/completions");
        let Ok(full) = inspect(body, Some(&path)) else {
            panic!("full")
        };
        assert_eq!(
            (peek.user.as_deref(), peek.model.as_deref()),
            (Some("u1"), Some("m"))
        );
        assert_eq!(
            (full.user, full.model, full.stream),
            (peek.user, peek.model, false)
        );
        assert!(peek.cache_key.is_none());
        let key = full.cache_key.unwrap();
        assert!(
            !key.windows(4).any(|w| w == b"\"u1\""),
            "user is not part of the key"
        );
        for bad in [
            &b"[1,2]"[..],
            b"{\"model\": ",
            b"\"text\"",
            b"{\"stream\":\"yes\"}",
        ] {
            assert!(
                inspect(bad, None).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(is_json(&h));
        h.insert(
            CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&h));
        h.insert(
            CONTENT_TYPE,
            "multipart/form-data; boundary=x".parse().unwrap(),
        );
        assert!(!is_json(&h));
    }
}

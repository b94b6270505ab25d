//! Building each virtual user's chat request from the scenario's `request:` section.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::scenario::schema::{Protocol, RequestSpec};

/// Prompts used when a scenario names none: short, varied, like real chat traffic.
const DEFAULT_PROMPTS: &[&str] = &[
    "Summarise the main causes of the French Revolution in three sentences.",
    "Write a haiku about a server that never sleeps.",
    "Explain consistent hashing to a new engineer.",
    "What is the difference between latency and throughput?",
    "Translate 'the system is busy, please retry later' into French and German.",
    "Give me three names for a coffee shop run by robots.",
    "How do circuit breakers protect a distributed system?",
    "List five tips for writing clear commit messages.",
];

/// Everything fixed about the requests of a run; per request only the prompt and user vary.
#[derive(Debug)]
pub struct RequestTemplate {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    user_id_header: HeaderName,
    model: String,
    pub stream: bool,
    max_tokens: Option<u32>,
    prompts: Vec<String>,
}

/// A header in the scenario that HTTP cannot carry.
#[derive(Debug, thiserror::Error)]
#[error("request.headers: {0}")]
pub struct BadHeader(String);

impl RequestTemplate {
    /// `target` is the base URL; `protocol` decides the URI form (origin-form for HTTP/1.1,
    /// absolute for h2, which needs `:scheme` and `:authority`).
    pub fn new(spec: &RequestSpec, target: &Uri, protocol: Protocol) -> Result<Self, BadHeader> {
        let authority = target
            .authority()
            .map(|a| a.as_str())
            .unwrap_or("localhost");
        let base = target.path().trim_end_matches('/');
        let path = format!("{base}{}", spec.path.value);
        let uri: Uri = match protocol {
            Protocol::Http1 => path.parse(),
            Protocol::Http2 => format!("http://{authority}{path}").parse(),
        }
        .map_err(|e| BadHeader(format!("the request path does not form a URI: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if spec.stream {
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        }
        if protocol == Protocol::Http1 {
            let host = HeaderValue::from_str(authority).map_err(|e| BadHeader(e.to_string()))?;
            headers.insert(HOST, host);
        }
        for (name, value) in &spec.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BadHeader(format!("{name:?} is not a valid header name")))?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                BadHeader(format!("the value of {name} is not a valid header value"))
            })?;
            headers.insert(name, value);
        }
        let user_id_header =
            HeaderName::from_bytes(spec.user_id_header.as_bytes()).map_err(|_| {
                BadHeader(format!(
                    "user_id_header {:?} is not a valid header name",
                    spec.user_id_header
                ))
            })?;
        let prompts = if spec.prompts.is_empty() {
            DEFAULT_PROMPTS.iter().map(|p| p.to_string()).collect()
        } else {
            spec.prompts.clone()
        };
        Ok(RequestTemplate {
            method: Method::POST,
            uri,
            headers,
            user_id_header,
            model: spec.model.clone(),
            stream: spec.stream,
            max_tokens: spec.max_tokens,
            prompts,
        })
    }

    /// One request for virtual user `user`.
    pub fn build<R: Rng>(&self, user: u32, rng: &mut R) -> Request<Full<Bytes>> {
        let prompt = self
            .prompts
            .choose(rng)
            .map(String::as_str)
            .unwrap_or("Hello");
        let user_id = format!("user-{user}");
        let mut body = serde_json::json!({
            "model": self.model,
            "messages": [{ "role": "user", "content": prompt }],
            "stream": self.stream,
            "user": user_id,
        });
        if self.stream {
            body["stream_options"] = serde_json::json!({ "include_usage": true });
        }
        if let Some(max) = self.max_tokens {
            body["max_tokens"] = max.into();
        }
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut request = Request::new(Full::new(Bytes::from(bytes)));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        if let Ok(value) = HeaderValue::from_str(&user_id) {
            request
                .headers_mut()
                .insert(self.user_id_header.clone(), value);
        }
        request
    }
}

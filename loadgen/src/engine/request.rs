//! Building each request from the scenario's `request:` section: a JSON body template with
//! `{{variables}}`, compiled once into literal pieces and slots so building a body is a few
//! string appends, not a JSON tree walk. A worker renders each request into buffers it reuses;
//! the HTTP/1.1 lanes then serialise it next to a head prepared once, the h2 lane makes it an
//! `http::Request`.
//!
//! Variables: `{{user_id}}` (`user-<n>`), `{{prompt}}`, `{{model}}`, `{{max_tokens}}`,
//! `{{stream}}`, `{{request_id}}`. A string that is exactly one placeholder (`"{{max_tokens}}"`)
//! takes the variable's JSON type (a number, a boolean); inside longer strings it is text.

use bytes::Bytes;
use http::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::scenario::distribution::NumberDist;
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    UserId,
    Prompt,
    Model,
    MaxTokens,
    Stream,
    RequestId,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name.trim() {
            "user_id" => Var::UserId,
            "prompt" => Var::Prompt,
            "model" => Var::Model,
            "max_tokens" => Var::MaxTokens,
            "stream" => Var::Stream,
            "request_id" => Var::RequestId,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Literal(String),
    /// A whole JSON value (the placeholder was the entire string, quotes included).
    Value(Var),
    /// Text inside a JSON string.
    Text(Var),
}

/// Values of the variables for one request.
struct Values<'a> {
    user: u64,
    prompt: &'a str,
    request: u64,
}

/// Everything fixed about the requests of a run; per request only the variables change.
#[derive(Debug)]
pub struct RequestTemplate {
    uri: Uri,
    headers: HeaderMap,
    /// The HTTP/1.1 request line and fixed headers, serialised once (`POST /path HTTP/1.1`, Host,
    /// content type, the scenario's headers); per request only the user id header, the length
    /// and the body follow.
    http1_head: Vec<u8>,
    user_id_header: HeaderName,
    /// The model name and the prompts, already escaped for the inside of a JSON string.
    model: String,
    pub stream: bool,
    max_tokens: Option<u32>,
    prompts: Vec<String>,
    user_ids: Option<NumberDist>,
    body: Vec<Piece>,
}

/// One request's variable parts (the user and the body), rendered into buffers a worker keeps
/// from request to request.
#[derive(Debug, Default)]
pub struct Rendered {
    user: u64,
    body: String,
}

/// A request section that cannot produce valid requests.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadRequestSpec {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> BadRequestSpec {
    BadRequestSpec {
        field,
        message: message.into(),
    }
}

impl RequestTemplate {
    /// `target` is the base URL; `protocol` decides the URI form (origin-form for HTTP/1.1,
    /// absolute for h2, which needs `:scheme` and `:authority`).
    pub fn new(
        spec: &RequestSpec,
        target: &Uri,
        protocol: Protocol,
    ) -> Result<Self, BadRequestSpec> {
        let authority = target
            .authority()
            .map(|a| a.as_str())
            .unwrap_or("localhost");
        let base = target.path().trim_end_matches('/');
        let path = format!("{base}{}", spec.path.value);
        let scheme = target.scheme_str().unwrap_or("http");
        let uri: Uri = match protocol {
            Protocol::Http1 => path.parse(),
            Protocol::Http2 => format!("{scheme}://{authority}{path}").parse(),
        }
        .map_err(|e| bad("request.path", format!("does not form a URI: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if spec.stream {
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        }
        if protocol == Protocol::Http1 {
            let host =
                HeaderValue::from_str(authority).map_err(|e| bad("target", e.to_string()))?;
            headers.insert(HOST, host);
        }
        for (name, value) in &spec.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                bad(
                    "request.headers",
                    format!("{name:?} is not a valid header name"),
                )
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                bad(
                    "request.headers",
                    format!("the value of {name} is not a valid header value"),
                )
            })?;
            headers.insert(name, value);
        }
        let user_id_header =
            HeaderName::from_bytes(spec.user_id_header.as_bytes()).map_err(|_| {
                bad(
                    "request.user_id_header",
                    format!("{:?} is not a valid header name", spec.user_id_header),
                )
            })?;
        let prompts = if spec.prompts.is_empty() {
            DEFAULT_PROMPTS.iter().map(|p| escaped(p)).collect()
        } else {
            spec.prompts.iter().map(|p| escaped(p)).collect()
        };
        let body = match &spec.body {
            Some(template) => compile(&serde_json::to_string(template).unwrap_or_default())?,
            None => compile(&default_body(spec.stream, spec.max_tokens.is_some()))?,
        };
        let http1_head = http1_head(&uri, &headers, &user_id_header);
        Ok(RequestTemplate {
            uri,
            headers,
            http1_head,
            user_id_header,
            model: escaped(&spec.model),
            stream: spec.stream,
            max_tokens: spec.max_tokens,
            prompts,
            user_ids: spec.user_ids.clone(),
            body,
        })
    }

    /// Renders one request into `out`; `sequence` is the virtual user (closed model) or the
    /// arrival number (open), which is also the user id unless the scenario draws user ids from
    /// a distribution.
    pub fn render<R: Rng>(&self, sequence: u64, rng: &mut R, out: &mut Rendered) {
        let user = match &self.user_ids {
            Some(dist) => dist.sample(rng).round() as u64,
            None => sequence,
        };
        let prompt = self
            .prompts
            .choose(rng)
            .map(String::as_str)
            .unwrap_or("Hello");
        let values = Values {
            user,
            prompt,
            request: sequence,
        };
        out.user = user;
        out.body.clear();
        for piece in &self.body {
            match piece {
                Piece::Literal(text) => out.body.push_str(text),
                Piece::Value(var) => self.push_value(&mut out.body, *var, &values),
                Piece::Text(var) => self.push_text(&mut out.body, *var, &values),
            }
        }
    }

    /// A rendered request as a whole HTTP/1.1 message in `wire` (cleared first), written with
    /// one write by the caller.
    pub fn write_http1(&self, rendered: &Rendered, wire: &mut Vec<u8>) {
        let mut digits = itoa::Buffer::new();
        wire.clear();
        wire.extend_from_slice(&self.http1_head);
        wire.extend_from_slice(self.user_id_header.as_str().as_bytes());
        wire.extend_from_slice(b": user-");
        wire.extend_from_slice(digits.format(rendered.user).as_bytes());
        wire.extend_from_slice(b"\r\ncontent-length: ");
        wire.extend_from_slice(digits.format(rendered.body.len()).as_bytes());
        wire.extend_from_slice(b"\r\n\r\n");
        wire.extend_from_slice(rendered.body.as_bytes());
    }

    /// A rendered request as an `http::Request` (the h2 lane).
    pub fn to_request(&self, rendered: &Rendered) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::copy_from_slice(rendered.body.as_bytes())));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        if let Ok(value) = HeaderValue::from_str(&format!("user-{}", rendered.user)) {
            request
                .headers_mut()
                .insert(self.user_id_header.clone(), value);
        }
        request
    }

    fn push_value(&self, out: &mut String, var: Var, v: &Values) {
        match var {
            Var::MaxTokens => match self.max_tokens {
                Some(n) => push_number(out, n.into()),
                None => out.push_str("null"),
            },
            Var::Stream => out.push_str(if self.stream { "true" } else { "false" }),
            Var::RequestId => push_number(out, v.request),
            _ => {
                out.push('"');
                self.push_text(out, var, v);
                out.push('"');
            }
        }
    }

    fn push_text(&self, out: &mut String, var: Var, v: &Values) {
        match var {
            Var::UserId => {
                out.push_str("user-");
                push_number(out, v.user);
            }
            Var::Prompt => out.push_str(v.prompt),
            Var::Model => out.push_str(&self.model),
            Var::MaxTokens => {
                if let Some(n) = self.max_tokens {
                    push_number(out, n.into());
                }
            }
            Var::Stream => out.push_str(if self.stream { "true" } else { "false" }),
            Var::RequestId => push_number(out, v.request),
        }
    }
}

/// Appends a number's digits without a temporary string (this runs for every request).
fn push_number(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `text` escaped for the inside of a JSON string (done once per template, not per request).
fn escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_owned()
}

/// The request line and the fixed headers of every HTTP/1.1 request. The user id header comes
/// per request, and the body's framing is loadgen's own (a `content-length` for the body it
/// wrote), so a scenario's framing headers are left out.
fn http1_head(uri: &Uri, headers: &HeaderMap, user_id_header: &HeaderName) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"POST ");
    head.extend_from_slice(uri.to_string().as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if [CONTENT_LENGTH, TRANSFER_ENCODING].contains(name) || name == user_id_header {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head
}

/// The OpenAI chat body loadgen sends when the scenario gives no template.
fn default_body(stream: bool, max_tokens: bool) -> String {
    let mut body = String::from(
        r#"{"model":"{{model}}","messages":[{"role":"user","content":"{{prompt}}"}],"stream":"{{stream}}","user":"{{user_id}}""#,
    );
    if stream {
        body.push_str(r#","stream_options":{"include_usage":true}"#);
    }
    if max_tokens {
        body.push_str(r#","max_tokens":"{{max_tokens}}""#);
    }
    body.push('}');
    body
}

/// Splits a JSON text at its `{{placeholders}}`.
fn compile(json: &str) -> Result<Vec<Piece>, BadRequestSpec> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = json;
    while let Some(open) = rest.find("{{") {
        let close = rest[open..]
            .find("}}")
            .map(|c| open + c)
            .ok_or_else(|| bad("request.body", "a `{{` has no closing `}}`"))?;
        let name = &rest[open + 2..close];
        let var = Var::parse(name).ok_or_else(|| {
            bad(
                "request.body",
                format!("unknown variable {{{{{name}}}}}: use user_id, prompt, model, max_tokens, stream or request_id"),
            )
        })?;
        let whole = rest[..open].ends_with('"') && rest[close + 2..].starts_with('"');
        if whole {
            literal.push_str(&rest[..open - 1]);
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            pieces.push(Piece::Value(var));
            rest = &rest[close + 3..];
        } else {
            literal.push_str(&rest[..open]);
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            pieces.push(Piece::Text(var));
            rest = &rest[close + 2..];
        }
    }
    literal.push_str(rest);
    pieces.push(Piece::Literal(literal));
    pieces.retain(|p| !matches!(p, Piece::Literal(l) if l.is_empty()));
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn spec(yaml: &str) -> RequestSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn body_of(template: &RequestTemplate, sequence: u64) -> serde_json::Value {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut rendered = Rendered::default();
        template.render(sequence, &mut rng, &mut rendered);
        serde_json::from_str(&rendered.body).expect("the body is valid JSON")
    }

    #[test]
    fn an_http1_request_is_one_whole_message_with_the_scenario_headers() {
        let t = RequestTemplate::new(
            &spec("path: /v1/chat\nheaders: { authorization: Bearer k, content-length: \"1\" }"),
            &"http://h:1".parse().unwrap(),
            Protocol::Http1,
        )
        .unwrap();
        let mut rendered = Rendered::default();
        let mut wire = Vec::new();
        for sequence in [7, 12345] {
            t.render(sequence, &mut SmallRng::seed_from_u64(1), &mut rendered);
            t.write_http1(&rendered, &mut wire);
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut request = httparse::Request::new(&mut headers);
            let httparse::Status::Complete(head) = request.parse(&wire).unwrap() else {
                panic!("a partial head: {:?}", String::from_utf8_lossy(&wire));
            };
            assert_eq!(
                (request.method, request.path),
                (Some("POST"), Some("/v1/chat"))
            );
            let header = |name: &str| {
                let values: Vec<_> = request
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| std::str::from_utf8(h.value).unwrap())
                    .collect();
                values.join(",")
            };
            assert_eq!(header("host"), "h:1");
            assert_eq!(header("authorization"), "Bearer k");
            assert_eq!(header("x-user-id"), format!("user-{sequence}"));
            let body = &wire[head..];
            assert_eq!(
                header("content-length"),
                body.len().to_string(),
                "ours only"
            );
            assert_eq!(body, rendered.body.as_bytes());
        }
    }

    #[test]
    fn the_default_body_is_an_openai_chat_request() {
        let t = RequestTemplate::new(
            &spec("max_tokens: 64\nprompts: [\"say \\\"hi\\\"\"]"),
            &"http://h:1".parse().unwrap(),
            Protocol::Http1,
        )
        .unwrap();
        let body = body_of(&t, 7);
        assert_eq!(body["model"], "mock-llm");
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], 64);
        assert_eq!(body["user"], "user-7");
        assert_eq!(body["messages"][0]["content"], "say \"hi\"");
        assert_eq!(body["stream_options"]["include_usage"], true);
    }

    #[test]
    fn templates_keep_types_for_whole_placeholders_and_text_inside_strings() {
        let yaml = "stream: false\nmax_tokens: 5\nbody:\n  input: \"Dear {{user_id}}: {{prompt}}\"\n  n: \"{{max_tokens}}\"\n  s: \"{{stream}}\"\n  id: \"{{request_id}}\"\nprompts: [hello]\n";
        let t = RequestTemplate::new(&spec(yaml), &"http://h:1".parse().unwrap(), Protocol::Http2)
            .unwrap();
        let body = body_of(&t, 3);
        assert_eq!(
            body,
            serde_json::json!({"input": "Dear user-3: hello", "n": 5, "s": false, "id": 3})
        );
    }

    #[test]
    fn the_model_variable_renders_the_scenarios_model_as_a_value_and_inside_text() {
        // A quote in the name proves it is escaped once for JSON, not pasted raw.
        let yaml = "model: \"llama-3 \\\"70b\\\"\"\nbody:\n  model: \"{{model}}\"\n  note: \"asked {{model}} twice: {{model}}\"\n";
        let t = RequestTemplate::new(&spec(yaml), &"http://h:1".parse().unwrap(), Protocol::Http1)
            .unwrap();
        let body = body_of(&t, 1);
        assert_eq!(
            body,
            serde_json::json!({
                "model": "llama-3 \"70b\"",
                "note": "asked llama-3 \"70b\" twice: llama-3 \"70b\"",
            })
        );
    }

    #[test]
    fn user_ids_can_come_from_a_distribution() {
        let t = RequestTemplate::new(
            &spec("user_ids: zipf(5, 1.2)"),
            &"http://h:1".parse().unwrap(),
            Protocol::Http1,
        )
        .unwrap();
        let mut rng = SmallRng::seed_from_u64(9);
        let mut rendered = Rendered::default();
        for _ in 0..50 {
            t.render(1000, &mut rng, &mut rendered);
            let r = t.to_request(&rendered);
            let id = r.headers()["x-user-id"].to_str().unwrap().to_owned();
            let n: u64 = id.trim_start_matches("user-").parse().unwrap();
            assert!((1..=5).contains(&n), "{id}");
        }
    }

    #[test]
    fn unknown_variables_are_rejected() {
        let err = RequestTemplate::new(
            &spec("body: { x: \"{{colour}}\" }"),
            &"http://h:1".parse().unwrap(),
            Protocol::Http1,
        )
        .unwrap_err();
        assert_eq!(err.field, "request.body");
        assert!(err.message.contains("colour"), "{}", err.message);
    }
}

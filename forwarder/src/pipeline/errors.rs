//! OpenAI-style error responses (`{"error":{"message","type","code"}}`), so clients written
//! against the OpenAI API can parse what the forwarder itself answers.

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::headers::X_FORWARDER_BACKEND;
use crate::pipeline::answer::ResponseBody;

/// The OpenAI `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    InvalidRequest,
    Server,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::Server => "server_error",
        }
    }
}

/// Field order follows OpenAI's: message, type, code.
#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: &'a str,
}

pub use crate::config::policy::BUSY_MESSAGE;

pub fn error_response(
    status: StatusCode,
    kind: ErrorType,
    code: &str,
    message: &str,
) -> Response<ResponseBody> {
    let envelope = Envelope {
        error: ErrorFields {
            message,
            kind: kind.as_str(),
            code,
        },
    };
    // Serializing borrowed strings into a Vec cannot fail; keep a fallback anyway.
    let json = serde_json::to_vec(&envelope).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(ResponseBody::full(json));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn not_found(path: &str) -> Response<ResponseBody> {
    // Client-controlled text goes into JSON via serde_json, so it is escaped properly.
    let message = format!("no route for {path}; the forwarder serves /v1/*");
    error_response(
        StatusCode::NOT_FOUND,
        ErrorType::InvalidRequest,
        "not_found",
        &message,
    )
}

pub fn method_not_allowed(allowed: &'static str) -> Response<ResponseBody> {
    let mut resp = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorType::InvalidRequest,
        "method_not_allowed",
        &format!("method not allowed here; use {allowed}"),
    );
    resp.headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allowed));
    resp
}

/// A shed answer (429 or 503) for a full wait queue; `Retry-After: 1` because queues drain
/// within seconds.
pub fn overloaded(status: StatusCode, detail: &str) -> Response<ResponseBody> {
    let mut resp = error_response(
        status,
        ErrorType::Server,
        "overloaded",
        &format!("{BUSY_MESSAGE} ({detail})"),
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The configured answer when no backend may be tried: every breaker is open.
pub fn fallback(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let mut resp = error_response(status, ErrorType::Server, "no_backend_available", message);
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// 401 for a missing or unknown client key; the key itself is never repeated.
pub fn unauthorized() -> Response<ResponseBody> {
    let mut resp = error_response(
        StatusCode::UNAUTHORIZED,
        ErrorType::InvalidRequest,
        "invalid_api_key",
        "missing or invalid API key: send Authorization: Bearer KEY",
    );
    resp.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer"),
    );
    resp
}

/// 502/504 about one backend; names it in `x-forwarder-backend` like a proxied answer would.
pub fn upstream_failure(
    status: StatusCode,
    code: &str,
    message: &str,
    backend: &str,
) -> Response<ResponseBody> {
    let mut resp = error_response(status, ErrorType::Server, code, message);
    if let Ok(v) = HeaderValue::from_str(backend) {
        resp.headers_mut().insert(X_FORWARDER_BACKEND, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn json(resp: Response<ResponseBody>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn overloaded_has_the_contract_shape() {
        let resp = overloaded(StatusCode::TOO_MANY_REQUESTS, "forwarder queue full");
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[RETRY_AFTER], "1");
        let v = json(resp).await;
        assert_eq!(v["error"]["type"], "server_error");
        assert_eq!(v["error"]["code"], "overloaded");
        assert_eq!(
            v["error"]["message"],
            "系统繁忙,请稍后重试 (forwarder queue full)"
        );
    }

    #[tokio::test]
    async fn not_found_escapes_the_path() {
        let v = json(not_found("/\"x")).await;
        assert_eq!(v["error"]["code"], "not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("/\"x"));
    }
}

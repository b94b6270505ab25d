//! The WebSocket front, `/v1/ws`: each text (or binary) message is one chat request JSON, sent
//! through the same pipeline as HTTP (cache, admission, routing, breaker, retries); the answer
//! comes back as messages: one per SSE event's data for a stream (the chunk JSON, then
//! `[DONE]`), or the whole JSON body otherwise, errors included. Messages on one connection are
//! answered in order. A client that leaves mid-answer cancels the upstream request.
//!
//! An upstream stream that breaks mid-answer ends with its error event and then a close frame
//! with code 1011, never with `[DONE]`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::header::{
    CONNECTION, CONTENT_TYPE, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::front::state::Router;
use crate::pipeline::answer::ResponseBody;
use crate::pipeline::errors::{ErrorType, error_response, unauthorized};
use crate::pipeline::read;

pub const PATH: &str = "/v1/ws";

/// Answers the upgrade request and, once upgraded, serves the session on its own task.
pub fn accept(
    router: &Arc<Router>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    if !router.pipeline().admits(req.headers()) {
        return unauthorized();
    }
    let Some(key) = upgrade_key(req.headers()) else {
        let mut resp = error_response(
            StatusCode::UPGRADE_REQUIRED,
            ErrorType::InvalidRequest,
            "websocket_required",
            "/v1/ws takes a WebSocket upgrade (version 13)",
        );
        resp.headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        return resp;
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let headers = req.headers().clone();
    let router = Arc::clone(router);
    tokio::spawn(async move {
        // The client gave up during the handshake: nothing to serve.
        if let Ok(upgraded) = on_upgrade.await {
            session(router, TokioIo::new(upgraded), headers, peer).await;
        }
    });
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

fn upgrade_key(headers: &HeaderMap) -> Option<String> {
    let has_token = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let version_ok = headers
        .get(SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    if !(has_token(CONNECTION, "upgrade") && has_token(UPGRADE, "websocket") && version_ok) {
        return None;
    }
    headers
        .get(SEC_WEBSOCKET_KEY)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

async fn session(
    router: Arc<Router>,
    io: TokioIo<hyper::upgrade::Upgraded>,
    headers: HeaderMap,
    peer: SocketAddr,
) {
    let max = router.config().policies.limits.max_body;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    while let Some(message) = ws.next().await {
        let body = match message {
            Ok(Message::Text(text)) => Bytes::from(text),
            Ok(Message::Binary(bytes)) => bytes,
            // Pings are answered by the library; a close ends the session.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => break,
        };
        let resp = exchange(&router, body, &headers, peer).await;
        if relay(resp, &mut ws).await.is_err() {
            // The client left (or the stream broke and we closed): dropping the answer's body
            // here cancels the upstream request.
            return;
        }
    }
    let _ = ws.close(None).await;
}

/// One WebSocket message through the pipeline, counted like an HTTP request.
async fn exchange(
    router: &Router,
    body: bytes::Bytes,
    headers: &http::HeaderMap,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let timer = router.metrics().start_request();
    let deadline = tokio::time::Instant::now() + router.config().timeouts.request;
    let opts = router.pipeline().read_options(deadline);
    let resp = match read::from_message(body, headers, chat_path(), &opts) {
        Ok(request) => {
            router
                .pipeline()
                .forward_request(request, peer.ip(), timer)
                .await
        }
        Err(resp) => resp.map(|body| body.with_timer(timer)),
    };
    router.metrics().count_response(resp.status());
    resp
}

/// Why a session cannot go on.
#[derive(Debug)]
struct Ended;

/// Sends one answer as messages.
async fn relay(resp: Response<ResponseBody>, ws: &mut Socket) -> Result<(), Ended> {
    let sse = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut body = resp.into_body();
    if !sse {
        let bytes = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return close_broken(ws).await,
        };
        return send(ws, bytes).await;
    }
    let mut pending = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return close_broken(ws).await;
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = find_event_end(&pending) {
            let event = pending.split_to(end.0).freeze();
            let _ = pending.split_to(end.1 - end.0);
            for payload in event_data(&event) {
                send(ws, payload).await?;
            }
        }
    }
    Ok(())
}

async fn send(ws: &mut Socket, payload: Bytes) -> Result<(), Ended> {
    let message = match String::from_utf8(payload.to_vec()) {
        Ok(text) => Message::text(text),
        Err(_) => Message::Binary(payload),
    };
    ws.send(message).await.map_err(|_| Ended)
}

/// The upstream broke mid-answer: say so with 1011, never with a clean `[DONE]`.
async fn close_broken(ws: &mut Socket) -> Result<(), Ended> {
    let _ = ws
        .close(Some(CloseFrame {
            code: CloseCode::Error,
            reason: "upstream stream interrupted".into(),
        }))
        .await;
    Err(Ended)
}

/// (end of the event, start of the next): events end with a blank line, `\n\n` or `\r\n\r\n`.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The `data:` payloads of one event (usually one).
fn event_data(event: &Bytes) -> Vec<Bytes> {
    event
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let data = line.strip_prefix(b"data:")?;
            let data = data.strip_prefix(b" ").unwrap_or(data);
            Some(Bytes::copy_from_slice(data))
        })
        .collect()
}

/// The path every WebSocket chat message is forwarded as.
pub fn chat_path() -> PathAndQuery {
    PathAndQuery::from_static("/v1/chat/completions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_blank_lines() {
        let buf = b"data: {\"a\":1}\n\ndata: [DONE]\r\n\r\nrest";
        let (end, next) = find_event_end(buf).unwrap();
        assert_eq!(&buf[..end], b"data: {\"a\":1}");
        let event = Bytes::copy_from_slice(&buf[..end]);
        assert_eq!(event_data(&event), [Bytes::from_static(b"{\"a\":1}")]);
        let (end2, _) = find_event_end(&buf[next..]).unwrap();
        assert_eq!(&buf[next..next + end2], b"data: [DONE]");
    }

    #[test]
    fn upgrade_needs_all_the_headers() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert!(upgrade_key(&h).is_none(), "no version");
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        assert_eq!(upgrade_key(&h).as_deref(), Some("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}

//! End-to-end tests: the real server on 127.0.0.1:0, driven by a hyper client, with tokio's clock
//! paused so pacing is checked without waiting for it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{MockProfile, serve};

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(profile_yaml: &str) -> Server {
        let profile: MockProfile = serde_saphyr::from_str(profile_yaml).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, profile, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn send(&self, method: &str, path: &str, body: &str) -> Response<Incoming> {
        let io = TokioIo::new(TcpStream::connect(self.addr).await.unwrap());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        sender
            .send_request(request(method, path, body))
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: &str) -> Response<Incoming> {
        self.send("POST", path, body).await
    }

    async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self.send("GET", path, "").await;
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// The value of one sample line on `/metrics`.
    async fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.get_text("/metrics").await;
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {text}"));
        line[name.len()..].trim().parse().unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

fn request(method: &str, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "mock")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

/// One SSE event as received: when it came (since `start`) and its payload after `data: `.
struct Event {
    at: Duration,
    data: String,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{:?}: {e}", self.data))
    }
    fn content(&self) -> Option<String> {
        let v = self.json();
        let choice = &v["choices"][0];
        choice["delta"]["content"]
            .as_str()
            .or(choice["text"].as_str())
            .map(str::to_owned)
    }
}

/// Reads a whole SSE body frame by frame; each frame must hold exactly one event.
async fn events(response: Response<Incoming>, start: Instant) -> Vec<Event> {
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        let text = std::str::from_utf8(&data).unwrap();
        let payload = text
            .strip_prefix("data: ")
            .and_then(|t| t.strip_suffix("\n\n"));
        let payload = payload.unwrap_or_else(|| panic!("not one event per frame: {text:?}"));
        assert!(
            !payload.contains("\n\n"),
            "not one event per frame: {text:?}"
        );
        out.push(Event {
            at: start.elapsed(),
            data: payload.to_owned(),
        });
    }
    out
}

async fn json_body(response: Response<Incoming>) -> Value {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

const PACED: &str = "ttft: 100ms\ntokens_per_s: 10\noutput_tokens: 5\nseed: 1\n";
const CHAT_STREAM: &str =
    r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;

#[tokio::test(start_paused = true)]
async fn chat_stream_is_paced_and_well_formed() {
    let server = Server::start(PACED).await;
    let start = Instant::now();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hello mock"}],"stream":true,
                  "stream_options":{"include_usage":true}}"#;
    let response = server.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let events = events(response, start).await;

    assert_eq!(events.last().unwrap().data, "[DONE]");
    let json: Vec<Value> = events[..events.len() - 1].iter().map(Event::json).collect();
    let id = json[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for v in &json {
        assert_eq!(
            (v["id"].as_str(), &v["object"], &v["model"]),
            (
                Some(id),
                &Value::from("chat.completion.chunk"),
                &Value::from("m")
            )
        );
    }
    assert_eq!(
        json[0]["choices"][0]["delta"],
        serde_json::json!({"role":"assistant","content":""})
    );
    let contents: Vec<&Event> = events[1..]
        .iter()
        .filter(|e| e.data != "[DONE]" && e.content().is_some())
        .collect();
    assert_eq!(contents.len(), 5);
    let finish = &json[6];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], serde_json::json!({}));
    let usage = &json[7];
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(
        usage["usage"],
        serde_json::json!({"prompt_tokens":3,"completion_tokens":5,"total_tokens":8})
    );
    assert_eq!(events.len(), 1 + 5 + 1 + 1 + 1);

    // First token at TTFT, then one every 100 ms, give or take the timer's millisecond.
    for (i, event) in contents.iter().enumerate() {
        let due = Duration::from_millis(100 + 100 * i as u64);
        assert!(
            event.at >= due && event.at <= due + Duration::from_millis(5),
            "token {i} at {:?}",
            event.at
        );
    }
    assert_eq!(server.metric("mock_tokens_total").await, 5);
    assert_eq!(
        server.metric("mock_requests_total{outcome=\"ok\"}").await,
        1
    );
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn max_tokens_caps_the_answer_with_finish_reason_length() {
    let server = Server::start("ttft: 10ms\ntokens_per_s: 1000\noutput_tokens: 50\n").await;
    let body = r#"{"messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":3}"#;
    let events = events(
        server.post("/v1/chat/completions", body).await,
        Instant::now(),
    )
    .await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.data != "[DONE]" && e.content().is_some_and(|c| !c.is_empty()))
            .count(),
        3
    );
    let finish = events.iter().rev().nth(1).unwrap().json();
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    assert_eq!(finish["model"], "mock-llm");

    let body = r#"{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":4}"#;
    let answer = json_body(server.post("/v1/chat/completions", body).await).await;
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["usage"]["completion_tokens"], 4);
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content.split(' ').count(), 4, "{content:?}");
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn whole_chat_answer_comes_after_the_last_token_would() {
    let server = Server::start(PACED).await;
    let start = Instant::now();
    let response = server
        .post(
            "/v1/chat/completions",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took <= Duration::from_millis(505),
        "{took:?}"
    );
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let v = json_body(response).await;
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "m");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        5
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        serde_json::json!({"prompt_tokens":1,"completion_tokens":5,"total_tokens":6})
    );
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn legacy_completions_stream_and_answer_whole() {
    let server = Server::start(PACED).await;
    let events = events(
        server
            .post(
                "/v1/completions",
                r#"{"model":"m","prompt":"once upon","stream":true}"#,
            )
            .await,
        Instant::now(),
    )
    .await;
    assert_eq!(events.len(), 5 + 1 + 1);
    let first = events[0].json();
    assert_eq!(first["object"], "text_completion");
    assert!(first["id"].as_str().unwrap().starts_with("cmpl-"));
    assert!(
        events[..5]
            .iter()
            .all(|e| e.content().is_some_and(|c| !c.is_empty()))
    );
    assert_eq!(events[5].json()["choices"][0]["finish_reason"], "stop");

    let v = json_body(
        server
            .post("/v1/completions", r#"{"prompt":"once upon"}"#)
            .await,
    )
    .await;
    assert_eq!(v["object"], "text_completion");
    assert_eq!(
        v["choices"][0]["text"].as_str().unwrap().split(' ').count(),
        5
    );
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn error_rate_answers_with_the_error_status_after_a_delay() {
    let server = Server::start("ttft: 100ms\nerror_rate: 100%\nerror_status: 429\n").await;
    for stream in [false, true] {
        let start = Instant::now();
        let body =
            format!(r#"{{"messages":[{{"role":"user","content":"hi"}}],"stream":{stream}}}"#);
        let response = server.post("/v1/chat/completions", &body).await;
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "errors are not free"
        );
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "1");
        let v = json_body(response).await;
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert!(v["error"]["message"].is_string() && v["error"]["param"].is_null());
    }
    assert_eq!(
        server
            .metric("mock_requests_total{outcome=\"error\"}")
            .await,
        2
    );
    server.stop().await;

    let server = Server::start("ttft: 1ms\nerror_rate: 100%\n").await;
    let response = server.post("/v1/chat/completions", CHAT_STREAM).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().get("retry-after").is_none());
    assert_eq!(json_body(response).await["error"]["type"], "server_error");
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn bad_requests_get_openai_errors() {
    let server = Server::start("{}").await;
    for (path, body) in [
        ("/v1/chat/completions", "{not json"),
        ("/v1/chat/completions", r#"{"model":"m"}"#),
        ("/v1/chat/completions", r#"{"messages":"hi"}"#),
        ("/v1/completions", r#"{"model":"m"}"#),
    ] {
        let response = server.post(path, body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let v = json_body(response).await;
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(v["error"]["param"].is_null() && v["error"]["code"].is_null());
    }
    let response = server.post("/v1/embeddings", "{}").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json_body(response).await["error"]["type"],
        "invalid_request_error"
    );
    assert_eq!(
        server
            .send("GET", "/v1/chat/completions", "")
            .await
            .status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        server
            .metric("mock_requests_total{outcome=\"invalid\"}")
            .await,
        4
    );
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn health_models_and_metrics() {
    let server = Server::start("{}").await;
    assert_eq!(
        server.get_text("/healthz").await,
        (StatusCode::OK, "ok".to_owned())
    );
    let (status, models) = server.get_text("/v1/models").await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(v["data"][0]["id"], "mock-llm");
    let (_, metrics) = server.get_text("/metrics").await;
    for line in [
        "mock_requests_total{outcome=\"ok\"} 0",
        "mock_requests_total{outcome=\"error\"} 0",
        "mock_requests_total{outcome=\"cancelled\"} 0",
        "mock_inflight_requests 0",
        "mock_tokens_total 0",
        "# TYPE mock_requests_total counter",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing in\n{metrics}"
        );
    }
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_cancels_its_stream() {
    let server = Server::start("ttft: 10ms\ntokens_per_s: 10\noutput_tokens: 1000\n").await;
    let io = TokioIo::new(TcpStream::connect(server.addr).await.unwrap());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    let conn = tokio::spawn(conn);
    let response = sender
        .send_request(request("POST", "/v1/chat/completions", CHAT_STREAM))
        .await
        .unwrap();
    let mut body = response.into_body();
    for _ in 0..3 {
        body.frame().await.unwrap().unwrap();
    }
    assert_eq!(server.metric("mock_inflight_requests").await, 1);
    // Dropping everything closes the socket, as a client that gives up would.
    drop(body);
    drop(sender);
    conn.abort();

    // The server notices at its next write (100 ms of virtual time at most).
    let mut waited = 0;
    while server
        .metric("mock_requests_total{outcome=\"cancelled\"}")
        .await
        == 0
    {
        waited += 1;
        assert!(waited < 100, "the cancelled stream was never noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.metric("mock_inflight_requests").await, 0);
    let tokens = server.metric("mock_tokens_total").await;
    assert!(
        tokens < 10,
        "generation went on after the client left: {tokens} tokens"
    );
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn h2c_streams_share_one_connection() {
    let server = Server::start(PACED).await;
    let io = TokioIo::new(TcpStream::connect(server.addr).await.unwrap());
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let start = Instant::now();
    let streams = (0..20).map(|_| {
        let mut sender = sender.clone();
        tokio::spawn(async move {
            let uri = "http://mock/v1/chat/completions";
            let response = sender
                .send_request(request("POST", uri, CHAT_STREAM))
                .await
                .unwrap();
            events(response, start).await
        })
    });
    for stream in streams.collect::<Vec<_>>() {
        let events = stream.await.unwrap();
        assert_eq!(events.len(), 1 + 5 + 1 + 1);
        assert!(
            events[5].at >= Duration::from_millis(500)
                && events[5].at <= Duration::from_millis(510)
        );
    }
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_streams_in_flight_finish() {
    let server = Server::start(PACED).await;
    let response = server.post("/v1/chat/completions", CHAT_STREAM).await;
    let reading = tokio::spawn(events(response, Instant::now()));
    let addr = server.addr;
    server.stop().await;
    let events = reading.await.unwrap();
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert_eq!(events.len(), 1 + 5 + 1 + 1);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_on_endless_streams_after_the_grace_period() {
    let server = Server::start("ttft: 1ms\ntokens_per_s: 1\noutput_tokens: 100000\n").await;
    let response = server.post("/v1/chat/completions", CHAT_STREAM).await;
    let reading = tokio::spawn(events(response, Instant::now()));
    let start = Instant::now();
    server.stop().await;
    let took = start.elapsed();
    assert!(
        took >= super::SHUTDOWN_GRACE && took < super::SHUTDOWN_GRACE + Duration::from_secs(1),
        "{took:?}"
    );
    let events = reading.await;
    // The stream was cut: whatever arrived, it never ended in a clean [DONE].
    assert!(events.is_err() || events.unwrap().last().is_none_or(|e| e.data != "[DONE]"));
}

#[tokio::test(start_paused = true)]
async fn a_seed_reproduces_the_answers() {
    let mut answers = Vec::new();
    for _ in 0..2 {
        let server = Server::start("seed: 9\n").await;
        let body = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
        let v = json_body(server.post("/v1/chat/completions", body).await).await;
        answers.push(v["choices"][0]["message"]["content"].clone());
        server.stop().await;
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].as_str().is_some_and(|s| !s.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn idle_connections_do_not_delay_shutdown() {
    let server = Server::start(PACED).await;
    let io = TokioIo::new(TcpStream::connect(server.addr).await.unwrap());
    let (mut h1, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    let h1_conn = tokio::spawn(conn);
    let response = h1
        .send_request(request("GET", "/healthz", ""))
        .await
        .unwrap();
    response.into_body().collect().await.unwrap();
    let io = TokioIo::new(TcpStream::connect(server.addr).await.unwrap());
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    let h2_conn = tokio::spawn(conn);
    let response = h2
        .send_request(request("GET", "http://mock/healthz", ""))
        .await
        .unwrap();
    response.into_body().collect().await.unwrap();

    let start = Instant::now();
    server.stop().await;
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    // Both clients see their connection end.
    assert!(h1_conn.await.is_ok() && h2_conn.await.is_ok());
}

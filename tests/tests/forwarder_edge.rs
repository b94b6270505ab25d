//! The forwarder's client edge end to end: the response cache, gzip both ways (never on event
//! streams), client and upstream keys, bad input answered in OpenAI's error format, size
//! limits, slow clients, stalled streams, and warm-up before readiness (also of a backend with a
//! cold start).

mod fwd;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::Server;
use fwd::{chat, config_file, metric, send, wait_for};

fn post(addr: std::net::SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> fwd::Answer {
    send(addr, "POST", "/v1/chat/completions", headers, body)
}

fn mock_ok(mock: &Server) -> f64 {
    metric(mock.addr, "mock_requests_total{outcome=\"ok\"}").unwrap_or(0.0)
}

/// `gzip` / `gzip -d` through the system tool, to stay independent of the forwarder's code.
fn gzip_tool(input: &[u8], decompress: bool) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(if decompress {
            &["-dc"][..]
        } else {
            &["-c"][..]
        })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip is installed");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip ran");
    writer.join().unwrap().expect("fed gzip");
    assert!(out.status.success());
    out.stdout
}

#[test]
fn identical_requests_are_answered_from_the_cache() {
    let mock = Server::mock(&["--ttft", "1ms", "--output-tokens", "3"]);
    let (_dir, config) = config_file("cache: { enabled: true, ttl: 1m, max_entries: 100 }\n");
    let forwarder = Server::forwarder(&[&mock], &["--config", config.to_str().unwrap()]);
    let first = post(
        forwarder.addr,
        &[],
        chat("cache me", Some("alice")).as_bytes(),
    );
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("x-cache").as_deref(), Some("miss"));
    // Another user, same question: the user field is not part of the key.
    let second = post(
        forwarder.addr,
        &[],
        chat("cache me", Some("bob")).as_bytes(),
    );
    assert_eq!(second.header("x-cache").as_deref(), Some("hit"));
    assert_eq!(second.body, first.body);
    assert_eq!(mock_ok(&mock), 1.0, "the hit never reached the backend");

    let bypass = post(
        forwarder.addr,
        &[("cache-control", "no-cache")],
        chat("cache me", None).as_bytes(),
    );
    assert_eq!(bypass.header("x-cache").as_deref(), Some("miss"));
    assert_eq!(mock_ok(&mock), 2.0);

    let stream = post(forwarder.addr, &[], e2e::chat_body(true).as_bytes());
    assert_eq!(stream.header("x-cache"), None, "streams are never cached");
    assert_eq!(
        metric(
            forwarder.addr,
            "forwarder_cache_requests_total{result=\"hit\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            forwarder.addr,
            "forwarder_cache_requests_total{result=\"miss\"}"
        ),
        Some(2.0)
    );
}

#[test]
fn gzip_both_ways_but_never_for_event_streams() {
    let mock = Server::mock(&["--ttft", "1ms", "--output-tokens", "20"]);
    let (_dir, config) = config_file("compression: { gzip: true, min_size: 0 }\n");
    let forwarder = Server::forwarder(&[&mock], &["--config", config.to_str().unwrap()]);
    let packed = gzip_tool(chat("zip it", None).as_bytes(), false);
    let answer = post(
        forwarder.addr,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("accept-encoding", "gzip"),
        ],
        &packed,
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-encoding").as_deref(), Some("gzip"));
    let plain = gzip_tool(&answer.body, true);
    let json: serde_json::Value = serde_json::from_slice(&plain).expect("JSON inside");
    assert_eq!(json["object"], "chat.completion");

    let stream = post(
        forwarder.addr,
        &[("accept-encoding", "gzip")],
        e2e::chat_body(true).as_bytes(),
    );
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-encoding"), None);
    assert!(stream.text().contains("data: [DONE]"));

    let corrupt = post(forwarder.addr, &[("content-encoding", "gzip")], b"not gzip");
    assert_eq!(corrupt.status, 400);
}

#[test]
fn bad_input_gets_clear_openai_errors() {
    let mock = Server::mock(&["--ttft", "1ms", "--output-tokens", "2"]);
    let (_dir, config) = config_file("limits: { max_body: 1KiB }\n");
    let forwarder = Server::forwarder(&[&mock], &["--config", config.to_str().unwrap()]);

    let malformed = post(
        forwarder.addr,
        &[("content-type", "application/json")],
        b"{\"model\": ",
    );
    assert_eq!(malformed.status, 400);
    let error = &malformed.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "invalid_json");

    let big = chat(&"x".repeat(2000), None);
    let too_large = post(forwarder.addr, &[], big.as_bytes());
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.json()["error"]["code"], "request_too_large");
    assert_eq!(mock_ok(&mock), 0.0, "nothing bad was forwarded");
}

/// A stand-in backend that records the `authorization` header of each chat request.
fn recording_backend() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let record = Arc::clone(&record);
            std::thread::spawn(move || serve_recording(stream, &record));
        }
    });
    (addr, seen)
}

fn serve_recording(mut stream: TcpStream, record: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        if head.starts_with("post") {
            let auth = head
                .lines()
                .find_map(|l| l.strip_prefix("authorization:"))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default();
            record.lock().unwrap().push(auth);
        }
        let answer = br#"{"object":"chat.completion","choices":[]}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if stream.write_all(reply.as_bytes()).is_err() || stream.write_all(answer).is_err() {
            return;
        }
    }
}

#[test]
fn client_keys_are_checked_and_the_upstream_key_replaces_them() {
    let (backend, seen) = recording_backend();
    let backend_url = format!("http://{backend}");
    let (_dir, config) =
        config_file("auth: { api_keys: [client-key-1], upstream_key_env: E2E_FWD_UPSTREAM_KEY }\n");
    let mut command = Command::new(e2e::binary("forwarder"));
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--backend",
            &backend_url,
            "--config",
        ])
        .arg(&config)
        .env("E2E_FWD_UPSTREAM_KEY", "upstream-secret")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn forwarder");
    let mut lines = e2e::lines_of(child.stdout.take().unwrap());
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let mut stderr = stderr;
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let first = e2e::read_until(&mut lines, Duration::from_secs(30), |l| {
        l.starts_with("listening on")
    });
    let addr: std::net::SocketAddr = first
        .last()
        .and_then(|l| l.strip_prefix("listening on http://"))
        .and_then(|a| a.parse().ok())
        .expect("address");
    wait_for(Duration::from_secs(10), "ready", || {
        e2e::http_get(addr, "/readyz").0 == 200
    });

    let body = chat("hi", None);
    let none = post(addr, &[], body.as_bytes());
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["code"], "invalid_api_key");
    let wrong = post(addr, &[("authorization", "Bearer nope")], body.as_bytes());
    assert_eq!(wrong.status, 401);
    assert!(!wrong.text().contains("nope"), "keys are never echoed");
    let right = post(
        addr,
        &[("authorization", "Bearer client-key-1")],
        body.as_bytes(),
    );
    assert_eq!(right.status, 200, "{right:?}");
    assert_eq!(
        *seen.lock().unwrap(),
        ["bearer upstream-secret"],
        "only the good request reached the backend, with the upstream key"
    );

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let logs = logs.join().unwrap();
    assert!(!logs.contains("upstream-secret") && !logs.contains("client-key-1"));
}

#[test]
fn slow_clients_and_stalled_streams_time_out() {
    // One token per second: the gap after the first chunk exceeds the idle timeout.
    let mock = Server::mock(&[
        "--ttft",
        "1ms",
        "--tokens-per-s",
        "1",
        "--output-tokens",
        "5",
    ]);
    let (_dir, config) = config_file("timeouts: { idle: 300ms, header_read: 500ms }\n");
    let forwarder = Server::forwarder(&[&mock], &["--config", config.to_str().unwrap()]);

    let started = Instant::now();
    let stalled = post(forwarder.addr, &[], e2e::chat_body(true).as_bytes());
    assert_eq!(stalled.status, 200);
    let text = stalled.text();
    assert!(
        text.contains("stream_interrupted"),
        "an error event: {text}"
    );
    assert!(!text.contains("[DONE]"), "never a clean end: {text}");
    assert!(started.elapsed() < Duration::from_secs(4));

    // Half a request head, then silence: the forwarder hangs up.
    let mut slow = TcpStream::connect(forwarder.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after the header-read timeout, not the client's"
    );
}

#[test]
fn warm_up_runs_before_ready() {
    let mock = Server::mock(&["--ttft", "1ms", "--output-tokens", "1"]);
    let (_dir, config) = config_file("warmup: { connections: 3, request: true }\n");
    let forwarder = Server::forwarder(&[&mock], &["--config", config.to_str().unwrap()]);
    assert_eq!(
        mock_ok(&mock),
        1.0,
        "the warm-up request was answered first"
    );
    let answer = post(forwarder.addr, &[], chat("hi", None).as_bytes());
    assert_eq!(answer.status, 200);
}

#[test]
fn warm_up_pays_a_cold_backends_model_load_before_traffic() {
    let cold = [
        "--ttft",
        "1ms",
        "--output-tokens",
        "1",
        "--cold-start",
        "1500ms",
    ];
    let timed = |forwarder: &Server| {
        let started = Instant::now();
        let answer = post(forwarder.addr, &[], chat("hi", None).as_bytes());
        assert_eq!(answer.status, 200);
        started.elapsed()
    };

    // No warm-up: the first user waits for the load.
    let mock = Server::mock(&cold);
    let forwarder = Server::forwarder(&[&mock], &[]);
    let first = timed(&forwarder);
    assert!(first >= Duration::from_millis(1500), "{first:?}");
    assert!(timed(&forwarder) < Duration::from_secs(1), "loaded now");

    // Warm-up on, a fresh cold backend: the warm-up request paid for it before /readyz.
    let mock = Server::mock(&cold);
    let (_dir, config) = config_file("warmup: { connections: 2, request: true }\n");
    let forwarder = Server::forwarder(&[&mock], &["--config", config.to_str().unwrap()]);
    let first = timed(&forwarder);
    assert!(first < Duration::from_secs(1), "{first:?}");
}

#[test]
fn metrics_pass_promtool_and_carry_the_gateway_series() {
    let mock = Server::mock(&["--ttft", "1ms", "--output-tokens", "2"]);
    let forwarder = Server::forwarder(&[&mock], &[]);
    let stream = post(forwarder.addr, &[], e2e::chat_body(true).as_bytes());
    assert_eq!(stream.status, 200);
    let (status, page) = e2e::http_get(forwarder.addr, "/metrics");
    assert_eq!(status, 200);
    let body = page
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    for series in [
        "forwarder_ttft_seconds_count 1",
        "forwarder_overhead_seconds_count 1",
        "forwarder_retries_total 0",
        "forwarder_breaker_state{backend=\"backend-0\"} 0",
        "forwarder_cache_requests_total{result=\"hit\"} 0",
        "forwarder_upstream_requests_total{backend=\"backend-0\"} 1",
    ] {
        assert!(body.contains(series), "missing {series:?} in\n{body}");
    }

    // promtool comes with Debian's `prometheus` package; .ci/run installs it.
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    if !e2e::require(promtool.is_ok(), "promtool (apt-get install prometheus)") {
        return;
    }
    let mut child = promtool.unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_client_that_leaves_cancels_the_upstream_request() {
    let mock = Server::mock(&[
        "--ttft",
        "1ms",
        "--tokens-per-s",
        "5",
        "--output-tokens",
        "100",
    ]);
    let forwarder = Server::forwarder(&[&mock], &[]);
    let stream = e2e::http_request(
        forwarder.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        e2e::chat_body(true),
    );
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0);
        if line.contains("\"content\":\"") && !line.contains("\"content\":\"\"") {
            break;
        }
    }
    drop(reader);
    wait_for(Duration::from_secs(5), "the backend saw the cancel", || {
        metric(mock.addr, "mock_requests_total{outcome=\"cancelled\"}") == Some(1.0)
    });
    wait_for(Duration::from_secs(5), "nothing in flight", || {
        metric(forwarder.addr, "forwarder_inflight_requests") == Some(0.0)
    });
}

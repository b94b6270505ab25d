//! The forwarder end to end, in front of real mock backends: streams pass through unbuffered,
//! a backend dying mid-stream is never a clean end, load beyond the queue is shed, metrics and
//! config errors are what the README says, SIGTERM drains.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use e2e::*;

#[test]
fn sse_events_pass_through_one_by_one() {
    // 6 tokens at 10 tokens/s: the answer takes ~0.5 s after the first token.
    let backend = Server::mock(&[
        "--ttft",
        "50ms",
        "--tokens-per-s",
        "10",
        "--output-tokens",
        "6",
    ]);
    let forwarder = Server::forwarder(&[&backend], &[]);
    let stream = http_request(
        forwarder.addr,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        chat_body(true),
    );
    let started = Instant::now();
    let mut arrivals = Vec::new();
    let mut done = false;
    for line in BufReader::new(stream).lines() {
        let line = line.expect("stream reads cleanly");
        if line.starts_with("data: [DONE]") {
            done = true;
            break;
        }
        if line.starts_with("data: ")
            && line.contains("\"content\":\"")
            && !line.contains("\"content\":\"\"")
        {
            arrivals.push(started.elapsed());
        }
    }
    assert!(done, "the stream ends with [DONE]");
    assert_eq!(arrivals.len(), 6, "one event per token");
    let spread = arrivals[5] - arrivals[0];
    assert!(
        spread >= Duration::from_millis(350),
        "tokens arrived {spread:?} apart end to end: the forwarder buffered them"
    );
}

#[test]
fn a_backend_dying_mid_stream_is_never_a_clean_end() {
    let backend = Server::mock(&[
        "--ttft",
        "10ms",
        "--tokens-per-s",
        "5",
        "--output-tokens",
        "100",
    ]);
    let forwarder = Server::forwarder(&[&backend], &[]);
    let stream = http_request(
        forwarder.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        chat_body(true),
    );
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    // Wait for the first token, then kill the backend.
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).expect("read") > 0,
            "stream ended before a token"
        );
        if line.contains("\"content\":\"") && !line.contains("\"content\":\"\"") {
            break;
        }
    }
    let mut backend = backend;
    backend.child.kill().expect("kill backend");
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        !rest.contains("[DONE]"),
        "a cut stream must not end with [DONE]: {rest}"
    );
    // HTTP/1.1 chunked: a clean end is the terminating zero-length chunk; an aborted one lacks it.
    assert!(
        !rest.ends_with("0\r\n\r\n"),
        "the body must be aborted, not terminated: {rest:?}"
    );
}

#[test]
fn beyond_the_queue_requests_are_shed_with_429_and_counted() {
    let backend = Server::mock(&[
        "--ttft",
        "1s",
        "--tokens-per-s",
        "100",
        "--output-tokens",
        "2",
    ]);
    let forwarder = Server::forwarder(&[&backend], &["--max-inflight", "1", "--max-queue", "1"]);
    // One in flight, one waiting, the rest shed at once.
    let streams: Vec<_> = (0..5)
        .map(|_| {
            http_request(
                forwarder.addr,
                "POST",
                "/v1/chat/completions",
                &[],
                chat_body(false),
            )
        })
        .collect();
    let mut answers: Vec<String> = streams
        .into_iter()
        .map(|mut s| {
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            text
        })
        .collect();
    answers.sort();
    let shed = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 429"))
        .count();
    let ok = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 200"))
        .count();
    assert_eq!((ok, shed), (2, 3), "{answers:#?}");
    let shed_answer = answers
        .iter()
        .find(|a| a.starts_with("HTTP/1.1 429"))
        .unwrap()
        .to_ascii_lowercase();
    assert!(shed_answer.contains("retry-after: 1"), "{shed_answer}");
    assert!(
        shed_answer.contains("\"error\""),
        "OpenAI-style error body: {shed_answer}"
    );

    let (_, metrics) = http_get(forwarder.addr, "/metrics");
    assert!(metrics.contains("forwarder_shed_total 3"), "{metrics}");
    assert!(metrics.contains("forwarder_queue_depth_max 1"), "{metrics}");
}

#[test]
fn metrics_carry_the_documented_names() {
    let backend = Server::mock(&["--ttft", "5ms", "--output-tokens", "2"]);
    let forwarder = Server::forwarder(&[&backend], &[]);
    let mut answer = String::new();
    http_request(
        forwarder.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        chat_body(false),
    )
    .read_to_string(&mut answer)
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (status, metrics) = http_get(forwarder.addr, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "forwarder_requests_total{class=\"2xx\"} 1",
        "forwarder_request_duration_seconds_bucket",
        "forwarder_inflight_requests",
        "forwarder_queue_depth ",
        "forwarder_queue_depth_max",
        "forwarder_shed_total",
        "forwarder_backend_up{backend=",
    ] {
        assert!(metrics.contains(name), "missing {name} in:\n{metrics}");
    }
    assert!(!metrics.contains("user-"), "no user ids in labels");
    assert_eq!(http_get(forwarder.addr, "/nowhere").0, 404);
    assert_eq!(http_get(forwarder.addr, "/healthz").0, 200);
}

#[test]
fn a_bad_config_file_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("forwarder.yaml");
    std::fs::write(&config, "listen: 127.0.0.1:0\nbackends:\n  - url: http://127.0.0.1:9\nadmission:\n  max_inflite: 3\n").unwrap();
    let mut command = std::process::Command::new(binary("forwarder"));
    let run = e2e::run(
        command.arg("--config").arg(&config),
        Duration::from_secs(30),
    );
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.contains("forwarder.yaml:5:"),
        "file and line: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("max_inflite"),
        "the field: {}",
        run.stderr
    );
}

#[test]
fn sigterm_drains_an_in_flight_stream_then_exits_0() {
    let backend = Server::mock(&[
        "--ttft",
        "10ms",
        "--tokens-per-s",
        "20",
        "--output-tokens",
        "10",
    ]);
    let mut forwarder = Server::forwarder(&[&backend], &[]);
    let stream = http_request(
        forwarder.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        chat_body(true),
    );
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    forwarder.signal(libc::SIGTERM);
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(
        rest.contains("data: [DONE]"),
        "the in-flight stream finished: {rest}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = forwarder.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "forwarder did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

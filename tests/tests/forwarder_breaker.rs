//! The circuit breaker end to end: it opens after exactly N consecutive failures, answers with
//! the fallback while open, lets exactly one probe through after the wait, closes when the
//! probe succeeds, and never counts the forwarder's own shed answers.

mod fwd;

use std::time::{Duration, Instant};

use e2e::Server;
use fwd::{chat, metric, send, wait_for};

fn chat_once(addr: std::net::SocketAddr) -> fwd::Answer {
    send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        chat("hi", None).as_bytes(),
    )
}

fn mock_errors(mock: &Server) -> Option<f64> {
    metric(mock.addr, "mock_requests_total{outcome=\"error\"}")
}

fn state(forwarder: &Server) -> Option<f64> {
    metric(
        forwarder.addr,
        "forwarder_breaker_state{backend=\"backend-0\"}",
    )
}

const WAIT: Duration = Duration::from_secs(1);

#[test]
fn opens_after_exactly_n_failures_then_probes_exactly_once() {
    // Errors come after the TTFT, so the probe stays in flight long enough to overlap others.
    let mock = Server::mock(&[
        "--ttft",
        "400ms",
        "--error-rate",
        "100",
        "--error-status",
        "500",
    ]);
    let forwarder = Server::forwarder(
        &[&mock],
        &["--breaker-failures", "3", "--breaker-wait", "1s"],
    );
    for i in 0..3 {
        let answer = chat_once(forwarder.addr);
        assert_eq!(
            answer.status, 500,
            "failure {i} passes the backend's error on"
        );
        assert_eq!(state(&forwarder), Some(if i < 2 { 0.0 } else { 1.0 }));
    }
    assert_eq!(mock_errors(&mock), Some(3.0));

    let opened = Instant::now();
    let fallback = chat_once(forwarder.addr);
    assert_eq!(fallback.status, 503, "{fallback:?}");
    assert_eq!(
        fallback.json()["error"]["message"],
        "系统繁忙,请稍后重试",
        "the configured fallback answer"
    );
    assert_eq!(mock_errors(&mock), Some(3.0), "nothing reached the backend");

    // The wait is a time, not an event: sleep through it.
    std::thread::sleep(WAIT.saturating_sub(opened.elapsed()) + Duration::from_millis(100));
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let addr = forwarder.addr;
            std::thread::spawn(move || chat_once(addr).status)
        })
        .collect();
    let mut statuses: Vec<u16> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [500, 503, 503, 503],
        "exactly one probe went through"
    );
    assert_eq!(mock_errors(&mock), Some(4.0));
    assert_eq!(
        state(&forwarder),
        Some(1.0),
        "the failed probe re-opened it"
    );
    assert_eq!(
        metric(
            forwarder.addr,
            "forwarder_breaker_transitions_total{backend=\"backend-0\",state=\"half_open\"}"
        ),
        Some(1.0)
    );
    assert!(metric(forwarder.addr, "forwarder_fallback_total").unwrap() >= 4.0);
}

#[test]
fn a_successful_probe_closes_the_breaker() {
    let port = fwd::free_port();
    let listen = format!("127.0.0.1:{port}");
    let failing = Server::start(
        &e2e::binary("loadgen"),
        &[
            "mock",
            "--listen",
            &listen,
            "--ttft",
            "1ms",
            "--error-rate",
            "100",
        ],
    );
    let forwarder = Server::forwarder(
        &[&failing],
        &["--breaker-failures", "2", "--breaker-wait", "1s"],
    );
    assert_eq!(chat_once(forwarder.addr).status, 500);
    assert_eq!(chat_once(forwarder.addr).status, 500);
    let opened = Instant::now();
    assert_eq!(state(&forwarder), Some(1.0));

    // The backend is fixed: same address, healthy now.
    drop(failing);
    let _healthy = Server::start(
        &e2e::binary("loadgen"),
        &[
            "mock",
            "--listen",
            &listen,
            "--ttft",
            "1ms",
            "--output-tokens",
            "2",
        ],
    );
    std::thread::sleep(WAIT.saturating_sub(opened.elapsed()) + Duration::from_millis(100));
    wait_for(Duration::from_secs(10), "the probe succeeds", || {
        chat_once(forwarder.addr).status == 200
    });
    assert_eq!(state(&forwarder), Some(0.0));
    assert_eq!(chat_once(forwarder.addr).status, 200);
}

#[test]
fn shed_answers_never_count_as_backend_failures() {
    let mock = Server::mock(&["--ttft", "500ms", "--output-tokens", "2"]);
    let forwarder = Server::forwarder(
        &[&mock],
        &[
            "--breaker-failures",
            "1",
            "--max-inflight",
            "1",
            "--max-queue",
            "0",
        ],
    );
    let addr = forwarder.addr;
    let slow = std::thread::spawn(move || chat_once(addr).status);
    wait_for(
        Duration::from_secs(10),
        "the first request in flight",
        || metric(addr, "forwarder_inflight_requests") == Some(1.0),
    );
    for _ in 0..3 {
        assert_eq!(chat_once(addr).status, 429);
    }
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(state(&forwarder), Some(0.0), "still closed");
    assert_eq!(chat_once(addr).status, 200);
}

#[test]
fn a_crashed_backends_breaker_opens_within_seconds_even_without_traffic() {
    let a = Server::mock(&["--ttft", "1ms", "--output-tokens", "2"]);
    let b = Server::mock(&["--ttft", "1ms", "--output-tokens", "2"]);
    let forwarder = Server::forwarder(&[&a, &b], &[]);
    let crashed = Instant::now();
    drop(b);
    // Failed health checks (one a second) count, so the default five take about five seconds.
    wait_for(
        Duration::from_secs(15),
        "the breaker of the crashed backend opens",
        || {
            metric(
                forwarder.addr,
                "forwarder_breaker_state{backend=\"backend-1\"}",
            ) == Some(1.0)
        },
    );
    assert!(
        crashed.elapsed() < Duration::from_secs(8),
        "opened after {:?}",
        crashed.elapsed()
    );
    assert_eq!(state(&forwarder), Some(0.0), "the healthy one stays closed");
    assert_eq!(chat_once(forwarder.addr).status, 200);
}

//! Routing end to end: a user sticks to one backend, losing one of N backends moves only its
//! users and they come back after recovery; requests without a user id go by power of two
//! choices (peak EWMA); failures before any byte reached the client are retried elsewhere.

mod fwd;

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::Server;
use fwd::{chat, metric, send, wait_for};

fn backend_of(addr: std::net::SocketAddr, user: &str) -> String {
    let answer = send(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json"), ("x-user-id", user)],
        chat("hi", None).as_bytes(),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.header("x-forwarder-backend").expect("backend named")
}

fn placement(addr: std::net::SocketAddr, users: &[String]) -> Vec<String> {
    users.iter().map(|u| backend_of(addr, u)).collect()
}

fn up(forwarder: &Server, backend: &str) -> Option<f64> {
    metric(
        forwarder.addr,
        &format!("forwarder_backend_up{{backend=\"{backend}\"}}"),
    )
}

#[test]
fn users_stick_only_a_lost_backends_users_move_and_they_return() {
    let mocks: Vec<Server> = (0..4)
        .map(|_| Server::mock(&["--ttft", "1ms", "--output-tokens", "2"]))
        .collect();
    let refs: Vec<&Server> = mocks.iter().collect();
    // About hashing, not the breaker: failed health checks must not open it here.
    let forwarder = Server::forwarder(&refs, &["--breaker-failures", "1000"]);
    let users: Vec<String> = (0..48).map(|u| format!("user-{u}")).collect();

    let before = placement(forwarder.addr, &users);
    assert_eq!(before, placement(forwarder.addr, &users), "sticky");
    let mut shares: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &before {
        *shares.entry(b.as_str()).or_default() += 1;
    }
    assert!(
        shares.len() >= 3,
        "users spread over the backends: {shares:?}"
    );

    // The body's `user` field is the same key as the header.
    let by_body = send(
        forwarder.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        chat("hi", Some("user-7")).as_bytes(),
    );
    assert_eq!(by_body.header("x-forwarder-backend").unwrap(), before[7]);

    // Freeze one backend: health checks time out and it is marked down.
    let lost = before[0].clone();
    let index: usize = lost.strip_prefix("backend-").unwrap().parse().unwrap();
    mocks[index].signal(libc::SIGSTOP);
    wait_for(
        Duration::from_secs(10),
        "the frozen backend marked down",
        || up(&forwarder, &lost) == Some(0.0),
    );
    let during = placement(forwarder.addr, &users);
    for ((user, b), d) in users.iter().zip(&before).zip(&during) {
        assert_ne!(d, &lost, "{user} still sent to the lost backend");
        if b != &lost {
            assert_eq!(b, d, "{user} moved although its backend is fine");
        }
    }

    mocks[index].signal(libc::SIGCONT);
    wait_for(Duration::from_secs(10), "the backend back up", || {
        up(&forwarder, &lost) == Some(1.0)
    });
    assert_eq!(
        before,
        placement(forwarder.addr, &users),
        "users return after recovery"
    );
}

#[test]
fn without_a_user_id_the_faster_backend_gets_most_requests() {
    let slow = Server::mock(&["--ttft", "150ms", "--output-tokens", "2"]);
    let fast = Server::mock(&["--ttft", "1ms", "--output-tokens", "2"]);
    let forwarder = Server::forwarder(&[&slow, &fast], &[]);
    let mut fast_count = 0;
    for _ in 0..20 {
        let answer = send(
            forwarder.addr,
            "POST",
            "/v1/chat/completions",
            &[],
            chat("hi", None).as_bytes(),
        );
        assert_eq!(answer.status, 200);
        if answer.header("x-forwarder-backend").as_deref() == Some("backend-1") {
            fast_count += 1;
        }
    }
    // Each backend is measured at most once or twice before peak EWMA tells them apart.
    assert!(fast_count >= 17, "fast backend got {fast_count} of 20");
}

#[test]
fn errors_before_any_byte_are_retried_on_another_backend() {
    let failing = Server::mock(&[
        "--ttft",
        "1ms",
        "--error-rate",
        "100",
        "--error-status",
        "503",
    ]);
    let good = Server::mock(&["--ttft", "1ms", "--output-tokens", "2"]);
    let forwarder = Server::forwarder(&[&failing, &good], &["--routing", "round_robin"]);
    for _ in 0..6 {
        let answer = send(
            forwarder.addr,
            "POST",
            "/v1/chat/completions",
            &[],
            chat("hi", None).as_bytes(),
        );
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.header("x-forwarder-backend").unwrap(), "backend-1");
    }
    let retries = metric(forwarder.addr, "forwarder_retries_total").unwrap();
    let failures = metric(
        forwarder.addr,
        "forwarder_upstream_errors_total{backend=\"backend-0\",kind=\"status_5xx\"}",
    )
    .unwrap();
    assert!(
        retries >= 1.0,
        "some requests went to the failing one first"
    );
    assert_eq!(retries, failures, "every failure was retried");
}

#[test]
fn a_backend_at_its_concurrency_bound_passes_requests_to_the_next() {
    let a = Server::mock(&["--ttft", "600ms", "--output-tokens", "2"]);
    let b = Server::mock(&["--ttft", "600ms", "--output-tokens", "2"]);
    let forwarder = Server::forwarder(&[&a, &b], &["--per-backend-inflight", "1"]);
    let addr = forwarder.addr;
    let first = std::thread::spawn(move || backend_of(addr, "same-user"));
    wait_for(
        Duration::from_secs(10),
        "the first request in flight",
        || metric(addr, "forwarder_inflight_requests") == Some(1.0),
    );
    let second = backend_of(addr, "same-user");
    let first = first.join().unwrap();
    assert_ne!(
        first, second,
        "the owner was full, so the next backend took it"
    );
    // Free again: the user is back on its own backend.
    assert_eq!(backend_of(addr, "same-user"), first);
}

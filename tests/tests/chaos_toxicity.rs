//! Toxicity of network faults, per connection (toxiproxy's way) and per request on keep-alive
//! connections, and a latency toxic on a stream, all through `loadgen chaos-proxy`.

use std::time::{Duration, Instant};

use e2e::*;

const DELAY_MS: u64 = 300;
/// A delayed answer takes at least `DELAY_MS`; a plain one a few milliseconds, and on a busy
/// machine still far less than this.
const DELAYED: Duration = Duration::from_millis(DELAY_MS - 10);

fn fast_mock() -> Server {
    Server::mock(&["--ttft", "1ms", "--output-tokens", "4"])
}

/// Times `count` requests made one after another on one keep-alive connection.
fn times_on_one_connection(addr: std::net::SocketAddr, count: usize) -> Vec<Duration> {
    let mut connection = KeepAlive::connect(addr);
    let body = chat_body(false);
    (0..count)
        .map(|_| {
            let started = Instant::now();
            let (status, answer) = connection.post("/v1/chat/completions", &body);
            assert_eq!(status, 200, "{answer}");
            started.elapsed()
        })
        .collect()
}

fn set_half_latency(proxy: &ChaosProxy, per: &str) {
    let toxic =
        format!(r#"{{"kind":"latency","latency_ms":{DELAY_MS},"toxicity":0.5,"per":"{per}"}}"#);
    let (status, answer) = proxy.call("PUT", "/toxics/half", &toxic);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn per_request_toxicity_delays_about_half_the_requests_on_one_connection() {
    let mock = fast_mock();
    let proxy = ChaosProxy::start(mock.addr);
    set_half_latency(&proxy, "request");
    let times = times_on_one_connection(proxy.addr, 40);
    let delayed = times.iter().filter(|t| **t >= DELAYED).count();
    // Binomial(40, 0.5): 20 +- 3.2; 8..=32 is beyond 3.7 standard deviations either way.
    assert!(
        (8..=32).contains(&delayed),
        "{delayed} of 40 delayed: {times:?}"
    );
    for t in times.iter().filter(|t| **t >= DELAYED) {
        assert!(*t < Duration::from_millis(DELAY_MS * 3), "{times:?}");
    }
}

#[test]
fn per_connection_toxicity_delays_a_connection_wholly_or_not_at_all() {
    let mock = fast_mock();
    let proxy = ChaosProxy::start(mock.addr);
    set_half_latency(&proxy, "connection");
    // 16 connections of 3 requests each, four at a time.
    let connections: Vec<Vec<Duration>> = (0..4)
        .flat_map(|_| {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| times_on_one_connection(proxy.addr, 3)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut delayed_connections = 0;
    for times in &connections {
        let delayed = times.iter().filter(|t| **t >= DELAYED).count();
        assert!(
            delayed == 0 || delayed == times.len(),
            "a connection partly delayed: {times:?}"
        );
        delayed_connections += usize::from(delayed > 0);
    }
    // Binomial(16, 0.5): all 16 alike has a chance of 1 in 32,768.
    assert!(
        (1..16).contains(&delayed_connections),
        "{delayed_connections} of 16 connections delayed"
    );
}

/// Time to the end of one streamed answer of many chunks.
fn stream_time(addr: std::net::SocketAddr) -> Duration {
    let started = Instant::now();
    let (status, text) = read_answer(http_request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[],
        chat_body(true),
    ));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("[DONE]"), "a whole stream: {text}");
    started.elapsed()
}

#[test]
fn a_latency_toxic_shifts_a_stream_once_not_once_per_chunk() {
    // 40 tokens at 200/s: about 40 chunks over 200 ms.
    let mock = Server::mock(&[
        "--ttft",
        "1ms",
        "--tokens-per-s",
        "200",
        "--output-tokens",
        "40",
    ]);
    let proxy = ChaosProxy::start(mock.addr);
    let plain = stream_time(proxy.addr);
    let toxic = format!(r#"{{"kind":"latency","latency_ms":{DELAY_MS}}}"#);
    assert_eq!(proxy.call("PUT", "/toxics/lag", &toxic).0, 200);
    let delayed = stream_time(proxy.addr);
    let added = delayed.saturating_sub(plain);
    assert!(
        added >= Duration::from_millis(DELAY_MS - 20)
            && added < Duration::from_millis(DELAY_MS * 2),
        "a {DELAY_MS} ms latency added {added:?} to a {plain:?} stream"
    );
}

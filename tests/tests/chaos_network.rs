//! Network faults: the fault proxy standalone (`loadgen chaos-proxy` and its control API), every
//! toxic seen at the client, and a latency fault in a scenario, between the forwarder and the
//! backends.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::*;

/// A mock with a long answer, and `loadgen chaos-proxy` in front of it.
struct Proxied {
    _mock: Server,
    proxy: ChaosProxy,
}

fn proxied() -> Proxied {
    let mock = Server::mock(&[
        "--ttft",
        "1ms",
        "--tokens-per-s",
        "100000",
        "--output-tokens",
        "2000",
    ]);
    Proxied {
        proxy: ChaosProxy::start(mock.addr),
        _mock: mock,
    }
}

fn control(p: &Proxied, method: &str, path: &str, body: &str) -> u16 {
    p.proxy.call(method, path, body).0
}

/// One whole chat answer through the proxy: the bytes read, the time taken, and how it ended
/// (a proxy that is down may close before the request is even written).
fn fetch(addr: SocketAddr) -> (usize, Duration, std::io::Result<()>) {
    let started = Instant::now();
    let body = chat_body(false);
    let exchange = || -> std::io::Result<Vec<u8>> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        read.map(|_| answer)
    };
    match exchange() {
        Ok(answer) => (answer.len(), started.elapsed(), Ok(())),
        Err(e) => (0, started.elapsed(), Err(e)),
    }
}

#[test]
fn toxics_set_through_the_control_api_shape_the_traffic() {
    let p = proxied();
    let (size, plain, ended) = fetch(p.proxy.addr);
    assert!(
        ended.is_ok() && size > 8_000,
        "a long answer passes: {size} bytes"
    );

    assert_eq!(
        control(
            &p,
            "PUT",
            "/toxics/slow",
            r#"{"kind":"latency","latency_ms":300}"#
        ),
        200
    );
    let (_, slow, _) = fetch(p.proxy.addr);
    let added = slow.saturating_sub(plain);
    assert!(
        added >= Duration::from_millis(270) && added < Duration::from_millis(600),
        "latency added {added:?}"
    );
    assert_eq!(control(&p, "DELETE", "/toxics/slow", ""), 200);

    // 20 KB/s: the answer takes its size / rate, +-15 %.
    assert_eq!(
        control(
            &p,
            "PUT",
            "/toxics/bw",
            r#"{"kind":"bandwidth","rate_kbps":20}"#
        ),
        200
    );
    let (size, took, _) = fetch(p.proxy.addr);
    let expected = size as f64 / 20_000.0;
    let took = took.saturating_sub(plain).as_secs_f64();
    assert!(
        (took - expected).abs() <= expected * 0.15,
        "{size} bytes took {took:.3}s at 20 KB/s, expected {expected:.3}s"
    );
    assert_eq!(control(&p, "DELETE", "/toxics", ""), 200);

    assert_eq!(
        control(&p, "PUT", "/toxics/rst", r#"{"kind":"reset_peer"}"#),
        200
    );
    let (_, _, ended) = fetch(p.proxy.addr);
    assert_eq!(
        ended.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "reset_peer resets"
    );

    assert_eq!(control(&p, "PUT", "/toxics/rst", r#"{"kind":"down"}"#), 200);
    let (size, _, _) = fetch(p.proxy.addr);
    assert_eq!(size, 0, "down: no answer at all");

    assert_eq!(
        control(
            &p,
            "PUT",
            "/toxics/bad",
            r#"{"kind":"bandwidth","rate_kbps":0}"#
        ),
        400
    );
    assert_eq!(control(&p, "DELETE", "/toxics", ""), 200);
    let (size, _, ended) = fetch(p.proxy.addr);
    assert!(ended.is_ok() && size > 8_000, "back to normal");
}

#[test]
fn slicer_limit_data_and_timeout_shape_the_answer_as_asked() {
    let p = proxied();
    // 64-byte slices 1 ms apart: all of it arrives, at least a millisecond a slice.
    let slicer = r#"{"kind":"slicer","size_bytes":64,"delay_us":1000}"#;
    assert_eq!(control(&p, "PUT", "/toxics/chop", slicer), 200);
    let (size, took, ended) = fetch(p.proxy.addr);
    assert!(
        ended.is_ok() && size > 8_000,
        "a whole answer: {size} bytes"
    );
    let slices = size as f64 / 64.0;
    assert!(
        took.as_secs_f64() >= slices * 0.001,
        "{slices:.0} slices in {took:?}"
    );
    assert_eq!(control(&p, "DELETE", "/toxics", ""), 200);

    let limit = r#"{"kind":"limit_data","bytes":1000}"#;
    assert_eq!(control(&p, "PUT", "/toxics/cut", limit), 200);
    let (size, _, _) = fetch(p.proxy.addr);
    assert_eq!(size, 1000, "closed after exactly the limit");
    assert_eq!(control(&p, "DELETE", "/toxics", ""), 200);

    let hole = r#"{"kind":"timeout","timeout_ms":400}"#;
    assert_eq!(control(&p, "PUT", "/toxics/hole", hole), 200);
    let (size, took, _) = fetch(p.proxy.addr);
    assert_eq!(size, 0, "nothing passes a timeout toxic");
    assert!(
        took >= Duration::from_millis(380) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    assert_eq!(control(&p, "DELETE", "/toxics", ""), 200);
    let (size, _, ended) = fetch(p.proxy.addr);
    assert!(ended.is_ok() && size > 8_000, "back to normal");
}

/// How long after the answer's last byte the connection's close reached the client.
fn close_gap(addr: SocketAddr) -> Duration {
    let mut stream = http_request(addr, "POST", "/v1/chat/completions", &[], chat_body(false));
    let mut buf = [0u8; 16 << 10];
    let mut last_data = Instant::now();
    let mut read = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                read += n;
                last_data = Instant::now();
            }
            Err(e) => panic!("the answer broke after {read} bytes: {e}"),
        }
    }
    assert!(read > 8_000, "the whole answer came first: {read} bytes");
    last_data.elapsed()
}

#[test]
fn slow_close_passes_the_close_on_that_much_later() {
    let p = proxied();
    let plain = close_gap(p.proxy.addr);
    assert!(
        plain < Duration::from_millis(150),
        "plain close after {plain:?}"
    );
    let slow = r#"{"kind":"slow_close","delay_ms":500}"#;
    assert_eq!(control(&p, "PUT", "/toxics/slow", slow), 200);
    let held = close_gap(p.proxy.addr);
    assert!(
        held >= Duration::from_millis(480) && held < Duration::from_millis(1500),
        "close held back {held:?} (plain {plain:?})"
    );
}

#[test]
fn a_latency_fault_slows_answers_by_its_amount() {
    let scenario = "name: latency\n\
        stack:\n  backends:\n    count: 2\n    profile: { ttft: 10ms, tokens_per_s: 500, output_tokens: 4 }\n\
        request: { stream: false }\n\
        load:\n  stages: [{ duration: 1s, users: 5 }, { duration: 7s, users: 5 }]\n  think_time: 20ms\n\
        faults:\n  - { at: 3s, duration: 3s, target: all, kind: latency, delay: 200ms }\n\
        budgets: { lost: 0 }\n";
    let (dir, path) = write_scenario(scenario);
    let out = dir.path().join("report");
    let run = loadgen_run(&path, &out, &["--no-tui"], Duration::from_secs(120));
    assert_eq!(run.code(), Some(0), "{run:?}");
    let rows = read_timeseries(&out);
    // Seconds 1..3 before, 4..6 inside (clear of the edges).
    let before = median_over(&rows, "latency_p50_ms", 2.0, 3.0);
    let during = median_over(&rows, "latency_p50_ms", 5.0, 6.0);
    let added = during - before;
    assert!(
        (180.0..=220.0).contains(&added),
        "p50 {before} -> {during} ms"
    );
    let faults = std::fs::read_to_string(out.join("faults.csv")).unwrap();
    assert!(
        faults
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("latency-all,latency,"),
        "{faults}"
    );
}

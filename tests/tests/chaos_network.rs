//! Network faults: the fault proxy standalone (`loadgen chaos-proxy` and its control API), and a
//! latency fault in a scenario, between the forwarder and the backends.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::*;

/// A mock with a long answer, and `loadgen chaos-proxy` in front of it.
struct Proxied {
    _mock: Server,
    proxy: std::process::Child,
    addr: SocketAddr,
    control: SocketAddr,
}

impl Drop for Proxied {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
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
    let mut proxy = Command::new(binary("loadgen"))
        .args(["chaos-proxy", "--upstream", &mock.addr.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn chaos-proxy");
    let mut lines = lines_of(proxy.stdout.take().unwrap());
    let seen = read_until(&mut lines, Duration::from_secs(30), |l| {
        l.starts_with("control on")
    });
    let addr_of = |prefix: &str| -> SocketAddr {
        seen.iter()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|a| a.parse().ok())
            .expect("announced address")
    };
    Proxied {
        addr: addr_of("listening on http://"),
        control: addr_of("control on http://"),
        _mock: mock,
        proxy,
    }
}

fn control(p: &Proxied, method: &str, path: &str, body: &str) -> u16 {
    let mut stream = http_request(p.control, method, path, &[], body);
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
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
    let (size, plain, ended) = fetch(p.addr);
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
    let (_, slow, _) = fetch(p.addr);
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
    let (size, took, _) = fetch(p.addr);
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
    let (_, _, ended) = fetch(p.addr);
    assert_eq!(
        ended.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "reset_peer resets"
    );

    assert_eq!(control(&p, "PUT", "/toxics/rst", r#"{"kind":"down"}"#), 200);
    let (size, _, _) = fetch(p.addr);
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
    let (size, _, ended) = fetch(p.addr);
    assert!(ended.is_ok() && size > 8_000, "back to normal");
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
    let p50_in = |from: f64, to: f64| -> Vec<f64> {
        rows.iter()
            .filter(|r| (from..=to).contains(&r["elapsed_s"].parse::<f64>().unwrap()))
            .filter_map(|r| r["latency_p50_ms"].parse().ok())
            .collect()
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // Seconds 1..3 before, 4..6 inside (clear of the edges).
    let before = median(p50_in(2.0, 3.0));
    let during = median(p50_in(5.0, 6.0));
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

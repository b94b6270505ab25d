//! Every failure class, produced for real and counted once: 4xx, timeout, interrupted, and a
//! backend killed mid-stream (stream_cut, then reset/connect) — and the sums still add up.

use std::time::Duration;

use e2e::*;

const LIMIT: Duration = Duration::from_secs(90);

/// One backend, load straight to it, with `profile` and `rest` (request/load YAML) filled in.
fn direct(name: &str, profile: &str, rest: &str) -> String {
    format!(
        "name: {name}\nstack:\n  backends:\n    count: 1\n    profile: {{ {profile} }}\n  forwarder: {{ enabled: false }}\n{rest}"
    )
}

fn run_summary(
    text: &str,
    extra: &[&str],
) -> (Finished, std::collections::BTreeMap<String, Option<f64>>) {
    let (dir, scenario) = write_scenario(text);
    let out = dir.path().join("report");
    let run = loadgen_run(&scenario, &out, extra, LIMIT);
    assert!(matches!(run.code(), Some(0 | 1)), "a judged run: {run:?}");
    let summary = read_summary(&out);
    let get = |m: &str| summary[m].unwrap_or(0.0);
    let by_class: f64 = summary
        .iter()
        .filter(|(m, _)| m.starts_with("failed_"))
        .map(|(_, v)| v.unwrap_or(0.0))
        .sum();
    assert_eq!(
        get("requests"),
        get("ok") + get("failed") + get("dropped"),
        "{summary:?}"
    );
    assert_eq!(get("failed"), by_class, "{summary:?}");
    (run, summary)
}

#[test]
fn a_rejected_request_is_http_4xx() {
    // The mock rejects max_tokens: 0 with 400, as OpenAI does.
    let (_, s) = run_summary(
        &direct(
            "four",
            "ttft: 5ms, output_tokens: 2",
            "request: { max_tokens: 0 }\nload:\n  stages: [{ duration: 1s, users: 2 }]\n  start_users: 2\n  think_time: 20ms\n",
        ),
        &[],
    );
    assert!(s["failed_http_4xx"].unwrap() > 0.0);
    assert_eq!(s["ok"].unwrap(), 0.0);
}

#[test]
fn a_slow_answer_is_a_timeout() {
    let (_, s) = run_summary(
        &direct(
            "slow",
            "ttft: 3s, output_tokens: 2",
            "request: { timeout: 200ms }\nload:\n  stages: [{ duration: 1s, users: 2 }]\n  start_users: 2\n  think_time: 10ms\n",
        ),
        &[],
    );
    assert!(s["failed_timeout"].unwrap() >= 2.0, "{s:?}");
    assert_eq!(s["ok"].unwrap(), 0.0);
}

#[test]
fn requests_still_open_after_the_graceful_stop_are_interrupted() {
    let (_, s) = run_summary(
        &direct(
            "interrupted",
            "ttft: 20s, output_tokens: 2",
            "load:\n  stages: [{ duration: 500ms, users: 3 }]\n  start_users: 3\n  graceful_stop: 300ms\n",
        ),
        &[],
    );
    assert_eq!(s["failed_interrupted"].unwrap(), 3.0, "{s:?}");
}

#[test]
fn a_backend_killed_mid_stream_gives_stream_cuts_then_connection_failures() {
    // Long streams (100 tokens at 20/s) from one backend; kill it once load is flowing.
    let backend = Server::mock(&[
        "--ttft",
        "10ms",
        "--tokens-per-s",
        "20",
        "--output-tokens",
        "100",
    ]);
    let text = format!(
        "name: killed\ntarget: http://{}\nload:\n  stages: [{{ duration: 3s, users: 4 }}]\n  start_users: 4\n  think_time: 50ms\n",
        backend.addr
    );
    let (dir, scenario) = write_scenario(&text);
    let out = dir.path().join("report");
    let child = std::process::Command::new(binary("loadgen"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill once loadgen's first streams are under way: the backend has answered headers.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !http_get(backend.addr, "/metrics")
        .1
        .contains("mock_inflight_requests 4")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "streams never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut backend = backend;
    backend.child.kill().unwrap();
    let run = wait(child, LIMIT);
    assert_eq!(run.code(), Some(0), "{run:?}");
    let s = read_summary(&out);
    let get = |m: &str| s[m].unwrap_or(0.0);
    assert_eq!(
        get("failed_stream_cut"),
        4.0,
        "the four open streams were cut: {s:?}"
    );
    assert!(get("failed_connect") > 0.0, "then nothing listens: {s:?}");
    assert_eq!(get("ok"), 0.0, "no stream could finish before the kill");
    assert_eq!(get("requests"), get("ok") + get("failed"));
}

#[test]
fn a_connection_closed_before_any_answer_is_a_reset() {
    // A server that reads the request and hangs up without a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hangs_up = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut socket, _)) => {
                        socket.set_nonblocking(false).unwrap();
                        socket
                            .set_read_timeout(Some(Duration::from_secs(1)))
                            .unwrap();
                        let _ = socket.read(&mut [0u8; 4096]);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    };
    let text = format!(
        "name: reset\ntarget: http://{addr}\nload:\n  stages: [{{ duration: 1s, users: 2 }}]\n  start_users: 2\n  think_time: 50ms\n"
    );
    let (_, s) = run_summary(&text, &[]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    hangs_up.join().unwrap();
    assert!(s["failed_reset"].unwrap() > 0.0, "{s:?}");
    assert_eq!(s["ok"].unwrap(), 0.0);
}

/// A server answering every request on a keep-alive connection with `answer`, after reading the
/// whole request (head and `Content-Length` body). Its threads end with the test process.
fn answering_every_request_with(answer: &'static str) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { continue };
            std::thread::spawn(move || {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One whole request in the buffer: answer it, keep what follows.
                    if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if buffer.len() >= end + 4 + length {
                            buffer.drain(..end + 4 + length);
                            if socket.write_all(answer.as_bytes()).is_err() {
                                return;
                            }
                            continue;
                        }
                    }
                    match socket.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_redirect_is_http_other() {
    // Neither 2xx nor 4xx/5xx: a 302 (with a body to drain) is its own class, and the
    // connection it came on stays usable, so every request gets that answer and nothing else.
    let addr = answering_every_request_with(
        "HTTP/1.1 302 Found\r\nlocation: /elsewhere\r\ncontent-length: 5\r\n\r\nmoved",
    );
    let text = format!(
        "name: redirected\ntarget: http://{addr}\nload:\n  stages: [{{ duration: 1s, users: 2 }}]\n  start_users: 2\n  think_time: 50ms\n"
    );
    let (_, s) = run_summary(&text, &[]);
    let get = |m: &str| s[m].unwrap_or(0.0);
    assert!(get("failed_http_other") >= 4.0, "{s:?}");
    assert_eq!(get("failed_http_other"), get("requests"), "{s:?}");
    assert_eq!(get("failed_http_4xx") + get("failed_http_5xx"), 0.0);
    assert_eq!(get("failed_reset") + get("failed_stream_cut"), 0.0, "{s:?}");
}

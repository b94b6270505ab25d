//! Helpers for the forwarder's end-to-end tests: raw HTTP/1.1 exchanges with byte bodies,
//! reading one metric, writing a config file, polling with a deadline.

#![allow(dead_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One whole answer read from a `Connection: close` exchange.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The head with header names lowercased, one `name: value` per line.
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()).map(|v| v.trim().to_owned()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}\n{}", self.head, self.text()))
    }
}

/// Sends a request on a fresh connection and reads the whole answer (30 s at most).
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = e2e::http_request(addr, method, path, headers, body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse(&raw)
}

pub fn parse(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head in {:?}", String::from_utf8_lossy(raw)));
    let head_text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head_text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head = head_text
        .lines()
        .map(|l| match l.split_once(':') {
            Some((name, value)) => format!("{}:{}", name.to_ascii_lowercase(), value),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Answer { status, head, body }
}

/// Decodes a chunked body as far as it is complete.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size else { return out };
        if size == 0 || raw.len() < eol + 2 + size {
            out.extend_from_slice(&raw[(eol + 2).min(raw.len())..]);
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[(eol + 4 + size).min(raw.len())..];
    }
}

/// A non-streaming chat request body.
pub fn chat(content: &str, user: Option<&str>) -> String {
    let user = user
        .map(|u| format!(r#","user":"{u}""#))
        .unwrap_or_default();
    format!(
        r#"{{"model":"mock-llm","messages":[{{"role":"user","content":"{content}"}}],"max_tokens":4{user}}}"#
    )
}

/// The value of the first metric line starting with `series` (name plus labels), e.g.
/// `forwarder_breaker_state{backend="backend-0"}`.
pub fn metric(addr: SocketAddr, series: &str) -> Option<f64> {
    let (_, text) = e2e::http_get(addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Polls `check` every 20 ms until it holds, failing after `limit`.
pub fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes a forwarder config file (without `listen`/`backends`: the flags give them).
pub fn config_file(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("forwarder.yaml");
    std::fs::write(&path, yaml).expect("write config");
    (dir, path)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

//! The WebSocket front end to end: a chat request JSON in, streamed deltas out, through the
//! same pipeline as HTTP; several requests on one connection; bad input answered, not fatal.
//! The client is a minimal RFC 6455 one written here, so the test does not trust the
//! forwarder's own WebSocket library.

mod fwd;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use e2e::Server;

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> (u16, Option<Client>) {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut head = format!(
            "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        writer.write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("answer head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            lines.push(line.trim_end().to_ascii_lowercase());
        }
        let status = lines[0]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status != 101 {
            return (status, None);
        }
        assert!(
            lines.contains(&"sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=".to_owned()),
            "{lines:?}"
        );
        (status, Some(Client { reader, writer }))
    }

    /// A masked text frame, as clients must send.
    fn send_text(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.writer.write_all(&frame).unwrap();
    }

    /// The next data message's text, or `Err(close code)` on a close frame.
    fn recv(&mut self) -> Result<String, u16> {
        loop {
            let mut head = [0u8; 2];
            self.reader.read_exact(&mut head).expect("frame head");
            let opcode = head[0] & 0x0f;
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                let mut ext = [0u8; 2];
                self.reader.read_exact(&mut ext).unwrap();
                len = u64::from(u16::from_be_bytes(ext));
            } else if len == 127 {
                let mut ext = [0u8; 8];
                self.reader.read_exact(&mut ext).unwrap();
                len = u64::from_be_bytes(ext);
            }
            assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
            let mut payload = vec![0u8; len as usize];
            self.reader.read_exact(&mut payload).unwrap();
            match opcode {
                0x1 | 0x2 => return Ok(String::from_utf8_lossy(&payload).into_owned()),
                0x8 => {
                    let code = payload
                        .get(..2)
                        .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                    return Err(code);
                }
                _ => continue,
            }
        }
    }
}

fn request(stream: bool) -> String {
    format!(
        r#"{{"model":"mock-llm","messages":[{{"role":"user","content":"hi"}}],"stream":{stream}}}"#
    )
}

#[test]
fn chat_over_websocket_streams_deltas_then_done() {
    let mock = Server::mock(&[
        "--ttft",
        "5ms",
        "--tokens-per-s",
        "200",
        "--output-tokens",
        "4",
    ]);
    let forwarder = Server::forwarder(&[&mock], &[]);
    let (status, client) = Client::connect(forwarder.addr, &[("x-user-id", "ws-user")]);
    assert_eq!(status, 101);
    let mut client = client.unwrap();

    client.send_text(&request(true));
    let mut tokens = 0;
    loop {
        let message = client.recv().expect("a data message");
        if message == "[DONE]" {
            break;
        }
        let chunk: serde_json::Value = serde_json::from_str(&message).expect("chunk JSON");
        assert_eq!(chunk["object"], "chat.completion.chunk", "{message}");
        if chunk["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
        {
            tokens += 1;
        }
    }
    assert_eq!(tokens, 4, "one delta per token");

    // The same connection carries the next request, whole this time.
    client.send_text(&request(false));
    let whole: serde_json::Value = serde_json::from_str(&client.recv().unwrap()).unwrap();
    assert_eq!(whole["object"], "chat.completion");

    client.send_text("{\"model\": ");
    let error: serde_json::Value = serde_json::from_str(&client.recv().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "invalid_json");

    assert_eq!(
        fwd::metric(forwarder.addr, "forwarder_requests_total{class=\"2xx\"}"),
        Some(2.0),
        "messages are counted as requests"
    );
}

#[test]
fn websocket_needs_a_key_when_keys_are_configured() {
    let mock = Server::mock(&["--ttft", "1ms", "--output-tokens", "2"]);
    let (_dir, config) = fwd::config_file("auth: { api_keys: [ws-key] }\n");
    let forwarder = Server::forwarder(&[&mock], &["--config", config.to_str().unwrap()]);
    assert_eq!(Client::connect(forwarder.addr, &[]).0, 401);
    let (status, client) = Client::connect(forwarder.addr, &[("authorization", "Bearer ws-key")]);
    assert_eq!(status, 101);
    let mut client = client.unwrap();
    client.send_text(&request(false));
    let whole: serde_json::Value = serde_json::from_str(&client.recv().unwrap()).unwrap();
    assert_eq!(whole["object"], "chat.completion");
}

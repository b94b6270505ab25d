//! A minimal HTTP/1.1 GET for readiness checks and metrics scrapes: one short connection, no
//! pooling, so it never competes with the load for the engine's connections.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::engine::h1::{BodyDecoder, head};

/// Largest answer read (a forwarder's /metrics is a few kilobytes).
const MAX_ANSWER: u64 = 4 << 20;

/// GETs `path`; returns the status and the body.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
        parse(&answer)
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))?
}

/// The status and body of a whole answer, read with the load engine's own HTTP/1.1 decoding.
fn parse(answer: &[u8]) -> std::io::Result<(u16, String)> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer");
    let (head, head_len) = head::parse(answer).map_err(|_| bad())?.ok_or_else(bad)?;
    let mut body = Vec::new();
    BodyDecoder::new(head.framing)
        .decode(&answer[head_len..], |piece| body.extend_from_slice(piece))
        .map_err(|_| bad())?;
    Ok((head.status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_and_chunked_answers_parse() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(super::parse(plain).unwrap(), (200, "ok".to_owned()));
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(super::parse(chunked).unwrap(), (503, "abcde".to_owned()));
    }
}

//! Switches faults on and off in running processes through their HTTP control: HTTP faults in
//! a mock (`/_chaos`), toxics in a `loadgen chaos-proxy` (`/toxics`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::proxy::Toxic;
use crate::mock::chaos::HttpFault;

/// A control call should take milliseconds; a hung mock must not hold the timeline.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Sets fault `id` on the mock at `addr`.
pub async fn set(addr: SocketAddr, id: &str, fault: &HttpFault) -> Result<(), String> {
    let body = serde_json::to_string(fault).map_err(|e| e.to_string())?;
    call(addr, "PUT", &format!("/_chaos/{id}"), &body).await
}

/// Clears fault `id` on the mock at `addr`.
pub async fn clear(addr: SocketAddr, id: &str) -> Result<(), String> {
    call(addr, "DELETE", &format!("/_chaos/{id}"), "").await
}

/// Sets toxic `id` on the chaos proxy whose control API is at `addr`.
pub async fn set_toxic(addr: SocketAddr, id: &str, toxic: &Toxic) -> Result<(), String> {
    let body = serde_json::to_string(toxic).map_err(|e| e.to_string())?;
    call(addr, "PUT", &format!("/toxics/{id}"), &body).await
}

/// Removes toxic `id` from the chaos proxy at `addr` (absent already is fine).
pub async fn clear_toxic(addr: SocketAddr, id: &str) -> Result<(), String> {
    call(addr, "DELETE", &format!("/toxics/{id}"), "").await
}

/// Asks the chaos proxy at `addr` for its toxics: whether its control API answers.
pub async fn list_toxics(addr: SocketAddr) -> Result<(), String> {
    call(addr, "GET", "/toxics", "").await
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<(), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.take(64 << 10).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{addr} did not answer {method} {path} in time"))?
        .map_err(|e| format!("{method} {path} on {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.split_whitespace().nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        let detail = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Err(format!(
            "{method} {path} on {addr} answered {status}: {detail}"
        ))
    }
}

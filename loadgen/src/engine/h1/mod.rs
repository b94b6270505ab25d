//! The lean HTTP/1.1 client: a keep-alive connection driven inside the task that sends on it.
//! A request goes out as one write of a message serialised once; the answer is read into a
//! buffer the connection keeps, its head parsed with httparse and its body decoded in place and
//! handed to the [`Answer`] with the time of the read that brought it. No channel, no other
//! task, and no allocation per request once the buffers have grown: at high request rates that
//! is what a client's time goes to, and every cycle saved goes to the server under test.

mod body;
pub mod head;

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::answer::{Answer, Scratch};
use super::tls::Stream;
use crate::stats::{ErrorClass, Outcome};
pub use body::BodyDecoder;

/// Room made for each read.
const READ_SIZE: usize = 8 * 1024;
/// A head, chunk-size line or trailer left incomplete past this size is a broken answer, not a
/// reason to buffer without bound.
const MAX_PENDING: usize = 64 * 1024;

/// One HTTP/1.1 connection to the target.
pub struct Connection {
    stream: Stream,
    read: BytesMut,
    /// Whether another request may follow on it: the last answer ended cleanly, allowed it, and
    /// nothing unasked for followed it.
    keep_alive: bool,
}

impl Connection {
    pub fn new(stream: Stream) -> Connection {
        Connection {
            stream,
            read: BytesMut::with_capacity(READ_SIZE),
            keep_alive: true,
        }
    }

    /// Whether it can carry another request, after a look (without waiting) for a close or
    /// stray bytes the server sent while it was idle.
    pub fn usable(&mut self) -> bool {
        if self.keep_alive {
            let mut probe = [0u8; 1];
            // Pending: nothing arrived, the connection is open. Anything else (end of stream,
            // an error, bytes nobody asked for) makes it unfit for the next request.
            if self.stream.read(&mut probe).now_or_never().is_some() {
                self.keep_alive = false;
            }
        }
        self.keep_alive
    }

    /// Sends `wire` (a whole request) and reads the whole answer into `outcome`. A failure
    /// before the answer's head is a `reset`; after it, a 2xx answer broken off is a
    /// `stream_cut`. Leaves the connection unusable after any failure but an HTTP status.
    pub async fn exchange(
        &mut self,
        wire: &[u8],
        streaming: bool,
        sent: Instant,
        outcome: &mut Outcome,
        scratch: &mut Scratch,
    ) -> Result<(), ErrorClass> {
        // Until the answer has ended cleanly, the connection's state is unknown.
        self.keep_alive = false;
        self.read.clear();
        self.stream
            .write_all(wire)
            .await
            .map_err(|_| ErrorClass::Reset)?;
        self.stream.flush().await.map_err(|_| ErrorClass::Reset)?;

        // Always set by the read that brings the head: the buffer starts empty.
        let mut arrived = sent;
        let head = loop {
            match head::parse(&self.read) {
                Ok(Some((head, length))) => {
                    self.read.advance(length);
                    if head.is_interim() {
                        continue;
                    }
                    break head;
                }
                Ok(None) if self.read.len() < MAX_PENDING => {}
                Ok(None) | Err(_) => return Err(ErrorClass::Reset),
            }
            match self.fill().await {
                Ok(0) | Err(_) => return Err(ErrorClass::Reset),
                Ok(_) => arrived = Instant::now(),
            }
        };

        let mut answer = Answer::new(head.status, streaming, sent, outcome, scratch);
        let mut decoder = BodyDecoder::new(head.framing);
        loop {
            let used = decoder
                .decode(&self.read, |piece| answer.feed(piece, arrived))
                .map_err(|_| answer.cut())?;
            self.read.advance(used);
            if answer.broken() {
                return Err(ErrorClass::StreamCut);
            }
            if decoder.is_done() {
                break;
            }
            if self.read.len() >= MAX_PENDING {
                return Err(answer.cut());
            }
            match self.fill().await {
                Ok(0) if decoder.ends_at_close() => return answer.finish(),
                Ok(0) | Err(_) => return Err(answer.cut()),
                Ok(_) => arrived = Instant::now(),
            }
        }
        // Bytes after the answer were never asked for: the next answer could not be told apart.
        self.keep_alive = head.keep_alive && self.read.is_empty();
        answer.finish()
    }

    /// Reads what has arrived (waiting for something) onto the end of the buffer.
    async fn fill(&mut self) -> std::io::Result<usize> {
        self.read.reserve(READ_SIZE);
        self.stream.read_buf(&mut self.read).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};

    /// What the scripted server does on its one connection, in order.
    enum Step {
        /// Read one whole request (head and content-length body).
        Request,
        /// Write these bytes (each step is its own write).
        Write(&'static [u8]),
    }

    /// A server on a real loopback socket that plays `script` on the first connection, then
    /// closes it and sends on the returned channel.
    fn scripted(script: Vec<Step>) -> (SocketAddr, tokio::sync::oneshot::Receiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (closed, on_close) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            socket.set_nodelay(true).unwrap();
            for step in script {
                match step {
                    Step::Request => read_request(&mut socket),
                    Step::Write(bytes) => socket.write_all(bytes).unwrap(),
                }
            }
            drop(socket);
            let _ = closed.send(());
        });
        (addr, on_close)
    }

    fn read_request(socket: &mut std::net::TcpStream) {
        let mut seen = Vec::new();
        loop {
            let mut fields = [httparse::EMPTY_HEADER; 16];
            let mut request = httparse::Request::new(&mut fields);
            if let Ok(httparse::Status::Complete(head)) = request.parse(&seen) {
                let length: usize = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                    .unwrap_or(0);
                if seen.len() >= head + length {
                    return;
                }
            }
            let mut buffer = [0u8; 1024];
            let n = socket.read(&mut buffer).unwrap();
            assert!(n > 0, "the client hung up mid-request");
            seen.extend_from_slice(&buffer[..n]);
        }
    }

    const REQUEST: &[u8] =
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}";

    async fn connect(addr: SocketAddr) -> Connection {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        Connection::new(Stream::Plain(tcp))
    }

    async fn exchange(
        connection: &mut Connection,
        streaming: bool,
    ) -> (Result<(), ErrorClass>, Outcome) {
        let mut outcome = Outcome::default();
        let mut scratch = Scratch::default();
        let result = connection
            .exchange(
                REQUEST,
                streaming,
                Instant::now(),
                &mut outcome,
                &mut scratch,
            )
            .await;
        (result, outcome)
    }

    #[tokio::test]
    async fn answers_in_pieces_are_read_whole_and_the_connection_is_kept() {
        let (addr, _closed) = scripted(vec![
            Step::Request,
            Step::Write(b"HTTP/1.1 200 OK\r\nContent-Le"),
            Step::Write(b"ngth: 36\r\n\r\n{\"usage\":{\"completion_"),
            Step::Write(b"tokens\":3}}   "),
            Step::Request,
            Step::Write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Step::Write(b"2f\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\r\n"),
            Step::Write(b"e\r\ndata: [DO"),
            Step::Write(b"NE]\n\n\r\n0\r\n\r\n"),
            Step::Request,
            Step::Write(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy"),
        ]);
        let mut connection = connect(addr).await;
        let (result, outcome) = exchange(&mut connection, false).await;
        assert_eq!((result, outcome.output_tokens), (Ok(()), 3));
        assert!(
            connection.usable(),
            "a content-length answer keeps the connection"
        );

        let (result, outcome) = exchange(&mut connection, true).await;
        assert_eq!(result, Ok(()), "a chunked stream that reaches [DONE]");
        assert_eq!(outcome.output_tokens, 1);
        assert!(outcome.ttft.is_some());
        assert!(connection.usable());

        let (result, _) = exchange(&mut connection, false).await;
        assert_eq!(
            result,
            Err(ErrorClass::Http5xx),
            "the whole error body is drained"
        );
        assert!(
            connection.keep_alive,
            "and the connection stays fit for the next request"
        );
    }

    #[tokio::test]
    async fn close_framed_answers_end_the_connection() {
        let (addr, _) = scripted(vec![
            Step::Request,
            Step::Write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"),
        ]);
        let mut connection = connect(addr).await;
        assert_eq!(exchange(&mut connection, false).await.0, Ok(()));
        assert!(!connection.usable(), "the server said close");

        let (addr, _) = scripted(vec![
            Step::Request,
            Step::Write(b"HTTP/1.1 200 OK\r\n\r\n{\"usage\":{\"completion_tokens\":9}}"),
        ]);
        let mut connection = connect(addr).await;
        let (result, outcome) = exchange(&mut connection, false).await;
        assert_eq!(
            (result, outcome.output_tokens),
            (Ok(()), 9),
            "a body that ends at EOF"
        );
        assert!(!connection.usable());
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_closed_is_not_reused() {
        let (addr, closed) = scripted(vec![
            Step::Request,
            Step::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
        ]);
        let mut connection = connect(addr).await;
        assert_eq!(exchange(&mut connection, false).await.0, Ok(()));
        closed.await.unwrap();
        // Let the runtime's I/O driver see the close (yielding runs it before resuming us).
        tokio::task::yield_now().await;
        assert!(!connection.usable());
    }

    #[tokio::test]
    async fn breaks_are_resets_before_the_head_and_stream_cuts_after() {
        let (addr, _) = scripted(vec![
            Step::Request,
            Step::Write(b"HTTP/1.1 200 OK\r\nContent-"),
        ]);
        let mut connection = connect(addr).await;
        assert_eq!(
            exchange(&mut connection, false).await.0,
            Err(ErrorClass::Reset)
        );

        let (addr, _) = scripted(vec![
            Step::Request,
            Step::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"partial"),
        ]);
        let mut connection = connect(addr).await;
        assert_eq!(
            exchange(&mut connection, false).await.0,
            Err(ErrorClass::StreamCut)
        );

        let (addr, _) = scripted(vec![
            Step::Request,
            Step::Write(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
        ]);
        let mut connection = connect(addr).await;
        assert_eq!(
            exchange(&mut connection, false).await.0,
            Err(ErrorClass::Reset),
            "an error answer broken off is a broken connection"
        );

        let (addr, _) = scripted(vec![Step::Request, Step::Write(b"garbage\r\n\r\n")]);
        let mut connection = connect(addr).await;
        assert_eq!(
            exchange(&mut connection, false).await.0,
            Err(ErrorClass::Reset)
        );
        assert!(!connection.usable());
    }
}

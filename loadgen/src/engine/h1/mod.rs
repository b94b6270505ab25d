//! The lean HTTP/1.1 client: a keep-alive connection driven inside the task that sends on it.
//! A request goes out as one write of a message serialised once; the answer is read into a
//! buffer the connection keeps, its head parsed with httparse and its body decoded in place and
//! handed to the [`Answer`] with the time of the read that brought it. No channel, no other
//! task, and no allocation per request once the buffers have grown: at high request rates that
//! is what a client's time goes to, and every cycle saved goes to the server under test.

mod body;
mod head;

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::answer::{Answer, Scratch};
use super::tls::Stream;
use crate::stats::{ErrorClass, Outcome};
use body::BodyDecoder;

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

        let mut arrived = Instant::now();
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

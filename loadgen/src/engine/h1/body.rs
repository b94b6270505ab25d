//! Decoding a response body's framing in place, however the bytes are split across reads: a
//! content length, chunked transfer coding, or everything until the server closes.

use super::head::Framing;

/// Where the decoder is in the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// This many body bytes still to come.
    Length(u64),
    /// Before a chunk-size line.
    ChunkSize,
    /// Inside a chunk, this many bytes still to come.
    ChunkData(u64),
    /// After a chunk's data: its closing CRLF.
    ChunkEnd,
    /// After the last (empty) chunk: trailer fields up to an empty line.
    Trailers,
    UntilClose,
    Done,
}

/// A chunked body that does not follow the coding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed chunked body")]
pub struct BadChunk;

/// The body decoder of one answer.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> BodyDecoder {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(length) => State::Length(length),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        BodyDecoder { state }
    }

    /// Decodes what it can of `input`, handing each piece of body to `data`, and returns how
    /// many bytes it used. Bytes it leaves are the start of a chunk-size or trailer line, or
    /// what follows the body: call again with them and more.
    pub fn decode(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, BadChunk> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Done => return Ok(used),
                State::UntilClose => {
                    if !rest.is_empty() {
                        data(rest);
                    }
                    return Ok(input.len());
                }
                State::Length(left) | State::ChunkData(left) => {
                    if rest.is_empty() {
                        return Ok(used);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    data(&rest[..take]);
                    used += take;
                    let left = left - take as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), left) => State::Length(left),
                        (_, 0) => State::ChunkEnd,
                        (_, left) => State::ChunkData(left),
                    };
                }
                State::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((taken, size))) => {
                        used += taken;
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData(size)
                        };
                    }
                    Ok(httparse::Status::Partial) => return Ok(used),
                    Err(httparse::InvalidChunkSize) => return Err(BadChunk),
                },
                State::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(used),
                    _ => return Err(BadChunk),
                },
                State::Trailers => {
                    let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
                        return Ok(used);
                    };
                    let line = &rest[..newline];
                    used += newline + 1;
                    if line.is_empty() || line == b"\r" {
                        self.state = State::Done;
                    }
                }
            }
        }
    }

    /// The whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the server closing the connection now ends the body cleanly.
    pub fn ends_at_close(&self) -> bool {
        self.state == State::UntilClose
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` delivered in pieces of `step` bytes, as the connection does: unused bytes
    /// stay at the front of its buffer. Returns the body, whether it ended, and what was left.
    fn decode_in_steps(framing: Framing, wire: &[u8], step: usize) -> (Vec<u8>, bool, Vec<u8>) {
        let mut decoder = BodyDecoder::new(framing);
        let mut buffer = Vec::new();
        let mut body = Vec::new();
        for piece in wire.chunks(step) {
            buffer.extend_from_slice(piece);
            let used = decoder
                .decode(&buffer, |d| body.extend_from_slice(d))
                .expect("well-formed");
            buffer.drain(..used);
        }
        (body, decoder.is_done(), buffer)
    }

    const CHUNKED: &[u8] =
        b"7\r\ndata: a\r\n1f;ext=1\r\n\n\ndata: {\"x\":1}\n\ndata: [DONE]\n\n\r\n0\r\nTrailer: t\r\n\r\nNEXT";

    #[test]
    fn chunked_bodies_decode_the_same_however_the_reads_split_them() {
        let expected = b"data: a\n\ndata: {\"x\":1}\n\ndata: [DONE]\n\n".to_vec();
        for step in 1..=CHUNKED.len() {
            let (body, done, left) = decode_in_steps(Framing::Chunked, CHUNKED, step);
            assert_eq!(body, expected, "pieces of {step}");
            assert!(done, "pieces of {step}");
            assert_eq!(
                left, b"NEXT",
                "bytes after the body are not taken, pieces of {step}"
            );
        }
    }

    #[test]
    fn a_chunked_body_cut_short_is_not_done() {
        let cut = &CHUNKED[..CHUNKED.len() - 20];
        let (_, done, _) = decode_in_steps(Framing::Chunked, cut, 5);
        assert!(!done);
    }

    #[test]
    fn malformed_chunks_are_errors() {
        let mut decoder = BodyDecoder::new(Framing::Chunked);
        assert_eq!(decoder.decode(b"zz\r\n", |_| {}), Err(BadChunk));
        let mut decoder = BodyDecoder::new(Framing::Chunked);
        assert_eq!(
            decoder.decode(b"2\r\nabXY", |_| {}),
            Err(BadChunk),
            "no CRLF after data"
        );
    }

    #[test]
    fn a_content_length_body_stops_at_its_length() {
        for step in [1, 3, 100] {
            let (body, done, left) = decode_in_steps(Framing::Length(5), b"hello, next", step);
            assert_eq!((body.as_slice(), done), (&b"hello"[..], true));
            // The decoder stops taking once done; a later read's bytes stay for the caller.
            assert!(b", next".ends_with(&left), "pieces of {step}: {left:?}");
        }
        assert!(BodyDecoder::new(Framing::Length(0)).is_done());
    }

    #[test]
    fn a_body_until_close_takes_everything_and_ends_only_at_close() {
        let (body, done, left) = decode_in_steps(Framing::UntilClose, b"all of it", 4);
        assert_eq!(
            (body.as_slice(), done, left.len()),
            (&b"all of it"[..], false, 0)
        );
        assert!(BodyDecoder::new(Framing::UntilClose).ends_at_close());
        assert!(!BodyDecoder::new(Framing::Chunked).ends_at_close());
    }
}

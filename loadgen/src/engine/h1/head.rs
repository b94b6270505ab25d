//! A response head, parsed with httparse: its status, how its body is framed, and whether the
//! connection can carry another request after it (RFC 9112 sections 6.3 and 9.3).

use std::mem::MaybeUninit;

/// More header fields than this is a broken answer (hyper's default limit too).
const MAX_HEADERS: usize = 100;

/// How the end of a response body is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (zero for 1xx, 204 and 304 answers).
    Length(u64),
    /// Chunked transfer coding: how streams arrive from servers that do not know the length.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// What a response head says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    /// The connection stays open after this answer (HTTP/1.1 without `Connection: close`, or
    /// HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
}

impl Head {
    /// An informational answer (`100 Continue` and the like): another head follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// A head that cannot be read as HTTP/1.1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadHead {
    #[error("malformed response head: {0}")]
    Syntax(#[from] httparse::Error),
    #[error("invalid content-length")]
    ContentLength,
    #[error("a protocol switch nobody asked for")]
    Upgrade,
}

/// Parses the head at the start of `bytes`: `None` while it is incomplete, else the head and
/// the number of bytes it took.
pub fn parse(bytes: &[u8]) -> Result<Option<(Head, usize)>, BadHead> {
    // Uninitialised: zeroing room for 100 fields costs more than parsing the few that come.
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        bytes,
        &mut fields,
    )?;
    let httparse::Status::Complete(length) = parsed else {
        return Ok(None);
    };
    let status = response.code.unwrap_or_default();
    if status == 101 {
        return Err(BadHead::Upgrade);
    }
    let mut close = false;
    let mut keep_alive_asked = false;
    let mut chunked = None;
    let mut content_length = None;
    for field in response.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in tokens(field.value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_asked |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding decides whether the body is chunked.
            if let Some(last) = tokens(field.value).last() {
                chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(BadHead::ContentLength)?;
            if content_length.is_some_and(|seen| seen != value) {
                return Err(BadHead::ContentLength);
            }
            content_length = Some(value);
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else {
        match (chunked, content_length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(length)) => Framing::Length(length),
            (None, None) => Framing::UntilClose,
        }
    };
    let persistent = match response.version {
        Some(1) => !close,
        _ => keep_alive_asked && !close,
    };
    let head = Head {
        status,
        framing,
        keep_alive: persistent && framing != Framing::UntilClose,
    };
    Ok(Some((head, length)))
}

/// The comma-separated tokens of a header value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        let (head, length) = parse(text.as_bytes()).unwrap().expect("a complete head");
        assert_eq!(length, text.find("\r\n\r\n").unwrap() + 4);
        head
    }

    #[test]
    fn a_content_length_answer_keeps_the_connection() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 42\r\nContent-Type: x\r\n\r\nbody");
        assert_eq!(
            h,
            Head {
                status: 200,
                framing: Framing::Length(42),
                keep_alive: true
            }
        );
    }

    #[test]
    fn chunked_wins_over_a_length_and_close_is_honoured() {
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: gzip, Chunked\r\nConnection: Keep-Alive, close\r\n\r\n",
        );
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.keep_alive);
    }

    #[test]
    fn a_body_without_a_length_ends_at_close() {
        let h = head("HTTP/1.1 500 Oops\r\n\r\n");
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (500, Framing::UntilClose, false)
        );
        let old = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(
            !old.keep_alive,
            "HTTP/1.0 closes unless asked to keep alive"
        );
        let kept = head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(kept.keep_alive);
    }

    #[test]
    fn no_body_statuses_and_interim_answers() {
        assert_eq!(
            head("HTTP/1.1 204 No Content\r\ntransfer-encoding: chunked\r\n\r\n").framing,
            Framing::Length(0)
        );
        let interim = head("HTTP/1.1 100 Continue\r\n\r\n");
        assert!(interim.is_interim() && interim.keep_alive);
    }

    #[test]
    fn a_head_split_anywhere_is_incomplete_until_its_end() {
        let text = b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\n";
        for cut in 0..text.len() {
            assert_eq!(parse(&text[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse(text).unwrap().is_some());
    }

    #[test]
    fn broken_heads_are_errors() {
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(BadHead::ContentLength)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(BadHead::ContentLength)
        );
        assert!(matches!(
            parse(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(BadHead::Syntax(_))
        ));
        assert_eq!(
            parse(b"HTTP/1.1 101 Switching\r\n\r\n"),
            Err(BadHead::Upgrade)
        );
    }
}

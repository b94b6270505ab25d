//! Gzip at the client edge: gzip request bodies are decoded (bounded, so a small bomb cannot
//! expand into gigabytes), and whole JSON answers are gzipped for clients that accept it.
//! Event streams are never compressed: a compressor buffers, which would hold tokens back.

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the decoded body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the body is not valid gzip")]
    Invalid,
}

/// Whether `accept-encoding` lists gzip (or `*`) without `q=0`.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// Decodes a gzip body, refusing output beyond `limit` bytes.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    GzDecoder::new(body)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Invalid)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

/// Gzips a whole body. The fast level: on a JSON answer it keeps most of the saving at a
/// fraction of the default level's time, and time is what a gateway adds.
pub fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 3 + 64), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(value: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        accepts_gzip(&h)
    }

    #[test]
    fn accept_encoding_rules() {
        assert!(accept("gzip"));
        assert!(accept("br, gzip;q=0.5"));
        assert!(accept("*"));
        assert!(!accept("gzip;q=0"));
        assert!(!accept("br, deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn round_trip_and_limits() {
        let text = b"{\"hello\":\"world\"}".repeat(100);
        let packed = gzip(&text);
        assert!(packed.len() < text.len() / 4);
        assert_eq!(
            gunzip(&packed, text.len()).unwrap(),
            Bytes::from(text.clone())
        );
        assert_eq!(
            gunzip(&packed, text.len() - 1),
            Err(DecodeError::TooLarge(text.len() - 1))
        );
        assert_eq!(gunzip(b"not gzip", 100), Err(DecodeError::Invalid));
    }
}

//! Client authentication: when keys are configured, `/v1/*` requests must carry one as
//! `Authorization: Bearer KEY`. Keys are compared in constant time and never echoed.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::config::Secret;

#[derive(Debug, Default)]
pub struct ClientKeys {
    keys: Vec<Secret>,
}

impl ClientKeys {
    pub fn new(keys: Vec<Secret>) -> Self {
        Self { keys }
    }

    /// With no keys configured everyone is let in.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    pub fn admits(&self, headers: &HeaderMap) -> bool {
        if self.keys.is_empty() {
            return true;
        }
        let Some(presented) = bearer(headers) else {
            return false;
        };
        // Check every key, so the time taken says nothing about which one nearly matched.
        self.keys.iter().fold(false, |found, key| {
            found | constant_time_eq(key.expose().as_bytes(), presented)
        })
    }
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_keys() {
        let keys = ClientKeys::new(vec![Secret::new("k1"), Secret::new("k2")]);
        assert!(keys.admits(&with_auth("Bearer k2")));
        assert!(keys.admits(&with_auth("bearer  k1 ")));
        assert!(!keys.admits(&with_auth("Bearer k3")));
        assert!(!keys.admits(&with_auth("Basic k1")));
        assert!(!keys.admits(&HeaderMap::new()));
        assert!(ClientKeys::default().admits(&HeaderMap::new()));
    }
}

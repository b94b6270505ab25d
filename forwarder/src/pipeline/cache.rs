//! The exact-match response cache (moka): whole non-streaming answers, keyed by the request's
//! normalised body, bounded by entry count and time to live.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use moka::sync::Cache;

use crate::config::CacheConfig;

/// What a hit answers with: a 200 and this body.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

#[derive(Debug)]
pub struct ResponseCache {
    entries: Cache<Bytes, CachedAnswer>,
    max_body: usize,
}

impl ResponseCache {
    pub fn new(config: &CacheConfig) -> Option<Self> {
        config.enabled.then(|| Self {
            entries: Cache::builder()
                .max_capacity(config.max_entries)
                .time_to_live(config.ttl.max(Duration::from_millis(1)))
                .build(),
            max_body: config.max_body,
        })
    }

    pub fn get(&self, key: &Bytes) -> Option<CachedAnswer> {
        self.entries.get(key)
    }

    /// Whether an answer of this many bytes may be kept.
    pub fn fits(&self, len: usize) -> bool {
        len <= self.max_body
    }

    pub fn insert(&self, key: Bytes, answer: CachedAnswer) {
        if self.fits(answer.body.len()) {
            self.entries.insert(key, answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_after_insert_and_nothing_when_disabled() {
        assert!(ResponseCache::new(&CacheConfig::default()).is_none());
        let cache = ResponseCache::new(&CacheConfig {
            enabled: true,
            max_body: 10,
            ..CacheConfig::default()
        })
        .unwrap();
        let key = Bytes::from_static(b"k");
        assert!(cache.get(&key).is_none());
        cache.insert(
            key.clone(),
            CachedAnswer {
                content_type: None,
                body: Bytes::from_static(b"answer"),
            },
        );
        assert_eq!(cache.get(&key).unwrap().body, "answer");
        cache.insert(
            Bytes::from_static(b"big"),
            CachedAnswer {
                content_type: None,
                body: Bytes::from_static(b"far too large"),
            },
        );
        assert!(cache.get(&Bytes::from_static(b"big")).is_none());
    }
}

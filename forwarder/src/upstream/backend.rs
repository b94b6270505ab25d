//! One upstream model server: where it is, whether it is up, its breaker, its load, its
//! concurrency bound and its metric handles.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{BackendConfig, BackendUrl, BreakerConfig};
use crate::metrics::{BackendMetrics, Metrics};
use crate::upstream::breaker::Breaker;
use crate::upstream::load::Load;

#[derive(Debug)]
pub struct Backend {
    name: String,
    url: BackendUrl,
    /// `host` and `x-forwarder-backend` as sent: built once, not per request.
    host_header: Option<HeaderValue>,
    name_header: Option<HeaderValue>,
    up: AtomicBool,
    metrics: BackendMetrics,
    breaker: Arc<Breaker>,
    load: Arc<Load>,
    slots: Arc<Semaphore>,
}

/// One of a backend's concurrent-request slots; freed on drop.
pub type BackendSlot = OwnedSemaphorePermit;

impl Backend {
    /// Starts down: nothing is known until the first health check answers.
    pub fn new(
        config: &BackendConfig,
        breaker: BreakerConfig,
        max_inflight: usize,
        metrics: &Metrics,
    ) -> Self {
        let metrics = metrics.backend(&config.name);
        metrics.up.set(0);
        Self {
            name: config.name.clone(),
            url: config.url.clone(),
            host_header: HeaderValue::from_str(config.url.authority().as_str()).ok(),
            name_header: HeaderValue::from_str(&config.name).ok(),
            up: AtomicBool::new(false),
            breaker: Arc::new(Breaker::new(breaker, metrics.clone())),
            metrics,
            load: Arc::new(Load::default()),
            slots: Arc::new(Semaphore::new(
                max_inflight.clamp(1, Semaphore::MAX_PERMITS),
            )),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &BackendUrl {
        &self.url
    }

    /// The `host` header for requests to this backend.
    pub fn host_header(&self) -> Option<&HeaderValue> {
        self.host_header.as_ref()
    }

    /// Its name as an `x-forwarder-backend` answer header.
    pub fn name_header(&self) -> Option<&HeaderValue> {
        self.name_header.as_ref()
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        self.metrics.up.set(i64::from(up));
    }

    pub fn metrics(&self) -> &BackendMetrics {
        &self.metrics
    }

    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    pub fn load(&self) -> &Arc<Load> {
        &self.load
    }

    pub fn try_slot(&self) -> Option<BackendSlot> {
        Arc::clone(&self.slots).try_acquire_owned().ok()
    }

    /// Waits for a slot; the semaphore is never closed, so `None` cannot happen in practice.
    pub async fn slot(&self) -> Option<BackendSlot> {
        Arc::clone(&self.slots).acquire_owned().await.ok()
    }
}

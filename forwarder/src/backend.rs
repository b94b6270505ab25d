//! One upstream model server: where it is, whether it is up, and its metric handles.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{BackendConfig, BackendUrl};
use crate::metrics::{BackendMetrics, Metrics};

#[derive(Debug)]
pub struct Backend {
    name: String,
    url: BackendUrl,
    up: AtomicBool,
    metrics: BackendMetrics,
}

impl Backend {
    /// Starts down: nothing is known until the first health check answers.
    pub fn new(config: &BackendConfig, metrics: &Metrics) -> Self {
        let metrics = metrics.backend(&config.name);
        metrics.up.set(0);
        Self {
            name: config.name.clone(),
            url: config.url.clone(),
            up: AtomicBool::new(false),
            metrics,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &BackendUrl {
        &self.url
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
}

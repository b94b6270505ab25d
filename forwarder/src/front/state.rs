//! The forwarder's shared state: the metrics, the pipeline (with its backends and pools) and
//! the warm-up countdown every route reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::pipeline::admission::Admission;
use crate::pipeline::route::{NoBackends, Routing};
use crate::upstream::backend::Backend;
use crate::upstream::client::{Upstream, UpstreamAuth};

pub struct Router {
    metrics: Metrics,
    pipeline: Pipeline,
    /// Worker threads whose warm-up is not over yet (none when there is no warm-up);
    /// `/readyz` waits for them.
    warming: AtomicUsize,
}

impl Router {
    /// `workers`: the threads serving with their own connection pools, each warmed up.
    pub fn new(config: &Config, workers: usize) -> Result<Self, NoBackends> {
        let metrics = Metrics::new();
        let policies = &config.policies;
        let backends = config
            .backends
            .iter()
            .map(|b| {
                Arc::new(Backend::new(
                    b,
                    policies.breaker,
                    config.admission.per_backend,
                    &metrics,
                ))
            })
            .collect();
        let admission = Admission::new(
            config.admission.max_inflight,
            config.admission.max_queue,
            metrics.queue(),
        );
        let auth = UpstreamAuth::new(
            policies.auth.upstream_key.as_ref(),
            !policies.auth.client_keys.is_empty(),
        );
        let pipeline = Pipeline::new(
            Arc::new(config.clone()),
            admission,
            Routing::new(backends, &policies.routing)?,
            Upstream::new(config.timeouts.connect, auth),
            metrics.hot.clone(),
        );
        let warming = AtomicUsize::new(if policies.warmup.enabled() {
            workers
        } else {
            0
        });
        Ok(Self {
            metrics,
            pipeline,
            warming,
        })
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        self.pipeline.routing().backends()
    }

    pub fn upstream(&self) -> &Upstream {
        self.pipeline.upstream()
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn config(&self) -> &Config {
        self.pipeline.config()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether every worker's warm-up is over (`/readyz` waits for it).
    pub fn warmed(&self) -> bool {
        self.warming.load(Ordering::Acquire) == 0
    }

    /// One worker's warm-up is over.
    pub fn set_warmed(&self) {
        let _ = self
            .warming
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

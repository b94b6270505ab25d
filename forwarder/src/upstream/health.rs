//! Active health checks: every second, `GET {backend}/healthz` on each backend, concurrently.
//! A failed check marks the backend down (routing tries it last) and counts as a failure for
//! its circuit breaker.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval, timeout};

use crate::upstream::backend::Backend;

const PERIOD: Duration = Duration::from_secs(1);
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// Health bodies are tiny; reading them lets the connection be reused, the cap keeps a
/// misbehaving backend from making us buffer a lot.
const MAX_BODY: usize = 64 * 1024;

type HealthClient = Client<HttpConnector, Empty<Bytes>>;

/// Starts the checker; its first round runs immediately.
pub fn spawn(backends: Vec<Arc<Backend>>) -> JoinHandle<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CHECK_TIMEOUT));
    // A separate small pool, so checks never wait behind (or evict) proxied traffic.
    let client: HealthClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(Duration::from_secs(10))
        .pool_timer(TokioTimer::new())
        .build(connector);
    tokio::spawn(async move {
        let mut ticks = interval(PERIOD);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            join_all(backends.iter().map(|b| check(&client, b))).await;
        }
    })
}

async fn check(client: &HealthClient, backend: &Backend) {
    let up = match healthz_uri(backend) {
        Some(uri) => timeout(CHECK_TIMEOUT, probe(client, uri))
            .await
            .unwrap_or(false),
        None => false,
    };
    backend.set_up(up);
    if !up {
        backend.breaker().health_failure();
    }
}

async fn probe(client: &HealthClient, uri: Uri) -> bool {
    let Ok(resp) = client.get(uri).await else {
        return false;
    };
    let ok = resp.status().is_success();
    ok && Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .is_ok()
}

fn healthz_uri(backend: &Backend) -> Option<Uri> {
    Uri::builder()
        .scheme("http")
        .authority(backend.url().authority().clone())
        .path_and_query("/healthz")
        .build()
        .ok()
}

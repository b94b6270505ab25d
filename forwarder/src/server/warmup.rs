//! Warm-up before readiness: once a backend is seen up, open its pooled connections (so the
//! first real requests do not pay for connection setup) and optionally send it one small chat
//! request (so a backend with a cold start pays for it before traffic arrives). `/readyz`
//! turns ready when every backend is warmed or the warm-up time limit has passed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use tokio::time::{Instant, sleep, timeout_at};

use crate::config::WarmupConfig;
use crate::front::state::Router;
use crate::log;
use crate::upstream::backend::Backend;

/// Warm-up answers are small; the cap keeps a misbehaving backend from being buffered.
const MAX_BODY: usize = 1024 * 1024;
const UP_POLL: Duration = Duration::from_millis(20);

/// Warms every backend, then marks the router ready; gives up on stragglers after `limit`.
pub async fn run(router: Arc<Router>, config: WarmupConfig, limit: Duration) {
    let deadline = Instant::now() + limit;
    let backends = router.backends().to_vec();
    let results = join_all(
        backends
            .iter()
            .map(|b| timeout_at(deadline, warm(&router, b, &config))),
    )
    .await;
    for (backend, result) in backends.iter().zip(results) {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(why)) => log!("warm-up of backend {}: {why}", backend.name()),
            Err(_) => log!(
                "warm-up of backend {} did not finish within {}",
                backend.name(),
                humantime::format_duration(limit)
            ),
        }
    }
    router.set_warmed();
}

async fn warm(
    router: &Router,
    backend: &Arc<Backend>,
    config: &WarmupConfig,
) -> Result<(), String> {
    while !backend.is_up() {
        sleep(UP_POLL).await;
    }
    // Concurrent requests each open their own connection; finished, they stay in the pool.
    let opened = join_all((0..config.connections).map(|_| exchange(router, backend, None))).await;
    let failed = opened.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        return Err(format!(
            "{failed} of {} connections failed",
            config.connections
        ));
    }
    if config.request {
        let body = Bytes::from_static(
            br#"{"model":"warmup","messages":[{"role":"user","content":"warm-up"}],"max_tokens":1,"stream":false}"#,
        );
        exchange(router, backend, Some(body)).await?;
    }
    Ok(())
}

/// `GET /healthz` (connections only) or `POST /v1/chat/completions`, read to the end.
async fn exchange(router: &Router, backend: &Backend, chat: Option<Bytes>) -> Result<(), String> {
    let authority = backend.url().authority().clone();
    let (method, path, body) = match chat {
        Some(body) => (Method::POST, "/v1/chat/completions", body),
        None => (Method::GET, "/healthz", Bytes::new()),
    };
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        req.headers_mut().insert(HOST, host);
    }
    req.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let resp = router
        .upstream()
        .send_raw(req)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{path} answered {status}"))
    }
}

//! The pooled HTTP/1.1 client to the backends and the rewrite of a client request into an
//! upstream one (URI, hop-by-hop headers, `host`, `x-forwarded-for`). Bodies stream through.

use std::net::IpAddr;
use std::time::Duration;

use http::header::{HOST, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::backend::Backend;
use crate::headers::{append_forwarded_for, remove_hop_by_hop};

/// Idle upstream connections are kept this long for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Large enough that a burst's connections are all kept for the next burst.
const POOL_MAX_IDLE_PER_HOST: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect")]
    Connect(#[source] hyper_util::client::legacy::Error),
    #[error("exchange failed")]
    Io(#[source] hyper_util::client::legacy::Error),
    #[error("cannot build the upstream request")]
    Request(#[from] http::Error),
}

#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<HttpConnector, Incoming>,
}

impl Upstream {
    pub fn new(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self { client }
    }

    /// Sends `req` to `backend` and returns once the response headers arrived.
    pub async fn send(
        &self,
        backend: &Backend,
        req: Request<Incoming>,
        client_ip: IpAddr,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let req = upstream_request(backend, req, client_ip)?;
        self.client.request(req).await.map_err(|e| {
            if e.is_connect() {
                UpstreamError::Connect(e)
            } else {
                UpstreamError::Io(e)
            }
        })
    }
}

fn upstream_request(
    backend: &Backend,
    req: Request<Incoming>,
    client_ip: IpAddr,
) -> Result<Request<Incoming>, UpstreamError> {
    let (mut parts, body) = req.into_parts();
    let authority = backend.url().authority().clone();
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query(path)
        .build()?;
    // Clients may speak HTTP/2 to us; backends are spoken to in HTTP/1.1.
    parts.version = Version::HTTP_11;
    remove_hop_by_hop(&mut parts.headers);
    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        parts.headers.insert(HOST, host);
    }
    append_forwarded_for(&mut parts.headers, client_ip);
    Ok(Request::from_parts(parts, body))
}

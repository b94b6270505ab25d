//! The pooled HTTP/1.1 client to the backends and the rewrite of a client request into an
//! upstream one (URI, hop-by-hop headers, `host`, `x-forwarded-for`, the upstream key). Request
//! bodies are buffered (so they can be sent again); answers stream through.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, AUTHORIZATION, HOST, HeaderValue};
use http::uri::Scheme;
use http::{Request, Response, Uri, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::Secret;
use crate::headers::{append_forwarded_for, remove_hop_by_hop};
use crate::upstream::backend::Backend;

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

/// What the client's `authorization` header becomes upstream.
#[derive(Clone, Debug)]
pub enum UpstreamAuth {
    /// No keys configured: the client's header goes through as it is.
    PassThrough,
    /// The client's header was the forwarder's own key: not for the backend's eyes.
    Strip,
    /// The configured upstream key replaces whatever the client sent.
    Key(HeaderValue),
}

impl UpstreamAuth {
    pub fn new(upstream_key: Option<&Secret>, client_keys_enabled: bool) -> Self {
        match upstream_key {
            Some(key) => HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map(|mut v| {
                    v.set_sensitive(true);
                    Self::Key(v)
                })
                .unwrap_or(Self::Strip),
            None if client_keys_enabled => Self::Strip,
            None => Self::PassThrough,
        }
    }
}

/// The parts of a client's request that go upstream (the body is buffered, so it can be sent
/// again on a retry).
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    pub method: &'a http::Method,
    pub path: &'a http::uri::PathAndQuery,
    pub headers: &'a http::HeaderMap,
    pub body: &'a Bytes,
}

type PooledClient = Client<HttpConnector, Full<Bytes>>;

thread_local! {
    /// This thread's pools, by [`Upstream`] id. A connection's task runs on the thread that
    /// opened it, so requests sent from that same thread never wake another one.
    static POOLS: RefCell<Vec<(u64, PooledClient)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The way to the backends: one keep-alive pool per thread that sends (see [`POOLS`]).
#[derive(Clone, Debug)]
pub struct Upstream {
    id: u64,
    connect_timeout: Duration,
    auth: UpstreamAuth,
}

impl Upstream {
    pub fn new(connect_timeout: Duration, auth: UpstreamAuth) -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            connect_timeout,
            auth,
        }
    }

    /// Starts `req` on this thread's client, which is built on first use.
    fn start(&self, req: Request<Full<Bytes>>) -> ResponseFuture {
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if let Some((_, client)) = pools.iter().find(|(id, _)| *id == self.id) {
                return client.request(req);
            }
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(self.connect_timeout));
            let client = Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
                .pool_timer(TokioTimer::new())
                .build(connector);
            let started = client.request(req);
            pools.push((self.id, client));
            started
        })
    }

    /// Sends `req` to `backend` and returns once the response headers arrived.
    pub async fn send(
        &self,
        backend: &Backend,
        req: Outgoing<'_>,
        client_ip: IpAddr,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let req = upstream_request(backend, req, client_ip, &self.auth)?;
        self.send_raw(req).await
    }

    /// Sends a request built elsewhere (warm-up) over the same pool.
    pub async fn send_raw(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        self.start(req).await.map_err(|e| {
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
    req: Outgoing<'_>,
    client_ip: IpAddr,
    auth: &UpstreamAuth,
) -> Result<Request<Full<Bytes>>, UpstreamError> {
    let authority = backend.url().authority().clone();
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query(req.path.clone())
        .build()?;
    let mut upstream = Request::new(Full::new(req.body.clone()));
    *upstream.method_mut() = req.method.clone();
    *upstream.uri_mut() = uri;
    // Clients may speak HTTP/2 to us; backends are spoken to in HTTP/1.1.
    *upstream.version_mut() = Version::HTTP_11;
    let headers = upstream.headers_mut();
    headers.clone_from(req.headers);
    remove_hop_by_hop(headers);
    // Compression is the client edge's business; on loopback it would only cost time, and a
    // compressed answer could not be cached for clients that do not accept it.
    headers.remove(ACCEPT_ENCODING);
    if let Some(host) = backend.host_header() {
        headers.insert(HOST, host.clone());
    }
    match auth {
        UpstreamAuth::PassThrough => {}
        UpstreamAuth::Strip => {
            headers.remove(AUTHORIZATION);
        }
        UpstreamAuth::Key(key) => {
            headers.insert(AUTHORIZATION, key.clone());
        }
    }
    append_forwarded_for(headers, client_ip);
    Ok(upstream)
}

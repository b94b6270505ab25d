//! `loadgen chaos-proxy`: the network fault proxy in front of any backend, with an HTTP control
//! API, so people can fault their own stack by hand or from their own scripts.
//!
//! Control (JSON, loopback only): `GET /toxics` lists them by id, `PUT /toxics/<id>` sets one
//! (a [`Toxic`] as JSON), `DELETE /toxics/<id>` removes one, `DELETE /toxics` removes all. A
//! scenario's `chaos_proxies` drive it on schedule through the same calls.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::proxy::{Proxy, Toxic};

#[derive(Clone, Debug, clap::Args)]
pub struct ChaosProxyArgs {
    /// Where clients connect (port 0: any free port; the one chosen is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The backend the bytes go to.
    #[arg(long, value_name = "ADDR")]
    pub upstream: SocketAddr,
    /// Where the control API listens.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub control: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum ChaosProxyError {
    #[error("{0} is not a loopback address: faults only ever touch this machine")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot announce the addresses on stdout: {0}")]
    Announce(std::io::Error),
}

/// Runs until SIGINT or SIGTERM. Prints `listening on http://ADDR` (the proxy) and then
/// `control on http://ADDR`.
pub async fn run(args: ChaosProxyArgs) -> Result<(), ChaosProxyError> {
    for addr in [args.listen, args.upstream, args.control] {
        if !addr.ip().is_loopback() {
            return Err(ChaosProxyError::NotLoopback(addr));
        }
    }
    let proxy = Proxy::start(args.listen, args.upstream)
        .await
        .map_err(|source| ChaosProxyError::Bind {
            addr: args.listen,
            source,
        })?;
    let bind = |source| ChaosProxyError::Bind {
        addr: args.control,
        source,
    };
    let control = TcpListener::bind(args.control).await.map_err(bind)?;
    let control_addr = control.local_addr().map_err(bind)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{}", proxy.addr)
        .and_then(|()| writeln!(out, "control on http://{control_addr}"))
        .and_then(|()| out.flush())
        .map_err(ChaosProxyError::Announce)?;
    drop(out);
    let proxy = Arc::new(proxy);
    let serve = async {
        loop {
            let Ok((stream, peer)) = control.accept().await else {
                continue;
            };
            if !peer.ip().is_loopback() {
                continue;
            }
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(proxy.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    tokio::select! {
        () = serve => {}
        _ = tokio::signal::ctrl_c() => {}
        () = terminated() => {}
    }
    Ok(())
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

async fn handle(
    proxy: Arc<Proxy>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/toxics") else {
        return Ok(answer(
            StatusCode::NOT_FOUND,
            "{\"error\":\"use /toxics\"}".into(),
        ));
    };
    let id = rest.trim_start_matches('/').to_owned();
    let list = |proxy: &Proxy| serde_json::to_string(&proxy.list()).unwrap_or_default();
    let response = match *req.method() {
        Method::GET => answer(StatusCode::OK, list(&proxy)),
        Method::DELETE => {
            proxy.remove((!id.is_empty()).then_some(id.as_str()));
            answer(StatusCode::OK, list(&proxy))
        }
        Method::PUT | Method::POST if !id.is_empty() => {
            let body = match Limited::new(req.into_body(), 64 << 10).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => return Ok(error(StatusCode::BAD_REQUEST, "unreadable body")),
            };
            match serde_json::from_slice::<Toxic>(&body) {
                Ok(toxic) => match proxy.set(&id, toxic) {
                    Ok(()) => answer(StatusCode::OK, list(&proxy)),
                    Err(e) => error(StatusCode::BAD_REQUEST, &e),
                },
                Err(e) => error(StatusCode::BAD_REQUEST, &format!("bad toxic: {e}")),
            }
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET /toxics, PUT /toxics/<id>, DELETE /toxics[/<id>]",
        ),
    };
    Ok(response)
}

fn answer(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    answer(status, serde_json::json!({ "error": message }).to_string())
}

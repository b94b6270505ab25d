//! The front door: bind, announce, accept HTTP/1.1 and h2c on one port, shut down gracefully.
//!
//! Startup contract (loadgen relies on it): after binding, exactly one line
//! `listening on http://IP:PORT` goes to stdout, flushed at once. Everything else goes to stderr.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use crate::balance::NoBackends;
use crate::config::Config;
use crate::health;
use crate::log;
use crate::router::Router;

/// Runtime failures (exit code 3).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot install signal handlers")]
    Signals(#[source] io::Error),
    #[error("cannot write the startup line to stdout")]
    Announce(#[source] io::Error),
    #[error(transparent)]
    NoBackends(#[from] NoBackends),
}

/// Backoff after an accept error; fd exhaustion would otherwise make the loop spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// At most one accept-error log line per this period.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

/// Runs the forwarder until SIGTERM or SIGINT, then drains.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let router = Arc::new(Router::new(&config)?);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    // Installed before announcing, so a SIGTERM sent right after the line is a clean drain.
    let shutdown = shutdown_signal().map_err(ServerError::Signals)?;
    health::spawn(router.backends().to_vec());
    announce(local).map_err(ServerError::Announce)?;
    log!(
        "{} backend(s), max_inflight {}, max_queue {}",
        config.backends.len(),
        config.admission.max_inflight,
        config.admission.max_queue
    );
    serve(listener, router, &config, shutdown).await;
    Ok(())
}

fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    out.flush()
}

fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

async fn serve(
    listener: TcpListener,
    router: Arc<Router>,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper needs a timer for its default HTTP/1 header-read timeout.
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2.max_concurrent_streams);

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_error_log: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                if last_error_log.is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                    log!("accept failed: {err}");
                    last_error_log = Some(Instant::now());
                }
                // A connection that died in the backlog is harmless; anything else (fd
                // exhaustion above all) would repeat at once, so give it time to clear.
                let transient = matches!(
                    err.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                );
                if !transient {
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
                continue;
            }
        };
        // Token streams are many tiny writes; Nagle would hold each one back.
        let _ = stream.set_nodelay(true);
        let router = Arc::clone(&router);
        let service = service_fn(move |req| {
            let router = Arc::clone(&router);
            async move { Ok::<_, Infallible>(router.handle(req, peer).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Per-connection errors are the client's business (resets, bad requests): no log.
            let _ = conn.await;
        });
    }

    drop(listener);
    let drain = config.timeouts.drain;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            log!("drain timeout ({}) reached; closing remaining connections", humantime::format_duration(drain));
        }
    }
}

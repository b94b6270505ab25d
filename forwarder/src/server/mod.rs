//! The front door: bind, announce, accept HTTP/1.1 and h2c on one port, shut down gracefully.
//!
//! Startup contract (loadgen relies on it): after binding, exactly one line
//! `listening on http://IP:PORT` goes to stdout, flushed at once. Everything else goes to stderr.

pub mod fd_limit;
pub mod warmup;

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
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Config, WarmupConfig};
use crate::front::state::Router;
use crate::log;
use crate::pipeline::route::NoBackends;
use crate::upstream::health;

/// Runtime failures (exit code 3).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot start the worker threads")]
    Runtime(#[source] io::Error),
    #[error("cannot install signal handlers")]
    Signals(#[source] io::Error),
    #[error("cannot write the startup line to stdout")]
    Announce(#[source] io::Error),
    #[error(transparent)]
    NoBackends(#[from] NoBackends),
}

/// Backoff after an accept error; fd exhaustion would otherwise make the loop spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Warm-up that takes longer than this stops holding `/readyz` back.
const WARMUP_LIMIT: Duration = Duration::from_secs(30);
/// At most one accept-error log line per this period.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

/// Runs the forwarder until SIGTERM or SIGINT, then drains; blocks the calling thread.
///
/// One thread per core, each with a single-threaded runtime, its own copy of the listening
/// socket and its own upstream connection pool, so a request, its upstream connection and its
/// answer stay on one thread with no cross-thread wake-ups (nginx's worker model). What the
/// threads share (admission, breakers, loads, cache, metrics) is atomics and short locks.
pub fn run(config: Config) -> Result<(), ServerError> {
    let workers = worker_count();
    let runtimes = (0..workers)
        .map(|_| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(ServerError::Runtime)?;
    let router = Arc::new(Router::new(&config, workers)?);
    let bind_error = |source| ServerError::Bind {
        addr: config.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(config.listen).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let listeners = (0..workers)
        .map(|_| listener.try_clone())
        .collect::<Result<Vec<_>, _>>()
        .map_err(bind_error)?;
    drop(listener);
    // Installed before announcing, so a SIGTERM sent right after the line is a clean drain.
    let shutdown = {
        let _context = runtimes[0].enter();
        shutdown_signal().map_err(ServerError::Signals)?
    };
    announce(local).map_err(ServerError::Announce)?;
    log!(
        "{} backend(s), max_inflight {}, max_queue {}, {workers} worker thread(s)",
        config.backends.len(),
        config.admission.max_inflight,
        config.admission.max_queue
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut first = Some((shutdown, stop_tx));
    let config = Arc::new(config);
    let threads: Vec<_> = runtimes
        .into_iter()
        .zip(listeners)
        .enumerate()
        .map(|(index, (runtime, listener))| {
            let router = Arc::clone(&router);
            let config = Arc::clone(&config);
            let mut stop = stop_rx.clone();
            let leader = first.take();
            std::thread::Builder::new()
                .name(format!("forwarder-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        if let Some((shutdown, stop_tx)) = leader {
                            health::spawn(router.backends().to_vec());
                            tokio::spawn(async move {
                                shutdown.await;
                                let _ = stop_tx.send(true);
                            });
                        }
                        let warmup = &config.policies.warmup;
                        if warmup.enabled() {
                            // Every thread has its own pool to warm; one warm-up request will do.
                            let warmup = WarmupConfig {
                                request: warmup.request && index == 0,
                                ..warmup.clone()
                            };
                            tokio::spawn(warmup::run(Arc::clone(&router), warmup, WARMUP_LIMIT));
                        }
                        let stopped = async move {
                            let _ = stop.wait_for(|stopped| *stopped).await;
                        };
                        match TcpListener::from_std(listener) {
                            Ok(listener) => serve(listener, router, &config, stopped).await,
                            Err(err) => log!("worker {index} cannot use the listener: {err}"),
                        }
                    });
                    // Do not wait on stragglers (e.g. a DNS lookup thread) after the drain.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })
        })
        .collect::<Result<_, _>>()
        .map_err(ServerError::Runtime)?;
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

/// One worker per core the process may use.
fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
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
    let max_header = config.policies.limits.max_header;
    // Slow clients: a request head must arrive within `header_read` (needs the timer).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.timeouts.header_read)
        // hyper panics below 8 KiB; config validation already refuses that.
        .max_buf_size(max_header.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2.max_concurrent_streams)
        .max_header_list_size(u32::try_from(max_header).unwrap_or(u32::MAX));

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
            // Upgrades: the WebSocket front at /v1/ws.
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
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

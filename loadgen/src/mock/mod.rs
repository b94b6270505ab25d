//! The mock LLM server behind `loadgen mock`: an OpenAI-compatible API with a realistic latency
//! and token profile, which scenarios run against by default.
//!
//! Routes: `POST /v1/chat/completions` and `POST /v1/completions` (streamed as SSE or whole),
//! `GET /v1/models`, `GET /healthz`, `GET /metrics` (Prometheus text), and `/_chaos` (loopback
//! only) to switch scheduled HTTP faults on and off ([`chaos`]). Each completion draws its
//! own time to first token, decode speed and length from the [`MockProfile`], may be turned into
//! an injected error, and streams one event per token on a drift-free schedule.
//!
//! It is built to carry tens of thousands of concurrent streams on two cores: a stream is a body
//! that hyper polls directly (no task or channel per stream), each request has its own small
//! random generator (no shared lock), and a token costs one buffer splice.
//!
//! Pieces: [`profile`] (what to simulate), `cold_start` (a fresh instance's model load),
//! `request` (reading bodies), `plan` (one request's draws), `completion` (OpenAI JSON and SSE
//! shapes), `stream` (pacing), `body`, `metrics`, and `server` (accept loop, routing, shutdown).

mod body;
pub mod chaos;
mod cold_start;
mod completion;
mod metrics;
mod plan;
pub mod profile;
mod request;
mod server;
mod stream;
pub mod tls;
mod words;

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::net::SocketAddr;

use tokio::net::TcpListener;

pub use profile::{MockProfile, Written};
pub use request::DEFAULT_MODEL;
pub use server::{SHUTDOWN_GRACE, serve, serve_with};

/// `loadgen mock`: serve the mock LLM API.
#[derive(Clone, Debug, clap::Args)]
pub struct MockArgs {
    /// Address to listen on; port 0 picks a free port (the one chosen is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Boxed: the profile is large next to the other subcommands' arguments.
    #[command(flatten)]
    pub profile: Box<MockProfile>,
}

#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install the shutdown signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot announce the listening address on stdout: {0}")]
    Announce(std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
}

/// Binds, prints `listening on http://IP:PORT` (the real address) as the only line on stdout,
/// serves until SIGTERM or SIGINT, then shuts down gracefully.
///
/// Whoever started the process may read that line and signal at once, so the signal handlers are
/// installed before it is printed.
pub async fn run(args: MockArgs) -> Result<(), MockError> {
    let shutdown = shutdown_signal()?;
    let acceptor = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let bind = |source| MockError::Bind {
        addr: args.listen,
        source,
    };
    let listener = TcpListener::bind(args.listen).await.map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {scheme}://{addr}")
        .and_then(|()| stdout.flush())
        .map_err(MockError::Announce)?;
    drop(stdout);
    serve_with(listener, *args.profile, acceptor, shutdown).await;
    Ok(())
}

#[cfg(unix)]
fn shutdown_signal() -> Result<impl Future<Output = ()>, MockError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(MockError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(MockError::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl Future<Output = ()>, MockError> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

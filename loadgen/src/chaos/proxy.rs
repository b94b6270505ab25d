//! The network fault proxy: a TCP relay in front of one backend whose "toxics" (toxiproxy's
//! word) delay, throttle, slice, cut or drop the bytes passing through.
//!
//! Toxics apply to live connections as well as new ones: every relayed chunk looks at the
//! current set, and a change wakes idle connections so `down`, `reset_peer` and `timeout` act on
//! them too. Toxicity is rolled once per connection and toxic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Which way the bytes flow: to the backend (`upstream`) or back to the client (`downstream`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Upstream,
    #[default]
    Downstream,
}

/// One network fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Toxic {
    /// Every chunk waits `latency_ms` +- `jitter_ms`.
    Latency {
        latency_ms: u64,
        #[serde(default)]
        jitter_ms: u64,
        #[serde(default)]
        direction: Direction,
        #[serde(default = "always")]
        toxicity: f64,
    },
    /// At most `rate_kbps` kilobytes a second.
    Bandwidth {
        rate_kbps: u64,
        #[serde(default)]
        direction: Direction,
        #[serde(default = "always")]
        toxicity: f64,
    },
    /// Chunks split into `size_bytes` pieces with `delay_us` between them.
    Slicer {
        size_bytes: usize,
        #[serde(default)]
        delay_us: u64,
        #[serde(default)]
        direction: Direction,
        #[serde(default = "always")]
        toxicity: f64,
    },
    /// The connection closes once `bytes` went through.
    LimitData {
        bytes: u64,
        #[serde(default)]
        direction: Direction,
        #[serde(default = "always")]
        toxicity: f64,
    },
    /// A TCP RST after `timeout_ms`.
    ResetPeer {
        #[serde(default)]
        timeout_ms: u64,
        #[serde(default = "always")]
        toxicity: f64,
    },
    /// No data passes; the connection closes after `timeout_ms` (0: never, a blackhole).
    Timeout {
        #[serde(default)]
        timeout_ms: u64,
        #[serde(default = "always")]
        toxicity: f64,
    },
    /// New connections are refused (closed at once) and open ones closed.
    Down,
}

fn always() -> f64 {
    1.0
}

impl Toxic {
    fn toxicity(&self) -> f64 {
        match self {
            Toxic::Latency { toxicity, .. }
            | Toxic::Bandwidth { toxicity, .. }
            | Toxic::Slicer { toxicity, .. }
            | Toxic::LimitData { toxicity, .. }
            | Toxic::ResetPeer { toxicity, .. }
            | Toxic::Timeout { toxicity, .. } => *toxicity,
            Toxic::Down => 1.0,
        }
    }

    fn direction(&self) -> Option<Direction> {
        match self {
            Toxic::Latency { direction, .. }
            | Toxic::Bandwidth { direction, .. }
            | Toxic::Slicer { direction, .. }
            | Toxic::LimitData { direction, .. } => Some(*direction),
            _ => None,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.toxicity()) {
            return Err("toxicity must be between 0 and 1".into());
        }
        match self {
            Toxic::Bandwidth { rate_kbps: 0, .. } => Err("rate_kbps must be at least 1".into()),
            Toxic::Slicer { size_bytes: 0, .. } => Err("size_bytes must be at least 1".into()),
            _ => Ok(()),
        }
    }
}

type Toxics = BTreeMap<String, Toxic>;

/// Shared by the accept loop, every relay, and whoever sets toxics.
#[derive(Debug)]
struct State {
    upstream: SocketAddr,
    toxics: RwLock<Toxics>,
    /// Bumped on every change, to wake relays waiting on idle connections.
    changed: watch::Sender<u64>,
}

/// A running proxy; dropping it stops accepting (open relays end with their connections).
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    /// Listens on `listen` (port 0: any free port) and relays to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream,
            toxics: RwLock::default(),
            changed: watch::channel(0).0,
        });
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Proxy {
            addr,
            state,
            accept,
        })
    }

    pub fn set(&self, id: &str, toxic: Toxic) -> Result<(), String> {
        toxic.check()?;
        self.state.write().insert(id.to_owned(), toxic);
        self.state.changed.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Removes one toxic (`Some`) or all.
    pub fn remove(&self, id: Option<&str>) {
        match id {
            Some(id) => {
                self.state.write().remove(id);
            }
            None => self.state.write().clear(),
        }
        self.state.changed.send_modify(|n| *n += 1);
    }

    pub fn list(&self) -> Toxics {
        self.state.read().clone()
    }
}

impl State {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Toxics> {
        self.toxics.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Toxics> {
        self.toxics.write().unwrap_or_else(|p| p.into_inner())
    }

    fn is_down(&self) -> bool {
        self.read().values().any(|t| *t == Toxic::Down)
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if state.is_down() {
            drop(client);
            continue;
        }
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(state.upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            relay(client, server, state).await;
        });
    }
}

/// Which toxics hit this connection: rolled once per connection and toxic, when first seen.
#[derive(Default)]
struct Rolls(BTreeMap<String, bool>);

impl Rolls {
    fn active(&mut self, toxics: &Toxics) -> Vec<Toxic> {
        let mut rng = rand::rng();
        toxics
            .iter()
            .filter(|(id, toxic)| {
                *self.0.entry((*id).clone()).or_insert_with(|| {
                    let p = toxic.toxicity();
                    p >= 1.0 || (p > 0.0 && rng.random::<f64>() < p)
                })
            })
            .map(|(_, t)| t.clone())
            .collect()
    }
}

/// How a relay direction ended: closed (by its side or a toxic), or to be reset.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Close,
    Reset,
}

async fn relay(mut client: TcpStream, mut server: TcpStream, state: Arc<State>) {
    // Borrowed halves: unlike owned ones they do not send a FIN when dropped, which would
    // reach the client before a reset's RST.
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(
            client_read,
            server_write,
            Direction::Upstream,
            state.clone(),
        );
        let down = pump(server_read, client_write, Direction::Downstream, state);
        // Either side ending ends the connection (an HTTP exchange needs both).
        tokio::select! {
            end = up => end,
            end = down => end,
        }
    };
    if end == End::Reset {
        // SO_LINGER 0 makes the close a RST instead of a FIN.
        let _ = client.set_zero_linger();
    }
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    direction: Direction,
    state: Arc<State>,
) -> End {
    let mut rolls = Rolls::default();
    let mut changed = state.changed.subscribe();
    let mut buf = vec![0u8; 16 << 10];
    let mut passed: u64 = 0;
    loop {
        let toxics = rolls.active(&state.read());
        if let Some(end) = connection_wide(&toxics, direction, &mut changed).await {
            return end;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return End::Close,
                Ok(n) => n,
            },
            // A toxic came or went: look again before waiting on the read.
            _ = changed.changed() => continue,
        };
        let mut chunk = &buf[..n];
        let mut slice = None;
        for toxic in toxics.iter().filter(|t| t.direction() == Some(direction)) {
            match toxic {
                Toxic::Latency {
                    latency_ms,
                    jitter_ms,
                    ..
                } => {
                    let spread = if *jitter_ms == 0 {
                        0
                    } else {
                        rand::rng().random_range(0..=2 * jitter_ms) as i64 - *jitter_ms as i64
                    };
                    let wait = (*latency_ms as i64 + spread).max(0) as u64;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Toxic::Bandwidth { rate_kbps, .. } => {
                    let seconds = chunk.len() as f64 / (*rate_kbps as f64 * 1000.0);
                    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                }
                Toxic::LimitData { bytes, .. } => {
                    let left = bytes.saturating_sub(passed) as usize;
                    if left < chunk.len() {
                        chunk = &chunk[..left];
                        let _ = to.write_all(chunk).await;
                        return End::Close;
                    }
                }
                Toxic::Slicer {
                    size_bytes,
                    delay_us,
                    ..
                } => slice = Some((*size_bytes, *delay_us)),
                _ => {}
            }
        }
        passed += chunk.len() as u64;
        let written = match slice {
            Some((size, delay)) => {
                let mut result = Ok(());
                for piece in chunk.chunks(size) {
                    result = to.write_all(piece).await;
                    if result.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_micros(delay)).await;
                }
                result
            }
            None => to.write_all(chunk).await,
        };
        if written.is_err() {
            return End::Close;
        }
    }
}

/// Applies `down`, `reset_peer` and `timeout`: how the connection ends, or `None` to go on.
async fn connection_wide(
    toxics: &[Toxic],
    direction: Direction,
    changed: &mut watch::Receiver<u64>,
) -> Option<End> {
    for toxic in toxics {
        match toxic {
            Toxic::Down => return Some(End::Close),
            // Timed by one half only, so the reset comes once.
            Toxic::ResetPeer { timeout_ms, .. } if direction == Direction::Downstream => {
                tokio::time::sleep(Duration::from_millis(*timeout_ms)).await;
                return Some(End::Reset);
            }
            Toxic::Timeout { timeout_ms, .. } => {
                // Hold everything; close after the timeout, or look again when toxics change.
                let hold = async {
                    if *timeout_ms == 0 {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(Duration::from_millis(*timeout_ms)).await;
                };
                tokio::select! {
                    () = hold => return Some(End::Close),
                    _ = changed.changed() => return None,
                }
            }
            _ => {}
        }
    }
    None
}

//! The network fault proxy: a TCP relay in front of one backend whose "toxics" (toxiproxy's
//! word) delay, throttle, slice, cut or drop the bytes passing through.
//!
//! Each direction of a connection reads on while chunks a toxic holds wait in a short queue,
//! stamped with when they may leave and what else hits them. So a latency toxic shifts a
//! stream by its delay once, as toxiproxy's does, rather than once per chunk; with no toxic
//! set a chunk is written as soon as it is read, with no queue or allocation in between.
//!
//! Toxics apply to live connections as well as new ones: every chunk looks at the current set,
//! and a change wakes idle connections so `down`, `reset_peer` and `timeout` act on them too.
//! Toxicity is rolled per connection (toxiproxy's way) or, with `per: request`, again for
//! every request on a keep-alive connection: client bytes arriving after backend bytes have
//! flowed start a new request.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::mock::chaos::jittered;

/// Most bytes read at once.
const CHUNK: usize = 16 << 10;
/// Chunks read ahead while earlier ones wait: enough for a delayed stream to keep flowing.
const QUEUE: usize = 16;

/// Which way the bytes flow: to the backend (`upstream`) or back to the client (`downstream`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Upstream,
    #[default]
    Downstream,
}

/// What a toxicity roll covers: a whole connection, or each request on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    #[default]
    Connection,
    Request,
}

/// One network fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Toxic {
    /// Every chunk leaves `latency_ms` +- `jitter_ms` after it arrived.
    Latency {
        latency_ms: u64,
        #[serde(default)]
        jitter_ms: u64,
        #[serde(default)]
        direction: Direction,
        #[serde(default = "always")]
        toxicity: f64,
        #[serde(default)]
        per: Per,
    },
    /// At most `rate_kbps` kilobytes a second.
    Bandwidth {
        rate_kbps: u64,
        #[serde(default)]
        direction: Direction,
        #[serde(default = "always")]
        toxicity: f64,
        #[serde(default)]
        per: Per,
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
        #[serde(default)]
        per: Per,
    },
    /// The connection closes once `bytes` went through it.
    LimitData {
        bytes: u64,
        #[serde(default)]
        direction: Direction,
        #[serde(default = "always")]
        toxicity: f64,
        #[serde(default)]
        per: Per,
    },
    /// A close is passed on `delay_ms` after it came.
    SlowClose {
        delay_ms: u64,
        #[serde(default)]
        direction: Direction,
        #[serde(default = "always")]
        toxicity: f64,
        #[serde(default)]
        per: Per,
    },
    /// A TCP RST after `timeout_ms`.
    ResetPeer {
        #[serde(default)]
        timeout_ms: u64,
        #[serde(default = "always")]
        toxicity: f64,
        #[serde(default)]
        per: Per,
    },
    /// No data passes; the connection closes after `timeout_ms` (0: never, a blackhole).
    Timeout {
        #[serde(default)]
        timeout_ms: u64,
        #[serde(default = "always")]
        toxicity: f64,
        #[serde(default)]
        per: Per,
    },
    /// New connections are refused (closed at once) and open ones closed.
    Down {},
}

fn always() -> f64 {
    1.0
}

impl Toxic {
    /// The share it hits and what one roll covers.
    fn roll(&self) -> (f64, Per) {
        match self {
            Toxic::Latency { toxicity, per, .. }
            | Toxic::Bandwidth { toxicity, per, .. }
            | Toxic::Slicer { toxicity, per, .. }
            | Toxic::LimitData { toxicity, per, .. }
            | Toxic::SlowClose { toxicity, per, .. }
            | Toxic::ResetPeer { toxicity, per, .. }
            | Toxic::Timeout { toxicity, per, .. } => (*toxicity, *per),
            Toxic::Down {} => (1.0, Per::Connection),
        }
    }

    fn direction(&self) -> Option<Direction> {
        match self {
            Toxic::Latency { direction, .. }
            | Toxic::Bandwidth { direction, .. }
            | Toxic::Slicer { direction, .. }
            | Toxic::LimitData { direction, .. }
            | Toxic::SlowClose { direction, .. } => Some(*direction),
            _ => None,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.roll().0) {
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
        self.read().values().any(|t| matches!(t, Toxic::Down {}))
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

/// Which toxics hit this connection (or its current request), rolled once per toxic when
/// first seen.
#[derive(Debug, Default)]
struct Rolls {
    connection: BTreeMap<String, bool>,
    request: BTreeMap<String, bool>,
}

impl Rolls {
    fn active(&mut self, toxics: &Toxics) -> Vec<Toxic> {
        let mut rng = rand::rng();
        toxics
            .iter()
            .filter(|(id, toxic)| {
                let (p, per) = toxic.roll();
                let rolls = match per {
                    Per::Connection => &mut self.connection,
                    Per::Request => &mut self.request,
                };
                *rolls
                    .entry((*id).clone())
                    .or_insert_with(|| p >= 1.0 || (p > 0.0 && rng.random::<f64>() < p))
            })
            .map(|(_, t)| t.clone())
            .collect()
    }

    fn new_request(&mut self) {
        self.request.clear();
    }
}

/// What both directions of one connection share.
#[derive(Debug, Default)]
struct Connection {
    rolls: Mutex<Rolls>,
    /// Backend bytes flowed since the client last sent: its next bytes start a new request.
    answered: AtomicBool,
}

impl Connection {
    /// The toxics that hit this connection now; cheap when none is set.
    fn active(&self, state: &State) -> Vec<Toxic> {
        let toxics = state.read();
        if toxics.is_empty() {
            return Vec::new();
        }
        self.rolls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .active(&toxics)
    }

    /// Notes bytes read in `direction`, and re-rolls per-request toxics at a request boundary.
    fn saw_bytes(&self, direction: Direction) {
        match direction {
            Direction::Downstream => self.answered.store(true, Ordering::Relaxed),
            Direction::Upstream => {
                if self.answered.swap(false, Ordering::Relaxed) {
                    self.rolls
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .new_request();
                }
            }
        }
    }
}

/// How a relay direction ended: closed (by its side or a toxic), or to be reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Close,
    Reset,
}

/// A chunk on its way out, with when it may leave and what else hits it; `bytes: None` is the
/// close.
struct Piece {
    due: Instant,
    bytes: Option<Bytes>,
    toxics: Vec<Toxic>,
}

async fn relay(mut client: TcpStream, mut server: TcpStream, state: Arc<State>) {
    let connection = Connection::default();
    // Borrowed halves: unlike owned ones they do not send a FIN when dropped, which would
    // reach the client before a reset's RST.
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(
            client_read,
            server_write,
            Direction::Upstream,
            &state,
            &connection,
        );
        let down = pump(
            server_read,
            client_write,
            Direction::Downstream,
            &state,
            &connection,
        );
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

/// Relays one direction until it ends. Chunks hit by a toxic wait in a short queue for their
/// time while reading goes on; with no toxic and nothing queued a chunk is written at once.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    direction: Direction,
    state: &State,
    connection: &Connection,
) -> End {
    let mut changed = state.changed.subscribe();
    let mut buf = BytesMut::with_capacity(CHUNK);
    let mut queue: VecDeque<Piece> = VecDeque::new();
    let mut passed: u64 = 0;
    let mut reading = true;
    loop {
        if reading {
            // Idle connections too: a toxic set now ends or holds them now.
            let toxics = connection.active(state);
            if let Some(end) = connection_wide(&toxics, direction, &mut changed).await {
                return end;
            }
        }
        let due = queue.front().map(|p| p.due);
        buf.reserve(CHUNK);
        tokio::select! {
            read = from.read_buf(&mut buf), if reading && queue.len() < QUEUE => {
                let arrived = Instant::now();
                let n = match read {
                    Err(_) => return End::Close,
                    Ok(n) => n,
                };
                if n > 0 {
                    connection.saw_bytes(direction);
                }
                // Rolled again for these bytes: they may have started a new request.
                let toxics = connection.active(state);
                let straight = queue.is_empty() && !shaped(&toxics, direction);
                if n == 0 {
                    reading = false;
                    if straight {
                        return End::Close;
                    }
                    queue.push_back(piece(arrived, None, toxics, direction));
                    continue;
                }
                if let Some(end) = connection_wide(&toxics, direction, &mut changed).await {
                    return end;
                }
                if toxics.iter().any(|t| matches!(t, Toxic::Timeout { .. })) {
                    // Bytes that came into a blackhole are gone, as in toxiproxy.
                    buf.clear();
                    continue;
                }
                if straight {
                    if to.write_all(&buf).await.is_err() {
                        return End::Close;
                    }
                    passed += n as u64;
                    buf.clear();
                    continue;
                }
                queue.push_back(piece(arrived, Some(buf.split().freeze()), toxics, direction));
            }
            // A toxic came or went: look again before waiting on the read.
            _ = changed.changed(), if reading => {}
            () = sleep_until_some(due) => {
                let piece = queue.pop_front().expect("a piece is due");
                if let Some(end) = deliver(&mut to, piece, direction, &mut passed).await {
                    return end;
                }
            }
        }
    }
}

/// Whether any of `toxics` shapes the chunks going `direction` (delays, paces, cuts them).
fn shaped(toxics: &[Toxic], direction: Direction) -> bool {
    toxics.iter().any(|t| t.direction() == Some(direction))
}

async fn sleep_until_some(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Queues a chunk (or the close) with what hits it; latency decides when it is due.
fn piece(
    arrived: Instant,
    bytes: Option<Bytes>,
    toxics: Vec<Toxic>,
    direction: Direction,
) -> Piece {
    let delay = toxics
        .iter()
        .filter(|t| t.direction() == Some(direction))
        .map(|t| match *t {
            Toxic::Latency {
                latency_ms,
                jitter_ms,
                ..
            } => jittered(latency_ms, jitter_ms, &mut rand::rng()),
            _ => Duration::ZERO,
        })
        .sum::<Duration>();
    Piece {
        due: arrived + delay,
        bytes,
        toxics,
    }
}

/// Writes one due piece as its toxics say; `Some` when the connection ends with it.
async fn deliver(
    to: &mut (impl AsyncWrite + Unpin),
    piece: Piece,
    direction: Direction,
    passed: &mut u64,
) -> Option<End> {
    let mut rate_kbps = None::<u64>;
    let mut slice = None;
    let mut limit = None::<u64>;
    let mut close_delay = Duration::ZERO;
    for toxic in piece
        .toxics
        .iter()
        .filter(|t| t.direction() == Some(direction))
    {
        match *toxic {
            Toxic::Bandwidth { rate_kbps: r, .. } => {
                rate_kbps = Some(rate_kbps.map_or(r, |x| x.min(r)));
            }
            Toxic::Slicer {
                size_bytes,
                delay_us,
                ..
            } => slice = Some((size_bytes, Duration::from_micros(delay_us))),
            Toxic::LimitData { bytes, .. } => limit = Some(limit.map_or(bytes, |l| l.min(bytes))),
            Toxic::SlowClose { delay_ms, .. } => {
                close_delay = close_delay.max(Duration::from_millis(delay_ms));
            }
            _ => {}
        }
    }
    let Some(bytes) = piece.bytes else {
        tokio::time::sleep(close_delay).await;
        return Some(End::Close);
    };
    let mut chunk = &bytes[..];
    let mut cut = false;
    if let Some(limit) = limit {
        let left = limit.saturating_sub(*passed) as usize;
        if left < chunk.len() {
            chunk = &chunk[..left];
            cut = true;
        }
    }
    if let Some(rate) = rate_kbps {
        let seconds = chunk.len() as f64 / (rate as f64 * 1000.0);
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    }
    let written = match slice {
        Some((size, pause)) => {
            let mut result = Ok(());
            for piece in chunk.chunks(size) {
                result = to.write_all(piece).await;
                if result.is_err() {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
            result
        }
        None => to.write_all(chunk).await,
    };
    *passed += chunk.len() as u64;
    (written.is_err() || cut).then_some(End::Close)
}

/// Applies `down`, `reset_peer` and `timeout`: how the connection ends, or `None` to go on.
async fn connection_wide(
    toxics: &[Toxic],
    direction: Direction,
    changed: &mut watch::Receiver<u64>,
) -> Option<End> {
    for toxic in toxics {
        match toxic {
            Toxic::Down {} => return Some(End::Close),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn half(per: Per) -> Toxics {
        let toxic = Toxic::Latency {
            latency_ms: 1,
            jitter_ms: 0,
            direction: Direction::Downstream,
            toxicity: 0.5,
            per,
        };
        BTreeMap::from([("t".to_owned(), toxic)])
    }

    /// How many of 400 requests on one connection the toxic hits.
    fn hits(per: Per) -> usize {
        let (state, connection) = (
            State {
                upstream: "127.0.0.1:9".parse().unwrap(),
                toxics: RwLock::new(half(per)),
                changed: watch::channel(0).0,
            },
            Connection::default(),
        );
        (0..400)
            .filter(|_| {
                connection.saw_bytes(Direction::Upstream);
                let hit = !connection.active(&state).is_empty();
                connection.saw_bytes(Direction::Downstream);
                hit
            })
            .count()
    }

    #[test]
    fn per_request_toxicity_is_rolled_at_each_request_boundary() {
        // 400 fair coins: 200 +- 60 is more than six standard deviations.
        let n = hits(Per::Request);
        assert!((140..=260).contains(&n), "{n} of 400");
        let n = hits(Per::Connection);
        assert!(n == 0 || n == 400, "one roll for the connection: {n}");
    }

    #[test]
    fn toxics_read_from_json_with_their_defaults() {
        let t: Toxic = serde_json::from_str(r#"{"kind":"slow_close","delay_ms":300}"#).unwrap();
        assert_eq!(t.roll(), (1.0, Per::Connection));
        assert_eq!(t.direction(), Some(Direction::Downstream));
        let t: Toxic =
            serde_json::from_str(r#"{"kind":"timeout","toxicity":0.5,"per":"request"}"#).unwrap();
        assert_eq!(t.roll(), (0.5, Per::Request));
        assert!(serde_json::from_str::<Toxic>(r#"{"kind":"down","per":"request"}"#).is_err());
    }
}

//! The fault timeline: applies each fault at its time (to the running stack, or to a
//! `loadgen chaos-proxy` through its control API), ends it after its duration, watches whether
//! the forwarder noticed, and writes what happened into a [`Journal`].
//!
//! It is one future borrowing the stack, polled beside the reporter; dropping it (the run is
//! over) abandons whatever is still scheduled, and the stack's stop resumes stopped children.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::control;
use super::fault::{Fault, FaultKind, ProcessAction, Target};
use crate::stack::{Child, Stack, probe};
use crate::stats::{FaultWindows, ForwarderFigures};

/// How long a stopped child may take to drain before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the forwarder's /metrics is read while a fault waits to be noticed.
const NOTICE_POLL: Duration = Duration::from_millis(100);
/// How long after a fault's end its being noticed still counts as its doing.
const NOTICE_LATE: Duration = Duration::from_secs(10);

/// What happened to each fault (index as in the plan), times from the start of the load.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    pub faults: Vec<Happened>,
}

#[derive(Clone, Debug, Default)]
pub struct Happened {
    pub started: Option<Duration>,
    pub ended: Option<Duration>,
    /// When and how the forwarder first took a targeted backend out.
    pub noticed: Option<Noticed>,
    /// Anything that went wrong applying the fault (a restart that failed, a mock that did not
    /// take the fault...).
    pub problems: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Noticed {
    pub at: Duration,
    pub by: NoticedBy,
}

/// What in the forwarder's /metrics showed it had noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticedBy {
    /// `forwarder_breaker_state{backend}` 1 (open).
    Breaker,
    /// `forwarder_backend_up{backend}` 0: a health check failed.
    HealthCheck,
}

impl NoticedBy {
    pub fn name(self) -> &'static str {
        match self {
            NoticedBy::Breaker => "breaker",
            NoticedBy::HealthCheck => "health_check",
        }
    }
}

pub type SharedJournal = Arc<Mutex<Journal>>;

pub fn journal(faults: &[Fault]) -> SharedJournal {
    Arc::new(Mutex::new(Journal {
        faults: vec![Happened::default(); faults.len()],
    }))
}

/// Runs every fault on schedule, counted from `started`; ends when the last fault has ended.
/// `windows` learns when each fault begins and ends, so outcomes are counted against them.
pub async fn run(
    faults: &[Fault],
    stack: Option<&Stack>,
    started: Instant,
    journal: SharedJournal,
    windows: &FaultWindows,
) {
    let forwarder = stack.and_then(|s| s.forwarder.as_ref()).map(|f| f.addr);
    join_all(faults.iter().enumerate().map(|(index, fault)| {
        let journal = journal.clone();
        async move {
            let entry = Entry {
                index,
                started,
                journal,
                windows,
            };
            tokio::time::sleep_until(started + fault.at).await;
            let watch = async {
                // Watched for every backend fault (faults.csv shows it); the summary figure
                // only counts the faults that must be noticed.
                if let (Some(addr), Target::Backends(targets)) = (forwarder, &fault.target) {
                    watch_noticed(addr, targets, fault, &entry).await;
                }
            };
            futures_util::future::join(apply(fault, stack, &entry), watch).await;
        }
    }))
    .await;
}

/// Checks, before the load, that every chaos proxy the faults name answers its control API.
pub async fn check_proxies(faults: &[Fault]) -> Result<(), String> {
    for (name, control) in proxies(faults) {
        control::list_toxics(control)
            .await
            .map_err(|e| format!("the chaos proxy {name} does not answer: {e}"))?;
    }
    Ok(())
}

/// Lifts, after the run, the faults loadgen set on chaos proxies it does not own: they would
/// otherwise outlive the run.
pub async fn clear_proxies(faults: &[Fault]) -> Vec<String> {
    let clears = faults.iter().filter_map(|f| match &f.target {
        Target::Proxy { control, .. } => Some(control::clear_toxic(*control, &f.name)),
        _ => None,
    });
    join_all(clears)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

/// Each distinct chaos proxy the faults target, by name.
fn proxies(faults: &[Fault]) -> Vec<(&str, SocketAddr)> {
    let mut seen: Vec<(&str, SocketAddr)> = Vec::new();
    for fault in faults {
        if let Target::Proxy { name, control } = &fault.target
            && !seen.iter().any(|(n, _)| n == name)
        {
            seen.push((name, *control));
        }
    }
    seen
}

/// One fault's place in the journal and in the recorder's fault windows.
struct Entry<'a> {
    index: usize,
    started: Instant,
    journal: SharedJournal,
    windows: &'a FaultWindows,
}

impl Entry<'_> {
    fn note(&self, f: impl FnOnce(&mut Happened, Duration)) {
        let now = self.started.elapsed();
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(happened) = journal.faults.get_mut(self.index) {
            f(happened, now);
        }
    }

    fn problem(&self, text: String) {
        self.note(|h, _| h.problems.push(text));
    }

    /// The fault is in place: requests in flight from now on count towards it.
    fn began(&self) {
        self.windows.begin(self.index);
        self.note(|h, now| h.started = Some(now));
    }

    fn ended(&self) {
        self.windows.end(self.index);
        self.note(|h, now| h.ended = Some(now));
    }

    /// Waits for the fault's end; `false` if it lasts until the run does.
    async fn until_end(&self, fault: &Fault) -> bool {
        let Some(duration) = fault.duration else {
            return false;
        };
        tokio::time::sleep_until(self.started + fault.at + duration).await;
        true
    }

    fn problems(&self, results: Vec<Result<(), String>>) {
        for e in results.into_iter().filter_map(Result::err) {
            self.problem(e);
        }
    }
}

async fn apply(fault: &Fault, stack: Option<&Stack>, entry: &Entry<'_>) {
    let children: Vec<&Child> = match (&fault.target, stack) {
        (Target::Forwarder, Some(stack)) => stack.forwarder.iter().collect(),
        (Target::Backends(list), Some(stack)) => {
            list.iter().filter_map(|&i| stack.backends.get(i)).collect()
        }
        _ => Vec::new(),
    };
    match &fault.kind {
        FaultKind::Process { action, restart } => {
            join_all(children.iter().map(|c| begin_process(*action, c))).await;
            entry.began();
            if !entry.until_end(fault).await {
                return;
            }
            let ends = children
                .iter()
                .map(|c| end_process(*action, *restart, c, entry));
            join_all(ends).await;
            entry.ended();
        }
        FaultKind::Network(toxic) => {
            if let Target::Proxy { control, .. } = &fault.target {
                entry.problems(vec![control::set_toxic(*control, &fault.name, toxic).await]);
                entry.began();
                if !entry.until_end(fault).await {
                    return;
                }
                entry.problems(vec![control::clear_toxic(*control, &fault.name).await]);
                entry.ended();
                return;
            }
            let proxies: Vec<_> = match (&fault.target, stack) {
                (Target::Backends(list), Some(stack)) => {
                    list.iter().filter_map(|&i| stack.proxies.get(i)).collect()
                }
                _ => Vec::new(),
            };
            for proxy in &proxies {
                if let Err(e) = proxy.set(&fault.name, toxic.clone()) {
                    entry.problem(e);
                }
            }
            entry.began();
            if !entry.until_end(fault).await {
                return;
            }
            for proxy in &proxies {
                proxy.remove(Some(&fault.name));
            }
            entry.ended();
        }
        FaultKind::Http(http) => {
            let sets = children
                .iter()
                .map(|c| control::set(c.addr, &fault.name, http));
            entry.problems(join_all(sets).await);
            entry.began();
            if !entry.until_end(fault).await {
                return;
            }
            let clears = children.iter().map(|c| control::clear(c.addr, &fault.name));
            entry.problems(join_all(clears).await);
            entry.ended();
        }
    }
}

async fn begin_process(action: ProcessAction, child: &Child) {
    match action {
        ProcessAction::Crash => {
            child.signal(libc::SIGKILL);
        }
        // Not awaited here: a draining child is part of the fault, not of its start.
        ProcessAction::Stop => {
            child.signal(libc::SIGTERM);
        }
        ProcessAction::Hang => {
            child.signal(libc::SIGSTOP);
        }
    }
}

async fn end_process(action: ProcessAction, restart: bool, child: &Child, entry: &Entry<'_>) {
    if action == ProcessAction::Hang {
        child.signal(libc::SIGCONT);
        if !restart {
            return;
        }
    }
    if !restart {
        return;
    }
    if action == ProcessAction::Stop {
        child.terminate(STOP_GRACE).await;
    }
    let ready = if child.name == "forwarder" {
        "/readyz"
    } else {
        "/healthz"
    };
    if let Err(e) = child.restart(ready).await {
        entry.problem(format!("restarting {}: {e}", child.name));
    }
}

/// Polls the forwarder until it shows it noticed a fault on one of `targets` — a breaker open
/// or a health check failed, whichever it reports first — or the fault is long over.
async fn watch_noticed(forwarder: SocketAddr, targets: &[usize], fault: &Fault, entry: &Entry<'_>) {
    // A fault that must be noticed may be just after it ends (the failures it caused still
    // counting); any other fault only owns what happens while it is active.
    let late = if fault.must_be_noticed() {
        NOTICE_LATE
    } else {
        Duration::ZERO
    };
    let give_up = fault.duration.map(|d| entry.started + fault.at + d + late);
    let mask = targets
        .iter()
        .filter(|&&i| i < 64)
        .fold(0u64, |m, &i| m | (1 << i));
    let mut ticker = tokio::time::interval(NOTICE_POLL);
    loop {
        ticker.tick().await;
        if let Ok((200, text)) = probe::get(forwarder, "/metrics", Duration::from_secs(1)).await {
            let figures = ForwarderFigures::parse(&text);
            let by = if figures.breakers_open & mask != 0 {
                Some(NoticedBy::Breaker)
            } else if figures.backends_down & mask != 0 {
                Some(NoticedBy::HealthCheck)
            } else {
                None
            };
            if let Some(by) = by {
                entry.note(|h, now| h.noticed = Some(Noticed { at: now, by }));
                return;
            }
        }
        if give_up.is_some_and(|t| Instant::now() >= t) {
            return;
        }
    }
}

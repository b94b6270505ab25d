//! The fault timeline: applies each fault at its time to the running stack, ends it after its
//! duration, watches the forwarder's breakers, and writes what happened into a [`Journal`].
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
use crate::stats::ForwarderFigures;

/// How long a stopped child may take to drain before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the forwarder's breakers are read while a fault waits for one to open.
const BREAKER_POLL: Duration = Duration::from_millis(100);
/// How long after a fault's end a breaker opening still counts as its doing.
const BREAKER_LATE: Duration = Duration::from_secs(10);

/// What happened to each fault (index as in the plan), times from the start of the load.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    pub faults: Vec<Happened>,
}

#[derive(Clone, Debug, Default)]
pub struct Happened {
    pub started: Option<Duration>,
    pub ended: Option<Duration>,
    /// When the forwarder first reported a breaker of a targeted backend open (state 1).
    pub breaker_open: Option<Duration>,
    /// Anything that went wrong applying the fault (a restart that failed, a mock that did not
    /// take the fault...).
    pub problems: Vec<String>,
}

pub type SharedJournal = Arc<Mutex<Journal>>;

pub fn journal(faults: &[Fault]) -> SharedJournal {
    Arc::new(Mutex::new(Journal {
        faults: vec![Happened::default(); faults.len()],
    }))
}

/// Runs every fault on schedule, counted from `started`; ends when the last fault has ended.
pub async fn run(faults: &[Fault], stack: &Stack, started: Instant, journal: SharedJournal) {
    let forwarder = stack.forwarder.as_ref().map(|f| f.addr);
    join_all(faults.iter().enumerate().map(|(index, fault)| {
        let journal = journal.clone();
        async move {
            let entry = Entry {
                index,
                started,
                journal,
            };
            tokio::time::sleep_until(started + fault.at).await;
            let watch = async {
                // Watched for every backend fault (faults.csv shows it); the summary figure
                // only counts the faults that must open a breaker.
                if let (Some(addr), Target::Backends(targets)) = (forwarder, &fault.target) {
                    watch_breakers(addr, targets, fault, &entry).await;
                }
            };
            futures_util::future::join(apply(fault, stack, &entry), watch).await;
        }
    }))
    .await;
}

/// One fault's place in the journal.
struct Entry {
    index: usize,
    started: Instant,
    journal: SharedJournal,
}

impl Entry {
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
}

async fn apply(fault: &Fault, stack: &Stack, entry: &Entry) {
    let children: Vec<&Child> = match &fault.target {
        Target::Forwarder => stack.forwarder.iter().collect(),
        Target::Backends(list) => list.iter().filter_map(|&i| stack.backends.get(i)).collect(),
    };
    match &fault.kind {
        FaultKind::Process { action, restart } => {
            join_all(children.iter().map(|c| begin_process(*action, c))).await;
            entry.note(|h, now| h.started = Some(now));
            let Some(duration) = fault.duration else {
                return;
            };
            tokio::time::sleep_until(entry.started + fault.at + duration).await;
            let ends = children
                .iter()
                .map(|c| end_process(*action, *restart, c, entry));
            join_all(ends).await;
            entry.note(|h, now| h.ended = Some(now));
        }
        FaultKind::Network(toxic) => {
            let proxies: Vec<_> = match &fault.target {
                Target::Backends(list) => {
                    list.iter().filter_map(|&i| stack.proxies.get(i)).collect()
                }
                Target::Forwarder => Vec::new(),
            };
            for proxy in &proxies {
                if let Err(e) = proxy.set(&fault.name, toxic.clone()) {
                    entry.problem(e);
                }
            }
            entry.note(|h, now| h.started = Some(now));
            let Some(duration) = fault.duration else {
                return;
            };
            tokio::time::sleep_until(entry.started + fault.at + duration).await;
            for proxy in &proxies {
                proxy.remove(Some(&fault.name));
            }
            entry.note(|h, now| h.ended = Some(now));
        }
        FaultKind::Http(http) => {
            let sets = children
                .iter()
                .map(|c| control::set(c.addr, &fault.name, http));
            for result in join_all(sets).await {
                if let Err(e) = result {
                    entry.problem(e);
                }
            }
            entry.note(|h, now| h.started = Some(now));
            let Some(duration) = fault.duration else {
                return;
            };
            tokio::time::sleep_until(entry.started + fault.at + duration).await;
            let clears = children.iter().map(|c| control::clear(c.addr, &fault.name));
            for result in join_all(clears).await {
                if let Err(e) = result {
                    entry.problem(e);
                }
            }
            entry.note(|h, now| h.ended = Some(now));
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

async fn end_process(action: ProcessAction, restart: bool, child: &Child, entry: &Entry) {
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

/// Polls the forwarder until a breaker of one of `targets` reports open, or the fault is long
/// over.
async fn watch_breakers(forwarder: SocketAddr, targets: &[usize], fault: &Fault, entry: &Entry) {
    // A fault that must open a breaker may do so just after it ends (the failures it caused
    // still counting); any other fault only owns what happens while it is active.
    let late = if fault.breaks_backends() {
        BREAKER_LATE
    } else {
        Duration::ZERO
    };
    let give_up = fault.duration.map(|d| entry.started + fault.at + d + late);
    let mask = targets
        .iter()
        .filter(|&&i| i < 64)
        .fold(0u64, |m, &i| m | (1 << i));
    let mut ticker = tokio::time::interval(BREAKER_POLL);
    loop {
        ticker.tick().await;
        if let Ok((200, text)) = probe::get(forwarder, "/metrics", Duration::from_secs(1)).await
            && ForwarderFigures::parse(&text).breakers_open & mask != 0
        {
            entry.note(|h, now| h.breaker_open = Some(now));
            return;
        }
        if give_up.is_some_and(|t| Instant::now() >= t) {
            return;
        }
    }
}

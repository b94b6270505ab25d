//! The run itself: engine, signal handling, forwarder scrapes, and the once-a-second reporter
//! that writes timeseries.csv and the interval log and feeds the display (full-screen view or
//! progress lines); then summary, budgets and the other report files.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::RunError;
use crate::chaos::figures::{DEFAULT_RECOVERED_RATE, Figures, Markers};
use crate::chaos::timeline;
use crate::engine::client::Endpoint;
use crate::engine::{Drive, Level, Phase, drive, request::RequestTemplate};
use crate::report::artifacts::{EndOfRun, LiveWriters, write_end};
use crate::report::budget::Verdict;
use crate::report::summary::Summary;
use crate::report::timeseries::{Tick, TimeseriesWriter};
use crate::scenario::Plan;
use crate::stack::{Stack, probe};
use crate::stats::{ForwarderFigures, Recorder, Totals};
use crate::ui::{Display, DisplayOptions, FaultView, Frame, FrameInput, RunView, StageView};

const TICK: Duration = Duration::from_secs(1);

pub async fn run_load(
    plan: &Plan,
    target: &http::Uri,
    endpoint: Arc<Endpoint>,
    forwarder: Option<SocketAddr>,
    stack: Option<&Stack>,
    dir: &Path,
    no_tui: bool,
) -> Result<Vec<Verdict>, RunError> {
    let template = RequestTemplate::new(&plan.request, target, plan.load.protocol)
        .map_err(|e| RunError::BadInput(e.to_string()))?;
    // A chaos proxy that is not there would fail every fault on it: say so before the load.
    timeline::check_proxies(&plan.faults)
        .await
        .map_err(RunError::Failed)?;
    let io_err =
        |what: &str, e: std::io::Error| RunError::Failed(format!("cannot write {what}: {e}"));
    let mut timeseries = TimeseriesWriter::create(&dir.join("timeseries.csv"))
        .map_err(|e| io_err("timeseries.csv", e))?;

    let recorder = Arc::new(Recorder::default());
    let level = Arc::new(Level::default());
    let phase = Arc::new(watch::channel(Phase::Running).0);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Shared by the signal watcher and the full-screen view's q key: one way to stop.
    let stop_tx = Arc::new(stop_tx);
    let stop_seen = stop_tx.subscribe();
    let engine = tokio::spawn(drive(Drive {
        plan: plan.load.clone(),
        template,
        target: endpoint,
        timeout: plan.request.timeout.0,
        slo: plan.slo,
        recorder: recorder.clone(),
        level: level.clone(),
        phase: phase.clone(),
        stop: stop_rx,
    }));
    let open = plan.load.is_open();
    let mut display = Display::new(DisplayOptions {
        run: run_view(plan, forwarder.is_some()),
        progress_every: plan.report.progress_interval.0,
        no_tui,
        on_stop: {
            let (stop, phase) = (stop_tx.clone(), phase.clone());
            Box::new(move || {
                press_stop(&stop, &phase);
            })
        },
    });
    let signals = tokio::spawn(watch_signals(
        stop_tx,
        phase.clone(),
        display.is_full_screen(),
    ));
    let latest = Arc::new(Mutex::new(None::<ForwarderFigures>));
    let scraper = forwarder.map(|addr| tokio::spawn(scrape_forever(addr, latest.clone())));

    let started = Instant::now();
    let wall_start = SystemTime::now();
    let live_writers = LiveWriters::create(dir, wall_start, plan.request.stream, open)
        .map_err(|e| RunError::Failed(e.to_string()))?;
    let mut totals = Totals::default();
    // The fault timeline borrows the stack, so it is polled here beside the reporter rather
    // than spawned; it is inert once the loop ends.
    let journal = timeline::journal(&plan.faults);
    let mut fault_figures = (!plan.faults.is_empty()).then(|| Figures::new(&plan.faults));
    let chaos = async {
        if !plan.faults.is_empty() {
            timeline::run(
                &plan.faults,
                stack,
                started,
                journal.clone(),
                recorder.faults(),
            )
            .await;
        }
    };
    let mut chaos = std::pin::pin!(chaos);
    let mut chaos_done = false;
    let mut ticker = tokio::time::interval_at(started + TICK, TICK);
    let mut last_tick = started;
    let mut engine = std::pin::pin!(engine);
    let mut stop_noted = false;
    loop {
        let finished = tokio::select! {
            _ = ticker.tick() => false,
            _ = &mut engine => true,
            () = &mut chaos, if !chaos_done => {
                chaos_done = true;
                continue;
            }
        };
        let now = Instant::now();
        let interval = recorder.take();
        let current = level.get();
        let current_users = if open { 0 } else { current.round() as u32 };
        // The peak the engine set, not the samples: a spike between two ticks counts too.
        let peak_users = if open { 0 } else { level.peak().round() as u32 };
        totals.peak_users = totals.peak_users.max(current_users).max(peak_users);
        let figures = *latest.lock().unwrap_or_else(|p| p.into_inner());
        let seconds = (now - last_tick).as_secs_f64();
        let markers = match fault_figures.as_mut() {
            Some(figures) => {
                let journal = journal.lock().unwrap_or_else(|p| p.into_inner()).clone();
                figures.tick(last_tick - started, now - started, &interval, &journal)
            }
            None => Markers::default(),
        };
        if !markers.events.is_empty() {
            display.note(&format!("faults: {}", markers.events.replace(';', " ")));
        }
        live_writers.record(last_tick - started, now - last_tick, &interval);
        last_tick = now;
        timeseries
            .write(&Tick {
                elapsed_s: (now - started).as_secs_f64(),
                users: current_users,
                target_rate: open.then_some(current),
                interval: &interval,
                seconds,
                forwarder: figures,
                active_faults: &markers.active,
                fault_events: &markers.events,
            })
            .map_err(|e| io_err("timeseries.csv", e))?;
        totals.all.add(&interval);
        display.update(Frame::new(&FrameInput {
            elapsed: now - started,
            level: current,
            interval: &interval,
            seconds,
            totals: &totals,
            forwarder: figures,
            draining: *phase.borrow() != Phase::Running,
            active_faults: &markers.active,
        }));
        if !stop_noted && *phase.borrow() != Phase::Running {
            stop_noted = true;
            display.note("stages done: waiting for in-flight requests to finish");
        }
        if finished {
            break;
        }
    }
    let load_time = started.elapsed();
    display.finish();
    for problem in timeline::clear_proxies(&plan.faults).await {
        eprintln!("chaos proxy: {problem}");
    }
    live_writers
        .finish()
        .map_err(|e| RunError::Failed(e.to_string()))?;
    signals.abort();
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    // One last look at the forwarder, after the last request ended.
    // A fault may have left the forwarder down on purpose: then its last scrape stands.
    let forwarder_faulted = plan
        .faults
        .iter()
        .any(|f| f.target == crate::chaos::Target::Forwarder);
    let final_figures = match forwarder {
        Some(addr) => match scrape(addr).await {
            Some(figures) => Some(figures),
            None if forwarder_faulted => *latest.lock().unwrap_or_else(|p| p.into_inner()),
            None => {
                return Err(RunError::Failed(
                    "the forwarder's /metrics did not answer at the end of the run".into(),
                ));
            }
        },
        None => None,
    };

    let mut summary = Summary::new(&totals, load_time, plan.request.stream, open, final_figures);
    if let Some(fault_figures) = &fault_figures {
        let journal = journal.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (fault, happened) in plan.faults.iter().zip(&journal.faults) {
            for problem in &happened.problems {
                eprintln!("fault {}: {problem}", fault.name);
            }
        }
        let recovered_rate = plan
            .budgets
            .iter()
            .find(|b| b.metric == "success_rate")
            .map_or(DEFAULT_RECOVERED_RATE, |b| b.limit);
        fault_figures
            .finish(
                &journal,
                load_time,
                recovered_rate,
                &mut summary,
                &dir.join("faults.csv"),
            )
            .map_err(|e| io_err("faults.csv", e))?;
    }
    summary
        .write_csv(&dir.join("summary.csv"))
        .map_err(|e| io_err("summary.csv", e))?;
    // Printed from the file just written, by the same renderer `loadgen report` uses.
    match crate::report::folder::read_summary(&dir.join("summary.csv")) {
        Ok(file) => print!("{}", crate::report::console::render(&file, None)),
        Err(e) => {
            return Err(RunError::Failed(format!(
                "cannot read back summary.csv: {e}"
            )));
        }
    }
    let verdicts: Vec<Verdict> = plan
        .budgets
        .iter()
        .map(|b| b.judge(summary.get(&b.metric)))
        .collect();
    if !verdicts.is_empty() {
        println!("budgets:");
        for verdict in &verdicts {
            println!("  {verdict}");
        }
    }
    write_end(&EndOfRun {
        dir,
        plan,
        totals: &totals,
        verdicts: &verdicts,
        started: wall_start,
        ended: wall_start + load_time,
        load_time,
        stopped_early: *stop_seen.borrow(),
        with_forwarder: forwarder.is_some(),
    })
    .await
    .map_err(|e| RunError::Failed(e.to_string()))?;
    Ok(verdicts)
}

/// What the display shows of the plan: its name, length, stage ends and kind of load.
fn run_view(plan: &Plan, with_forwarder: bool) -> RunView {
    let mut end = Duration::ZERO;
    let stages = plan
        .load
        .stages
        .iter()
        .map(|s| {
            end += s.duration;
            StageView {
                end,
                target: s.target,
            }
        })
        .collect();
    RunView {
        title: plan.name.clone(),
        total: plan.load.total_duration(),
        stages,
        open: plan.load.is_open(),
        streaming: plan.request.stream,
        with_forwarder,
        faults: plan
            .faults
            .iter()
            .map(|f| FaultView {
                name: f.name.clone(),
                at: f.at,
                end: f.duration.map(|d| f.at + d),
            })
            .collect(),
    }
}

/// One press of "stop" (q, Ctrl-C, SIGTERM): the first stops sending and lets in-flight
/// requests finish; the next abandons them. Returns whether this press was the first.
fn press_stop(stop: &watch::Sender<bool>, phase: &watch::Sender<Phase>) -> bool {
    if !*stop.borrow() {
        stop.send_replace(true);
        true
    } else {
        phase.send_replace(Phase::Aborted);
        false
    }
}

/// First Ctrl-C (or SIGTERM): stop sending and let in-flight requests finish; second: abandon them.
async fn watch_signals(
    stop: Arc<watch::Sender<bool>>,
    phase: Arc<watch::Sender<Phase>>,
    // The full-screen view shows the stop itself; a line printed over it would garble it.
    quiet: bool,
) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    let next = async || {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let mut next = next;
    // The full-screen view may have pressed stop already: each signal is one more press.
    loop {
        next().await;
        let first = press_stop(&stop, &phase);
        if !quiet && first {
            eprintln!(
                "\nstopping: finishing in-flight requests (press Ctrl-C again to abandon them)"
            );
        } else if !quiet {
            eprintln!("\nabandoning in-flight requests");
        }
        if !first {
            return;
        }
    }
}

async fn scrape(addr: SocketAddr) -> Option<ForwarderFigures> {
    match probe::get(addr, "/metrics", Duration::from_secs(1)).await {
        Ok((200, text)) => Some(ForwarderFigures::parse(&text)),
        _ => None,
    }
}

async fn scrape_forever(addr: SocketAddr, latest: Arc<Mutex<Option<ForwarderFigures>>>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        ticker.tick().await;
        if let Some(figures) = scrape(addr).await {
            *latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(figures);
        }
    }
}

//! The run itself: engine, signal handling, forwarder scrapes, and the once-a-second reporter
//! that writes timeseries.csv and feeds the progress display; then summary and budgets.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::RunError;
use crate::engine::{Drive, Level, Phase, drive, request::RequestTemplate};
use crate::report::budget::Verdict;
use crate::report::summary::{Summary, format_value};
use crate::report::timeseries::{Tick, TimeseriesWriter};
use crate::scenario::Plan;
use crate::stack::probe;
use crate::stats::{ForwarderFigures, Recorder, Totals};
use crate::ui::{Progress, Snapshot};

const TICK: Duration = Duration::from_secs(1);

pub async fn run_load(
    plan: &Plan,
    target: &http::Uri,
    addr: SocketAddr,
    forwarder: Option<SocketAddr>,
    dir: &Path,
    _no_tui: bool,
) -> Result<Vec<Verdict>, RunError> {
    let template = RequestTemplate::new(&plan.request, target, plan.load.protocol)
        .map_err(|e| RunError::BadInput(e.to_string()))?;
    let io_err =
        |what: &str, e: std::io::Error| RunError::Failed(format!("cannot write {what}: {e}"));
    let mut timeseries = TimeseriesWriter::create(&dir.join("timeseries.csv"))
        .map_err(|e| io_err("timeseries.csv", e))?;

    let recorder = Arc::new(Recorder::default());
    let level = Arc::new(Level::default());
    let phase = Arc::new(watch::channel(Phase::Running).0);
    let (stop_tx, stop_rx) = watch::channel(false);
    let engine = tokio::spawn(drive(Drive {
        plan: plan.load.clone(),
        template,
        target: addr,
        timeout: plan.request.timeout.0,
        slo: plan.slo,
        recorder: recorder.clone(),
        level: level.clone(),
        phase: phase.clone(),
        stop: stop_rx,
    }));
    let open = plan.load.is_open();
    let mut progress = Progress::new(
        plan.load.total_duration(),
        plan.report.progress_interval.0,
        false,
    );
    let signals = tokio::spawn(watch_signals(stop_tx, phase.clone()));
    let latest = Arc::new(Mutex::new(None::<ForwarderFigures>));
    let scraper = forwarder.map(|addr| tokio::spawn(scrape_forever(addr, latest.clone())));

    let started = Instant::now();
    let mut totals = Totals::default();
    let mut ticker = tokio::time::interval_at(started + TICK, TICK);
    let mut last_tick = started;
    let mut engine = std::pin::pin!(engine);
    let mut stop_noted = false;
    loop {
        let finished = tokio::select! {
            _ = ticker.tick() => false,
            _ = &mut engine => true,
        };
        let now = Instant::now();
        let interval = recorder.take();
        let current = level.get();
        let current_users = if open { 0 } else { current.round() as u32 };
        totals.peak_users = totals.peak_users.max(current_users);
        let figures = *latest.lock().unwrap_or_else(|p| p.into_inner());
        let seconds = (now - last_tick).as_secs_f64();
        last_tick = now;
        timeseries
            .write(&Tick {
                elapsed_s: (now - started).as_secs_f64(),
                users: current_users,
                target_rate: open.then_some(current),
                interval: &interval,
                seconds,
                forwarder: figures,
            })
            .map_err(|e| io_err("timeseries.csv", e))?;
        totals.all.add(&interval);
        let ms = |h: &hdrhistogram::Histogram<u64>| {
            (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0)
        };
        progress.update(&Snapshot {
            elapsed: now - started,
            users: current_users,
            rate: open.then_some(current),
            throughput: if seconds > 0.0 {
                interval.requests() as f64 / seconds
            } else {
                0.0
            },
            ok: totals.all.ok,
            failed: totals.all.failed_total(),
            latency_p99_ms: ms(&interval.latency),
            ttft_p99_ms: if plan.request.stream {
                ms(&interval.ttft)
            } else {
                None
            },
            queue_depth: figures.map(|f| f.queue_depth),
        });
        if !stop_noted && *phase.borrow() != Phase::Running {
            stop_noted = true;
            progress.note("stages done: waiting for in-flight requests to finish");
        }
        if finished {
            break;
        }
    }
    let load_time = started.elapsed();
    progress.finish();
    signals.abort();
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    // One last look at the forwarder, after the last request ended.
    let final_figures = match forwarder {
        Some(addr) => Some(scrape(addr).await.ok_or_else(|| {
            RunError::Failed("the forwarder's /metrics did not answer at the end of the run".into())
        })?),
        None => None,
    };

    let summary = Summary::new(&totals, load_time, plan.request.stream, open, final_figures);
    summary
        .write_csv(&dir.join("summary.csv"))
        .map_err(|e| io_err("summary.csv", e))?;
    print_summary(&summary);
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
    Ok(verdicts)
}

/// First Ctrl-C (or SIGTERM): stop sending and let in-flight requests finish; second: abandon them.
async fn watch_signals(stop: watch::Sender<bool>, phase: Arc<watch::Sender<Phase>>) {
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
    next().await;
    eprintln!("\nstopping: finishing in-flight requests (press Ctrl-C again to abandon them)");
    stop.send_replace(true);
    next().await;
    eprintln!("\nabandoning in-flight requests");
    phase.send_replace(Phase::Aborted);
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

fn print_summary(summary: &Summary) {
    let show = |name: &str| {
        summary
            .rows
            .iter()
            .find(|r| r.metric == name)
            .map(|r| match r.value {
                Some(v) => format!("{} {}", format_value(v), r.unit),
                None => "-".to_owned(),
            })
            .unwrap_or_else(|| "-".to_owned())
    };
    let count = |name: &str| {
        summary
            .get(name)
            .map_or_else(|| "-".to_owned(), format_value)
    };
    println!(
        "requests {} = ok {} + failed {}",
        count("requests"),
        count("ok"),
        count("failed")
    );
    let failures: Vec<String> = summary
        .rows
        .iter()
        .filter(|r| r.metric.starts_with("failed_") && r.value.is_some_and(|v| v > 0.0))
        .map(|r| {
            format!(
                "{} {}",
                &r.metric["failed_".len()..],
                format_value(r.value.unwrap_or(0.0))
            )
        })
        .collect();
    if !failures.is_empty() {
        println!("failures by class: {}", failures.join(", "));
    }
    for group in [
        &["success_rate", "throughput"][..],
        &["latency_p50", "latency_p90", "latency_p99", "latency_max"],
        &[
            "ttft_p50",
            "ttft_p99",
            "itl_p50",
            "itl_p99",
            "output_tokens_per_s",
        ],
        &["queue_depth_max", "shed"],
    ] {
        let parts: Vec<String> = group
            .iter()
            .filter(|m| summary.rows.iter().any(|r| r.metric == **m))
            .map(|m| format!("{m} {}", show(m)))
            .collect();
        if !parts.is_empty() {
            println!("{}", parts.join("  "));
        }
    }
}

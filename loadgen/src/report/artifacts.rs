//! The report files beyond summary.csv and timeseries.csv: the interval log while the run goes,
//! then at the end the percentile spectra, budgets.xml, run.json and report.html.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::budget::Verdict;
use super::format::{self, BUDGETS_XML, HLOG, RUN_JSON};
use super::hlog::HlogWriter;
use super::run_meta::{RunFacts, RunMeta, rfc3339};
use super::{html, junit, spectrum};
use crate::scenario::Plan;
use crate::stats::{Interval, Totals};

/// A report file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {file}: {reason}")]
pub struct WriteError {
    pub file: String,
    pub reason: String,
}

fn failed(file: &str, reason: impl ToString) -> WriteError {
    WriteError {
        file: file.to_owned(),
        reason: reason.to_string(),
    }
}

/// Writers fed every second while the run goes.
pub struct LiveWriters {
    hlog: HlogWriter,
    streaming: bool,
    open_model: bool,
}

impl LiveWriters {
    pub fn create(
        dir: &Path,
        start: SystemTime,
        streaming: bool,
        open_model: bool,
    ) -> Result<LiveWriters, WriteError> {
        let hlog = HlogWriter::create(&dir.join(HLOG), start).map_err(|e| failed(HLOG, e))?;
        Ok(LiveWriters {
            hlog,
            streaming,
            open_model,
        })
    }

    /// Logs one interval that began `start` into the run and lasted `length`.
    pub fn record(&self, start: Duration, length: Duration, interval: &Interval) {
        self.hlog.write("latency", start, length, &interval.latency);
        if self.streaming {
            self.hlog.write("ttft", start, length, &interval.ttft);
        }
        if self.open_model {
            self.hlog
                .write("service_time", start, length, &interval.service_time);
        }
    }

    pub fn finish(self) -> Result<(), WriteError> {
        self.hlog.finish().map_err(|e| failed(HLOG, e))
    }
}

/// What the end-of-run writers need.
pub struct EndOfRun<'a> {
    pub dir: &'a Path,
    pub plan: &'a Plan,
    pub totals: &'a Totals,
    pub verdicts: &'a [Verdict],
    pub started: SystemTime,
    pub ended: SystemTime,
    pub load_time: Duration,
    pub stopped_early: bool,
    pub with_forwarder: bool,
}

/// Writes the spectra, budgets.xml, run.json and report.html (after summary.csv exists).
pub async fn write_end(end: &EndOfRun<'_>) -> Result<(), WriteError> {
    let all = &end.totals.all;
    let mut spectra = vec![("latency", &all.latency)];
    if end.plan.load.is_open() {
        spectra.push(("service_time", &all.service_time));
    }
    if end.plan.request.stream {
        spectra.push(("ttft", &all.ttft));
        spectra.push(("itl", &all.inter_token));
    }
    for (family, h) in spectra {
        let file = format::spectrum_file(family);
        spectrum::write(&end.dir.join(&file), h).map_err(|e| failed(&file, e))?;
    }
    junit::write(
        &end.dir.join(BUDGETS_XML),
        &end.plan.name,
        end.verdicts,
        end.load_time.as_secs_f64(),
        &rfc3339(end.started),
    )
    .map_err(|e| failed(BUDGETS_XML, e))?;
    let meta = RunMeta::gather(&RunFacts {
        plan: end.plan,
        started: end.started,
        ended: end.ended,
        load_time: end.load_time,
        stopped_early: end.stopped_early,
        verdicts: end.verdicts,
        with_forwarder: end.with_forwarder,
    })
    .await;
    meta.write(&end.dir.join(RUN_JSON))
        .map_err(|e| failed(RUN_JSON, e))?;
    html::write_for(end.dir).map_err(|e| failed(format::REPORT_HTML, e))
}

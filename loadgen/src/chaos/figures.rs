//! What the faults did, in numbers: per-second markers for timeseries.csv, one row per fault in
//! faults.csv, and the resilience rows of summary.csv (`breaker_open_after`, `recovered_after`,
//! `failed_during_faults`; `lost` is every run's, in the summary).
//!
//! Each fault's counts are the outcomes recorded while it was active (the recorder counts every
//! outcome against the faults active at that moment), so back-to-back faults are told apart
//! even within one second; the markers are per second, as timeseries.csv is.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::fault::Fault;
use super::timeline::Journal;
use crate::report::summary::{Summary, format_value};
use crate::stats::{ErrorClass, FaultTally, Interval};

/// The summary metrics this module adds (and budgets may bound).
pub const METRICS: [&str; 3] = [
    "breaker_open_after",
    "recovered_after",
    "failed_during_faults",
];

/// Success rate a second must reach to count as recovered when no budget says otherwise.
pub const DEFAULT_RECOVERED_RATE: f64 = 99.0;

/// One reporter second, as recovery is judged from it.
#[derive(Clone, Copy, Debug)]
struct Second {
    from: Duration,
    to: Duration,
    requests: u64,
    ok: u64,
}

/// Accumulates, second by second, what happened during the faults.
#[derive(Debug)]
pub struct Figures {
    faults: Vec<Fault>,
    tallies: Vec<FaultTally>,
    seconds: Vec<Second>,
    failed_during: u64,
}

/// One second's markers for timeseries.csv.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Markers {
    /// Faults active for some part of the second, `;`-separated.
    pub active: String,
    /// `+name` for a fault that started in the second, `-name` for one that ended.
    pub events: String,
}

impl Figures {
    pub fn new(faults: &[Fault]) -> Figures {
        Figures {
            faults: faults.to_vec(),
            tallies: vec![FaultTally::default(); faults.len()],
            seconds: Vec::new(),
            failed_during: 0,
        }
    }

    /// Takes the second `from..to` of the load: adds what was recorded during each fault, and
    /// marks the faults active in it.
    pub fn tick(
        &mut self,
        from: Duration,
        to: Duration,
        interval: &Interval,
        journal: &Journal,
    ) -> Markers {
        let mut markers = Markers::default();
        for (i, happened) in journal.faults.iter().enumerate() {
            let name = &self.faults[i].name;
            let Some(started) = happened.started else {
                continue;
            };
            let in_second = |t: Duration| t >= from && t < to;
            if in_second(started) {
                push(&mut markers.events, &format!("+{name}"));
            }
            if happened.ended.is_some_and(in_second) {
                push(&mut markers.events, &format!("-{name}"));
            }
            if started < to && happened.ended.is_none_or(|e| e >= from) {
                push(&mut markers.active, name);
            }
        }
        for (i, tally) in self.tallies.iter_mut().enumerate() {
            let during = interval.during_faults.of(i);
            tally.requests += during.requests;
            tally.ok += during.ok;
            for (sum, n) in tally.failed.iter_mut().zip(during.failed) {
                *sum += n;
            }
        }
        self.failed_during += interval.during_faults.failed;
        self.seconds.push(Second {
            from,
            to,
            requests: interval.requests(),
            ok: interval.ok,
        });
        markers
    }

    /// Adds the resilience rows to the summary and writes `faults.csv`.
    pub fn finish(
        &self,
        journal: &Journal,
        run_end: Duration,
        recovered_rate: f64,
        summary: &mut Summary,
        csv: &Path,
    ) -> std::io::Result<()> {
        let rows: Vec<Row> = (0..self.faults.len())
            .map(|i| self.row(i, journal, run_end, recovered_rate))
            .collect();
        // The worst case decides; a fault that should have opened a breaker and did not leaves
        // the figure unmeasured, which fails a budget on it.
        let breaking: Vec<Option<f64>> = rows
            .iter()
            .zip(&self.faults)
            .filter(|(_, f)| f.must_be_noticed())
            .map(|(r, _)| r.breaker_open_after)
            .collect();
        let breaker = worst(&breaking);
        let ending: Vec<Option<f64>> = rows
            .iter()
            .filter(|r| r.ended_early)
            .map(|r| r.recovered_after)
            .collect();
        summary.push("breaker_open_after", breaker, "s");
        summary.push("recovered_after", worst(&ending), "s");
        summary.push(
            "failed_during_faults",
            Some(self.failed_during as f64),
            "count",
        );
        write_csv(csv, &rows)
    }

    fn row(&self, i: usize, journal: &Journal, run_end: Duration, rate: f64) -> Row {
        let fault = &self.faults[i];
        let happened = journal.faults.get(i).cloned().unwrap_or_default();
        let started = happened.started;
        let ended = started.map(|_| happened.ended.unwrap_or(run_end));
        let ended_early = happened.ended.is_some_and(|e| e < run_end);
        let recovered_after = happened
            .ended
            .filter(|_| ended_early)
            .and_then(|end| self.recovery(end, rate));
        Row {
            name: fault.name.clone(),
            kind: fault.kind_name(),
            target: fault_target(fault),
            planned_at: fault.at,
            started,
            ended,
            ended_early,
            tally: self.tallies[i].clone(),
            breaker_open_after: match (started, happened.noticed) {
                (Some(s), Some(noticed)) => Some(noticed.at.saturating_sub(s).as_secs_f64()),
                _ => None,
            },
            noticed_by: happened.noticed.map_or("", |n| n.by.name()),
            recovered_after,
            problems: happened.problems.join("; "),
        }
    }

    /// Seconds from `end` to the end of the first whole second after it whose success rate is
    /// at least `rate` percent (seconds without requests say nothing and are skipped).
    fn recovery(&self, end: Duration, rate: f64) -> Option<f64> {
        self.seconds
            .iter()
            .filter(|s| s.from >= end && s.requests > 0)
            .find(|s| s.ok as f64 * 100.0 / s.requests as f64 >= rate)
            .map(|s| (s.to - end).as_secs_f64())
    }
}

struct Row {
    name: String,
    kind: &'static str,
    target: String,
    planned_at: Duration,
    started: Option<Duration>,
    ended: Option<Duration>,
    ended_early: bool,
    tally: FaultTally,
    /// When the forwarder noticed the fault, from its start.
    breaker_open_after: Option<f64>,
    noticed_by: &'static str,
    recovered_after: Option<f64>,
    problems: String,
}

fn fault_target(fault: &Fault) -> String {
    match &fault.target {
        super::fault::Target::Forwarder => "forwarder".to_owned(),
        super::fault::Target::Proxy { name, .. } => name.clone(),
        super::fault::Target::Backends(list) => list
            .iter()
            .map(|i| format!("backend-{i}"))
            .collect::<Vec<_>>()
            .join("+"),
    }
}

/// The largest value, or `None` if there is none or any is unmeasured.
fn worst(values: &[Option<f64>]) -> Option<f64> {
    values
        .iter()
        .try_fold(None::<f64>, |max, v| {
            v.map(|v| Some(max.map_or(v, |m| m.max(v))))
        })
        .flatten()
}

fn push(list: &mut String, item: &str) {
    if !list.is_empty() {
        list.push(';');
    }
    list.push_str(item);
}

fn write_csv(path: &Path, rows: &[Row]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut header =
        String::from("fault,kind,target,planned_at_s,start_s,end_s,requests,ok,failed");
    for class in ErrorClass::ALL {
        header.push_str(",failed_");
        header.push_str(class.name());
    }
    header.push_str(",breaker_open_after_s,noticed_by,recovered_after_s,problems");
    writeln!(out, "{header}")?;
    let secs =
        |d: Option<Duration>| d.map_or_else(String::new, |d| format!("{:.3}", d.as_secs_f64()));
    let value = |v: Option<f64>| v.map_or_else(String::new, format_value);
    for r in rows {
        let failed: u64 = r.tally.failed.iter().sum();
        let mut line = format!(
            "{},{},{},{:.3},{},{},{},{},{failed}",
            r.name,
            r.kind,
            r.target,
            r.planned_at.as_secs_f64(),
            secs(r.started),
            secs(r.ended),
            r.tally.requests,
            r.tally.ok,
        );
        for n in r.tally.failed {
            line.push_str(&format!(",{n}"));
        }
        // Problems are free text: quoted, with quotes doubled, as CSV wants.
        line.push_str(&format!(
            ",{},{},{},\"{}\"",
            value(r.breaker_open_after),
            r.noticed_by,
            value(r.recovered_after),
            r.problems.replace('"', "\"\"")
        ));
        writeln!(out, "{line}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::fault::{FaultKind, ProcessAction, Target};
    use crate::chaos::timeline::{Happened, Noticed, NoticedBy};
    use crate::mock::chaos::HttpFault;
    use crate::stats::{Outcome, Recorder};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Records `ok` successes, then `failed` failures of `class`, each over in no time.
    fn record(recorder: &Recorder, ok: u64, failed: u64, class: ErrorClass) {
        for _ in 0..ok {
            recorder.record(&Outcome::default());
        }
        for _ in 0..failed {
            recorder.record(&Outcome::failed(class, Duration::ZERO));
        }
    }

    fn fault(name: &str, at: Duration, duration: Duration, kind: FaultKind) -> Fault {
        Fault {
            name: name.into(),
            at,
            duration: Some(duration),
            target: Target::Backends(vec![0]),
            kind,
        }
    }

    fn happened(started: Duration, ended: Duration) -> Happened {
        Happened {
            started: Some(started),
            ended: Some(ended),
            ..Happened::default()
        }
    }

    fn temp_csv(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("chaos-figures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn outcomes_during_a_fault_count_towards_it_and_recovery_is_timed() {
        let crash = FaultKind::Process {
            action: ProcessAction::Crash,
            restart: true,
        };
        let fault = fault("crash-backend-0", secs(2), secs(2), crash);
        let mut figures = Figures::new(std::slice::from_ref(&fault));
        let mut journal = Journal {
            faults: vec![happened(ms(2100), ms(4100))],
        };
        journal.faults[0].noticed = Some(Noticed {
            at: ms(3600),
            by: NoticedBy::Breaker,
        });
        let recorder = Recorder::default();
        let mut markers = Vec::new();
        let mut second = |s: u64, recorder: &Recorder, figures: &mut Figures| {
            let interval = recorder.take();
            markers.push(figures.tick(secs(s), secs(s + 1), &interval, &journal));
        };
        record(&recorder, 10, 0, ErrorClass::Http5xx);
        second(0, &recorder, &mut figures);
        record(&recorder, 10, 0, ErrorClass::Http5xx);
        second(1, &recorder, &mut figures);
        // Second 2: five answers before the crash at 2.1 s, five failures after it.
        record(&recorder, 5, 0, ErrorClass::Http5xx);
        recorder.faults().begin(0);
        record(&recorder, 0, 5, ErrorClass::Http5xx);
        second(2, &recorder, &mut figures);
        record(&recorder, 6, 4, ErrorClass::Http5xx);
        second(3, &recorder, &mut figures);
        // Second 4: the fault ends at 4.1 s; what comes after is not its doing.
        record(&recorder, 3, 2, ErrorClass::Http5xx);
        recorder.faults().end(0);
        record(&recorder, 5, 0, ErrorClass::Http5xx);
        second(4, &recorder, &mut figures);
        record(&recorder, 10, 0, ErrorClass::Http5xx);
        second(5, &recorder, &mut figures);

        assert_eq!(markers[1], Markers::default());
        assert_eq!(markers[2].events, "+crash-backend-0");
        assert_eq!(markers[4].events, "-crash-backend-0");
        assert_eq!(markers[3].active, "crash-backend-0");
        let csv = temp_csv("one.csv");
        let mut summary = Summary::default();
        figures
            .finish(&journal, secs(6), 99.0, &mut summary, &csv)
            .unwrap();
        assert_eq!(summary.get("breaker_open_after"), Some(1.5));
        assert_eq!(summary.get("failed_during_faults"), Some(11.0));
        // Ended at 4.1 s; the second 5..6 is the first back at 99 %.
        assert!((summary.get("recovered_after").unwrap() - 1.9).abs() < 1e-9);
        let csv = std::fs::read_to_string(csv).unwrap();
        assert_eq!(csv.lines().count(), 2, "{csv}");
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("crash-backend-0,crash,backend-0,2.000,2.100,4.100,20,9,11"),
            "{csv}"
        );
        assert!(csv.contains(",1.500,breaker,1.900,"), "{csv}");
    }

    #[test]
    fn back_to_back_faults_within_one_second_are_counted_apart() {
        let error = |status| {
            FaultKind::Http(HttpFault::Error {
                status,
                body: None,
                retry_after_s: None,
                toxicity: 1.0,
            })
        };
        let faults = [
            fault("unavailable", ms(100), ms(300), error(503)),
            fault("limited", ms(400), ms(400), error(429)),
        ];
        let journal = Journal {
            faults: vec![happened(ms(100), ms(400)), happened(ms(400), ms(800))],
        };
        let mut figures = Figures::new(&faults);
        let recorder = Recorder::default();
        // All within the second 0..1: ok, then three 503s, then four 429s, then ok again.
        record(&recorder, 2, 0, ErrorClass::Http5xx);
        recorder.faults().begin(0);
        record(&recorder, 0, 3, ErrorClass::Http5xx);
        recorder.faults().end(0);
        recorder.faults().begin(1);
        record(&recorder, 1, 4, ErrorClass::Http4xx);
        recorder.faults().end(1);
        record(&recorder, 2, 0, ErrorClass::Http5xx);
        let markers = figures.tick(secs(0), secs(1), &recorder.take(), &journal);
        assert_eq!(markers.active, "unavailable;limited");
        let csv = temp_csv("two.csv");
        let mut summary = Summary::default();
        figures
            .finish(&journal, secs(1), 99.0, &mut summary, &csv)
            .unwrap();
        assert_eq!(summary.get("failed_during_faults"), Some(7.0));
        let mut reader = csv::Reader::from_path(&csv).unwrap();
        let header = reader.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let cell = |row: usize, name: &str| -> String {
            rows[row][header.iter().position(|h| h == name).unwrap()].to_owned()
        };
        assert_eq!(
            [
                cell(0, "requests"),
                cell(0, "ok"),
                cell(0, "failed_http_5xx")
            ],
            ["3", "0", "3"]
        );
        assert_eq!(cell(0, "failed_http_4xx"), "0");
        assert_eq!(
            [
                cell(1, "requests"),
                cell(1, "ok"),
                cell(1, "failed_http_4xx")
            ],
            ["5", "1", "4"]
        );
        assert_eq!(cell(1, "failed_http_5xx"), "0");
    }

    #[test]
    fn an_unmeasured_fault_leaves_the_worst_case_unmeasured() {
        assert_eq!(worst(&[Some(1.0), Some(3.0)]), Some(3.0));
        assert_eq!(worst(&[Some(1.0), None]), None);
        assert_eq!(worst(&[]), None);
    }
}

//! Comparing two summaries metric by metric: deltas, and a mark against each tolerance.

use super::tolerance::{GATED, INFO, Tolerance, Tolerances};
use crate::report::budget::{Bound, describe};
use crate::report::folder::SummaryFile;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Moved beyond the tolerance in the good direction.
    Better,
    /// Within the tolerance.
    Same,
    /// Moved beyond the tolerance in the bad direction, or no longer measured: a regression.
    Worse,
    /// Shown for context only.
    Info,
    /// Not in one of the reports: not compared.
    Missing,
}

impl Mark {
    pub fn word(self) -> &'static str {
        match self {
            Mark::Better => "better",
            Mark::Same => "same",
            Mark::Worse => "worse",
            Mark::Info => "",
            Mark::Missing => "n/a",
        }
    }
}

/// One row of the comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub metric: String,
    pub unit: String,
    pub base: Option<f64>,
    pub new: Option<f64>,
    pub tolerance: Option<Tolerance>,
    pub mark: Mark,
}

impl Line {
    pub fn delta(&self) -> Option<f64> {
        Some(self.new? - self.base?)
    }

    /// Relative change in percent of the base; `None` when the base is zero or missing.
    pub fn relative(&self) -> Option<f64> {
        let base = self.base?;
        (base != 0.0).then(|| self.delta().map(|d| d / base.abs() * 100.0))?
    }
}

/// Compares the gated metrics (and any the user gave a tolerance for), then the context ones.
pub fn compare(base: &SummaryFile, new: &SummaryFile, tolerances: &Tolerances) -> Vec<Line> {
    let mut names: Vec<String> = GATED.iter().map(|m| (*m).to_owned()).collect();
    for name in tolerances.names() {
        // An explicit tolerance for an exact metric also gates it (e.g. latency_max).
        if base.get(name).is_some() && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    let mut lines = Vec::new();
    for name in &names {
        let (b, n) = (base.get(name), new.get(name));
        if b.is_none() && n.is_none() {
            continue;
        }
        let (tolerance, _) = tolerances.for_metric(name);
        let (base_value, new_value) = (b.and_then(|m| m.value), n.and_then(|m| m.value));
        let mark = match (b, n, base_value, new_value) {
            (Some(_), Some(_), Some(bv), Some(nv)) => judge(name, bv, nv, tolerance),
            // Measured before, not now (no successful request, say): a gate must not pass.
            (Some(_), Some(_), Some(_), None) => Mark::Worse,
            _ => Mark::Missing,
        };
        lines.push(Line {
            metric: name.clone(),
            unit: b.or(n).map(|m| m.unit.clone()).unwrap_or_default(),
            base: base_value,
            new: new_value,
            tolerance: Some(tolerance),
            mark,
        });
    }
    for name in INFO {
        let (b, n) = (base.get(name), new.get(name));
        if b.is_none() && n.is_none() {
            continue;
        }
        lines.push(Line {
            metric: name.to_owned(),
            unit: b.or(n).map(|m| m.unit.clone()).unwrap_or_default(),
            base: b.and_then(|m| m.value),
            new: n.and_then(|m| m.value),
            tolerance: None,
            mark: Mark::Info,
        });
    }
    lines
}

fn judge(metric: &str, base: f64, new: f64, tolerance: Tolerance) -> Mark {
    let delta = new - base;
    // A hair of slack for values printed with three decimals.
    if delta.abs() <= tolerance.allowed(base) + 1e-9 {
        return Mark::Same;
    }
    let higher_is_better = matches!(describe(metric), Some((Bound::AtLeast, _)));
    if (delta > 0.0) == higher_is_better {
        Mark::Better
    } else {
        Mark::Worse
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::folder::Metric;
    use std::path::PathBuf;

    fn summary(rows: &[(&str, Option<f64>)]) -> SummaryFile {
        SummaryFile {
            path: PathBuf::from("summary.csv"),
            format_version: 1,
            metrics: rows
                .iter()
                .map(|(name, value)| Metric {
                    name: (*name).to_owned(),
                    value: *value,
                    unit: "ms".to_owned(),
                })
                .collect(),
        }
    }

    fn mark(lines: &[Line], metric: &str) -> Mark {
        lines.iter().find(|l| l.metric == metric).unwrap().mark
    }

    #[test]
    fn directions_and_tolerances_decide_the_mark() {
        let base = summary(&[
            ("requests", Some(100.0)),
            ("latency_p50", Some(100.0)),
            ("latency_p99", Some(100.0)),
            ("latency_p90", Some(100.0)),
            ("success_rate", Some(99.9)),
            ("throughput", Some(100.0)),
            ("ttft_p99", Some(50.0)),
        ]);
        let new = summary(&[
            ("requests", Some(90.0)),
            ("latency_p50", Some(109.0)),
            ("latency_p99", Some(115.0)),
            ("latency_p90", Some(80.0)),
            ("success_rate", Some(99.7)),
            ("throughput", Some(104.0)),
            ("ttft_p99", None),
        ]);
        let lines = compare(&base, &new, &Tolerances::default());
        assert_eq!(mark(&lines, "latency_p50"), Mark::Same);
        assert_eq!(mark(&lines, "latency_p99"), Mark::Worse);
        assert_eq!(mark(&lines, "latency_p90"), Mark::Better);
        assert_eq!(mark(&lines, "success_rate"), Mark::Worse);
        assert_eq!(mark(&lines, "throughput"), Mark::Same);
        assert_eq!(mark(&lines, "ttft_p99"), Mark::Worse, "no longer measured");
        assert_eq!(mark(&lines, "requests"), Mark::Info);
        let p99 = lines.iter().find(|l| l.metric == "latency_p99").unwrap();
        assert_eq!((p99.delta(), p99.relative()), (Some(15.0), Some(15.0)));

        let mut loose = Tolerances::default();
        loose.add_flag("latency=20%").unwrap();
        loose.add_flag("success_rate=0.5").unwrap();
        loose.add_flag("ttft_p99=100%").unwrap();
        let lines = compare(&base, &new, &loose);
        assert_eq!(mark(&lines, "latency_p99"), Mark::Same);
        assert_eq!(mark(&lines, "success_rate"), Mark::Same);
    }
}

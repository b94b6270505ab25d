//! How far a metric may move before `compare` calls it better or worse: a share of the base
//! value (`10%`) or an absolute amount in the metric's unit (`0.1` points of success rate,
//! `5ms`). Defaults per metric family, overridden by `--tolerance METRIC=VALUE` flags or a
//! `--tolerances FILE` of such lines.

use std::path::Path;

use crate::scenario::human::parse_duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// A fraction of the base value (0.10 for `10%`).
    Relative(f64),
    /// An amount in the metric's own unit.
    Absolute(f64),
}

impl Tolerance {
    /// The largest change that still counts as "same", given the base value.
    pub fn allowed(self, base: f64) -> f64 {
        match self {
            Tolerance::Relative(share) => share * base.abs(),
            Tolerance::Absolute(amount) => amount,
        }
    }

    pub fn label(self) -> String {
        match self {
            Tolerance::Relative(share) => format!("±{}%", trim(share * 100.0)),
            Tolerance::Absolute(amount) => format!("±{}", trim(amount)),
        }
    }

    /// `10%`, `0.1`, `0.1pt`, `5ms`, `1s`.
    pub fn parse(text: &str) -> Result<Tolerance, String> {
        let text = text.trim();
        let number = |t: &str| {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        if let Some(percent) = text.strip_suffix('%') {
            return number(percent)
                .map(|p| Tolerance::Relative(p / 100.0))
                .ok_or_else(|| format!("{text:?} is not a non-negative percentage"));
        }
        if let Some(points) = text.strip_suffix("pt") {
            return number(points)
                .map(Tolerance::Absolute)
                .ok_or_else(|| format!("{text:?} is not a non-negative number of points"));
        }
        if let Some(v) = number(text) {
            return Ok(Tolerance::Absolute(v));
        }
        parse_duration(text)
            .map(|d| Tolerance::Absolute(d.as_secs_f64() * 1000.0))
            .map_err(|_| {
                format!(
                    "{text:?} is not a tolerance (write 10% for relative, 0.5 or 5ms for absolute)"
                )
            })
    }
}

fn trim(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Latency-like families: lower is better, 10% by default.
const TIMING_FAMILIES: [&str; 5] = ["latency", "service_time", "ttft", "itl", "tpot"];

/// The metrics compared by default, when present in both reports.
pub const GATED: [&str; 17] = [
    "success_rate",
    "goodput_rate",
    "throughput",
    "goodput",
    "output_tokens_per_s",
    "latency_p50",
    "latency_p90",
    "latency_p99",
    "latency_p999",
    "latency_mean",
    "service_time_p50",
    "service_time_p99",
    "ttft_p50",
    "ttft_p99",
    "itl_p50",
    "itl_p99",
    "queue_depth_max",
];

/// Shown for context, never a regression on their own.
pub const INFO: [&str; 5] = ["requests", "ok", "failed", "dropped", "duration"];

/// The default tolerance of a metric.
pub fn default_for(metric: &str) -> Tolerance {
    let family = metric.rsplit_once('_').map_or(metric, |(f, _)| f);
    if TIMING_FAMILIES.contains(&family) {
        return Tolerance::Relative(0.10);
    }
    match metric {
        // Points of percentage: 99.9% -> 99.7% is a regression, 99.95% is not.
        "success_rate" | "goodput_rate" => Tolerance::Absolute(0.1),
        "throughput" | "goodput" | "output_tokens_per_s" => Tolerance::Relative(0.05),
        // The forwarder's backlog: a few requests either way is noise.
        "queue_depth_max" => Tolerance::Absolute(5.0),
        _ => Tolerance::Relative(0.10),
    }
}

/// Defaults plus overrides; an override names a metric (`latency_p99`) or a family
/// (`latency`, `latency_*`) and the most specific one wins.
#[derive(Clone, Debug, Default)]
pub struct Tolerances {
    overrides: Vec<(String, Tolerance)>,
}

impl Tolerances {
    pub fn add(&mut self, pattern: &str, tolerance: Tolerance) {
        let pattern = pattern.trim().trim_end_matches('*').trim_end_matches('_');
        self.overrides.retain(|(p, _)| p != pattern);
        self.overrides.push((pattern.to_owned(), tolerance));
    }

    /// The tolerance of a metric, and whether the user set it (which also gates the metric).
    pub fn for_metric(&self, metric: &str) -> (Tolerance, bool) {
        if let Some((_, t)) = self.overrides.iter().find(|(p, _)| p == metric) {
            return (*t, true);
        }
        let family = metric.rsplit_once('_').map_or(metric, |(f, _)| f);
        if let Some((_, t)) = self.overrides.iter().find(|(p, _)| p == family) {
            return (*t, true);
        }
        (default_for(metric), false)
    }

    /// The metrics and families the user gave a tolerance for (exact metrics are compared too).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.overrides.iter().map(|(p, _)| p.as_str())
    }

    /// `METRIC=VALUE`, as given to `--tolerance`.
    pub fn add_flag(&mut self, flag: &str) -> Result<(), String> {
        let (metric, value) = flag
            .split_once('=')
            .ok_or_else(|| format!("{flag:?}: write METRIC=VALUE, e.g. latency_p99=15%"))?;
        if metric.trim().is_empty() {
            return Err(format!("{flag:?}: the metric name is empty"));
        }
        let tolerance = Tolerance::parse(value).map_err(|e| format!("{flag:?}: {e}"))?;
        self.add(metric, tolerance);
        Ok(())
    }

    /// A file of `METRIC=VALUE` lines; `#` starts a comment.
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            self.add_flag(line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_parse_relative_and_absolute() {
        assert_eq!(Tolerance::parse("10%").unwrap(), Tolerance::Relative(0.1));
        assert_eq!(Tolerance::parse("0.1").unwrap(), Tolerance::Absolute(0.1));
        assert_eq!(Tolerance::parse("0.2pt").unwrap(), Tolerance::Absolute(0.2));
        assert_eq!(Tolerance::parse("5ms").unwrap(), Tolerance::Absolute(5.0));
        assert!(Tolerance::parse("-3%").is_err());
        assert!(Tolerance::parse("lots").is_err());
    }

    #[test]
    fn the_most_specific_override_wins() {
        let mut t = Tolerances::default();
        assert_eq!(
            t.for_metric("latency_p99"),
            (Tolerance::Relative(0.1), false)
        );
        assert_eq!(t.for_metric("success_rate").0, Tolerance::Absolute(0.1));
        assert_eq!(t.for_metric("throughput").0, Tolerance::Relative(0.05));
        t.add_flag("latency=20%").unwrap();
        t.add_flag("latency_p99=5ms").unwrap();
        assert_eq!(
            t.for_metric("latency_p50"),
            (Tolerance::Relative(0.2), true)
        );
        assert_eq!(
            t.for_metric("latency_p99"),
            (Tolerance::Absolute(5.0), true)
        );
        assert!(!t.for_metric("ttft_p99").1);
        assert!(t.add_flag("latency_p99").is_err());
        assert!(t.add_flag("=5%").is_err());
    }

    #[test]
    fn a_tolerance_file_names_its_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tolerances");
        std::fs::write(
            &path,
            "# release gate\nlatency_p99 = 15%\n\nthroughput=fast\n",
        )
        .unwrap();
        let e = Tolerances::default().add_file(&path).unwrap_err();
        assert!(e.contains("tolerances:4"), "{e}");
    }
}

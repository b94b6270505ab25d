//! Budgets: bounds on summary metrics, keyed by the same names as summary.csv, judged at the end.
//!
//! Latency-like metrics and failure counts are upper bounds; success rate and throughput are
//! lower bounds. One name means one thing everywhere: scenario, summary.csv, and this verdict.

use std::fmt;

use crate::scenario::human::{parse_duration, parse_percent};
use crate::stats::ErrorClass;

/// Which side of the limit passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// The metric must not exceed the limit.
    AtMost,
    /// The metric must reach the limit.
    AtLeast,
}

/// How a metric's limit is written and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Written as a duration (`300ms`), held in milliseconds.
    Millis,
    /// Written as `99.9%`.
    Percent,
    /// A plain count.
    Count,
    /// Per second, written `250` or `250/s`.
    PerSecond,
    /// Written as a duration (`5s`), held in seconds (the resilience figures).
    Seconds,
}

impl Unit {
    pub fn label(self) -> &'static str {
        match self {
            Unit::Millis => "ms",
            Unit::Percent => "%",
            Unit::Count => "count",
            Unit::PerSecond => "1/s",
            Unit::Seconds => "s",
        }
    }
}

const PERCENTILE_FAMILIES: [&str; 5] = ["latency", "service_time", "ttft", "itl", "tpot"];
const PERCENTILE_SUFFIXES: [&str; 7] = ["p50", "p90", "p99", "p999", "max", "mean", "min"];

/// The bound and unit of a metric that can carry a budget, or `None` if the name is unknown.
pub fn describe(metric: &str) -> Option<(Bound, Unit)> {
    if let Some((family, suffix)) = metric.split_once('_')
        && PERCENTILE_FAMILIES.contains(&family)
        && PERCENTILE_SUFFIXES.contains(&suffix)
    {
        return Some((Bound::AtMost, Unit::Millis));
    }
    // Before the `failed_<class>` names, which `failed_during_faults` would otherwise shadow.
    match metric {
        "breaker_open_after" | "recovered_after" => return Some((Bound::AtMost, Unit::Seconds)),
        "failed_during_faults" => return Some((Bound::AtMost, Unit::Count)),
        _ => {}
    }
    if let Some(class) = metric.strip_prefix("failed_") {
        return ErrorClass::ALL
            .iter()
            .any(|c| c.name() == class)
            .then_some((Bound::AtMost, Unit::Count));
    }
    Some(match metric {
        "success_rate" | "goodput_rate" | "cache_hit_rate" => (Bound::AtLeast, Unit::Percent),
        "throughput" | "goodput" | "output_tokens_per_s" => (Bound::AtLeast, Unit::PerSecond),
        "requests" | "ok" => (Bound::AtLeast, Unit::Count),
        "failed" | "dropped" | "lost" | "queue_depth_max" | "shed" => (Bound::AtMost, Unit::Count),
        _ => return None,
    })
}

/// Every metric name a budget may use, for error messages.
pub fn known_metrics() -> String {
    let mut names: Vec<String> = PERCENTILE_FAMILIES
        .iter()
        .map(|f| format!("{f}_{{p50,p90,p99,p999,max,mean,min}}"))
        .collect();
    names.extend(
        [
            "success_rate",
            "goodput_rate",
            "throughput",
            "goodput",
            "output_tokens_per_s",
            "requests",
            "ok",
            "failed",
            "dropped",
            "lost",
        ]
        .map(String::from),
    );
    names.push("failed_<class>".into());
    names.extend(["queue_depth_max", "shed", "cache_hit_rate"].map(String::from));
    names.extend(crate::chaos::figures::METRICS.map(String::from));
    names.join(", ")
}

/// One bound from the scenario's `budgets:`.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    pub metric: String,
    pub bound: Bound,
    pub unit: Unit,
    /// In the metric's summary unit (ms for durations, percent for rates).
    pub limit: f64,
}

impl Budget {
    /// Parses `metric: value` as written in a scenario.
    pub fn parse(metric: &str, value: &str) -> Result<Budget, String> {
        let (bound, unit) = describe(metric).ok_or_else(|| {
            format!(
                "unknown metric {metric:?}; budgets can bound: {}",
                known_metrics()
            )
        })?;
        let limit = match unit {
            Unit::Millis => {
                parse_duration(value)
                    .map_err(|e| format!("{e} (a {metric} budget is a duration like 300ms)"))?
                    .as_secs_f64()
                    * 1000.0
            }
            Unit::Percent => parse_percent(value)?,
            Unit::Seconds => parse_duration(value)
                .map_err(|e| format!("{e} (a {metric} budget is a duration like 5s)"))?
                .as_secs_f64(),
            Unit::Count | Unit::PerSecond => {
                let number = value.trim().trim_end_matches("/s").trim();
                number
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| format!("{value:?} is not a non-negative number"))?
            }
        };
        Ok(Budget {
            metric: metric.to_owned(),
            bound,
            unit,
            limit,
        })
    }

    /// Judges a measured value; `None` (not measured) fails, since an unchecked gate must not pass.
    pub fn judge(&self, measured: Option<f64>) -> Verdict {
        let passed = measured.is_some_and(|v| match self.bound {
            Bound::AtMost => v <= self.limit,
            Bound::AtLeast => v >= self.limit,
        });
        Verdict {
            budget: self.clone(),
            measured,
            passed,
        }
    }
}

/// The outcome of one budget.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub budget: Budget,
    pub measured: Option<f64>,
    pub passed: bool,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.budget;
        let op = match b.bound {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        let unit = b.unit.label();
        let measured = match self.measured {
            Some(v) => format!("{v:.3} {unit}"),
            None => "not measured".to_owned(),
        };
        let mark = if self.passed { "PASS" } else { "FAIL" };
        write!(
            f,
            "{mark}  {:<22} {measured:>18}  (budget {op} {} {unit})",
            b.metric, b.limit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_in_their_metric_units() {
        let b = Budget::parse("latency_p99", "300ms").unwrap();
        assert_eq!((b.bound, b.limit), (Bound::AtMost, 300.0));
        let b = Budget::parse("success_rate", "99.9%").unwrap();
        assert_eq!((b.bound, b.limit), (Bound::AtLeast, 99.9));
        assert_eq!(Budget::parse("throughput", "250/s").unwrap().limit, 250.0);
        assert_eq!(
            Budget::parse("failed_timeout", "0").unwrap().bound,
            Bound::AtMost
        );
        assert!(
            Budget::parse("latency_p42", "1s")
                .unwrap_err()
                .contains("unknown metric")
        );
        assert!(Budget::parse("failed_gremlins", "1").is_err());
        assert!(Budget::parse("ttft_p99", "fast").is_err());
        let b = Budget::parse("breaker_open_after", "5s").unwrap();
        assert_eq!(
            (b.bound, b.unit, b.limit),
            (Bound::AtMost, Unit::Seconds, 5.0)
        );
        assert_eq!(
            Budget::parse("failed_during_faults", "10").unwrap().limit,
            10.0
        );
        assert_eq!(Budget::parse("lost", "0").unwrap().bound, Bound::AtMost);
    }

    #[test]
    fn verdicts_respect_the_bound_and_fail_when_unmeasured() {
        let p99 = Budget::parse("latency_p99", "300ms").unwrap();
        assert!(p99.judge(Some(299.0)).passed);
        assert!(!p99.judge(Some(301.0)).passed);
        assert!(!p99.judge(None).passed);
        let rate = Budget::parse("success_rate", "99%").unwrap();
        assert!(rate.judge(Some(99.0)).passed);
        assert!(!rate.judge(Some(98.9)).passed);
    }
}

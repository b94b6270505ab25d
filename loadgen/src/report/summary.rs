//! The end-of-run summary: one row per metric (`metric,value,unit`), the same names budgets use.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::stats::{ErrorClass, ForwarderFigures, Totals};

/// One summary metric; `value` is `None` when nothing was measured (e.g. no successful request).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub metric: String,
    pub value: Option<f64>,
    pub unit: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub rows: Vec<Row>,
}

/// Percentiles reported for each latency-like histogram, as (suffix, quantile).
const QUANTILES: [(&str, f64); 4] = [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999)];

impl Summary {
    /// Builds the summary of a run that sent load for `load_time`.
    pub fn new(
        totals: &Totals,
        load_time: Duration,
        streaming: bool,
        open_model: bool,
        forwarder: Option<ForwarderFigures>,
    ) -> Summary {
        let all = &totals.all;
        let mut s = Summary::default();
        let requests = all.requests();
        s.push("requests", Some(requests as f64), "count");
        s.push("ok", Some(all.ok as f64), "count");
        s.push("failed", Some(all.failed_total() as f64), "count");
        s.push("dropped", Some(all.dropped as f64), "count");
        // Scheduled minus counted outcomes: anything but 0 is a loadgen bug, and says so.
        s.push(
            "lost",
            Some(all.scheduled.saturating_sub(requests) as f64),
            "count",
        );
        for class in ErrorClass::ALL {
            s.push(
                &format!("failed_{}", class.name()),
                Some(all.failed[class.index()] as f64),
                "count",
            );
        }
        let share = |n: u64| (requests > 0).then(|| n as f64 * 100.0 / requests as f64);
        s.push("success_rate", share(all.ok), "%");
        let seconds = load_time.as_secs_f64();
        let per_second = |n: u64| (seconds > 0.0).then(|| n as f64 / seconds);
        s.push("throughput", per_second(requests), "req/s");
        s.push("goodput", per_second(all.good), "req/s");
        s.push("goodput_rate", share(all.good), "%");
        s.push_latency("latency", &all.latency);
        if open_model {
            s.push_latency("service_time", &all.service_time);
        }
        if streaming {
            s.push_latency("ttft", &all.ttft);
            s.push_latency("itl", &all.inter_token);
            s.push_latency("tpot", &all.tpot);
            s.push("output_tokens", Some(all.output_tokens as f64), "count");
            s.push(
                "output_tokens_per_s",
                per_second(all.output_tokens),
                "tokens/s",
            );
        }
        s.push("duration", Some(seconds), "s");
        s.push("users_max", Some(f64::from(totals.peak_users)), "count");
        if let Some(f) = forwarder {
            s.push("queue_depth_max", Some(f.queue_depth_max), "count");
            s.push("shed", Some(f.shed_total), "count");
            if let Some(rate) = f.cache_hit_rate() {
                s.push("cache_hit_rate", Some(rate), "%");
            }
        }
        s
    }

    /// Adds a row computed outside the recorder's totals (e.g. the chaos figures).
    pub fn push(&mut self, metric: &str, value: Option<f64>, unit: &'static str) {
        self.rows.push(Row {
            metric: metric.to_owned(),
            value,
            unit,
        });
    }

    fn push_latency(&mut self, family: &str, h: &Histogram<u64>) {
        let ms = |us: u64| us as f64 / 1000.0;
        let measured = !h.is_empty();
        for (suffix, q) in QUANTILES {
            self.push(
                &format!("{family}_{suffix}"),
                measured.then(|| ms(h.value_at_quantile(q))),
                "ms",
            );
        }
        self.push(
            &format!("{family}_max"),
            measured.then(|| ms(h.max())),
            "ms",
        );
        self.push(
            &format!("{family}_mean"),
            measured.then(|| h.mean() / 1000.0),
            "ms",
        );
        self.push(
            &format!("{family}_min"),
            measured.then(|| ms(h.min())),
            "ms",
        );
    }

    pub fn get(&self, metric: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.metric == metric)
            .and_then(|r| r.value)
    }

    /// Writes `summary.csv`.
    pub fn write_csv(&self, path: &Path) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(out, "metric,value,unit")?;
        // The format version rides as a row, so a lone summary.csv still says how to read it.
        writeln!(
            out,
            "{},{},version",
            super::format::FORMAT_ROW,
            super::format::REPORT_FORMAT
        )?;
        for row in &self.rows {
            match row.value {
                Some(v) => writeln!(out, "{},{},{}", row.metric, format_value(v), row.unit)?,
                None => writeln!(out, "{},,{}", row.metric, row.unit)?,
            }
        }
        out.flush()
    }
}

/// Whole numbers without decimals, others with three.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

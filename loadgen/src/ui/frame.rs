//! What the reporter hands the display each second: the last second's figures and the run's
//! totals so far, computed once from the stats so the display thread never touches histograms.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::stats::{ErrorClass, ForwarderFigures, Interval, Totals};

/// p50, p90, p99 and max of a histogram, in ms; `None` where nothing was recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| Some(us as f64 / 1000.0);
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// The quantiles of the live percentile spectrum.
pub const SPECTRUM_QUANTILES: [f64; 9] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 0.99999, 1.0];

/// One second of the run, as shown.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    pub elapsed: Duration,
    /// Users (closed model) or wanted arrivals per second (open model).
    pub level: f64,
    /// Requests that ended in the last second, per second.
    pub throughput: f64,
    /// Failed requests in the last second, per second.
    pub failed_per_s: f64,
    /// The last second's latency, TTFT and inter-token latency.
    pub latency: Percentiles,
    pub ttft: Percentiles,
    pub itl: Percentiles,
    /// The whole run so far.
    pub requests: u64,
    pub ok: u64,
    pub dropped: u64,
    /// (class name, count) for every class, in report order.
    pub failed_by_class: Vec<(&'static str, u64)>,
    pub total_latency: Percentiles,
    pub total_ttft: Percentiles,
    pub total_itl: Percentiles,
    /// (quantile, ms) of the whole run's latency.
    pub spectrum: Vec<(f64, f64)>,
    pub output_tokens_per_s: f64,
    pub forwarder: Option<ForwarderFigures>,
    /// Stages are over (or a stop was asked): in-flight requests are finishing.
    pub draining: bool,
    /// Names of the faults active during this second.
    pub active_faults: Vec<String>,
}

/// The reporter's view of one tick.
pub struct FrameInput<'a> {
    pub elapsed: Duration,
    pub level: f64,
    pub interval: &'a Interval,
    /// How long the interval lasted.
    pub seconds: f64,
    pub totals: &'a Totals,
    pub forwarder: Option<ForwarderFigures>,
    pub draining: bool,
    /// The active faults, `;`-separated as in timeseries.csv.
    pub active_faults: &'a str,
}

impl Frame {
    pub fn new(input: &FrameInput) -> Frame {
        let i = input.interval;
        let all = &input.totals.all;
        let per_second = |n: u64| {
            if input.seconds > 0.0 {
                n as f64 / input.seconds
            } else {
                0.0
            }
        };
        let spectrum = if all.latency.is_empty() {
            Vec::new()
        } else {
            SPECTRUM_QUANTILES
                .iter()
                .map(|&q| (q, all.latency.value_at_quantile(q) as f64 / 1000.0))
                .collect()
        };
        Frame {
            elapsed: input.elapsed,
            level: input.level,
            throughput: per_second(i.requests()),
            failed_per_s: per_second(i.failed_total()),
            latency: Percentiles::of(&i.latency),
            ttft: Percentiles::of(&i.ttft),
            itl: Percentiles::of(&i.inter_token),
            requests: all.requests(),
            ok: all.ok,
            dropped: all.dropped,
            failed_by_class: ErrorClass::ALL
                .iter()
                .map(|c| (c.name(), all.failed[c.index()]))
                .collect(),
            total_latency: Percentiles::of(&all.latency),
            total_ttft: Percentiles::of(&all.ttft),
            total_itl: Percentiles::of(&all.inter_token),
            spectrum,
            output_tokens_per_s: per_second(i.output_tokens),
            forwarder: input.forwarder,
            draining: input.draining,
            active_faults: input
                .active_faults
                .split(';')
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    pub fn failed(&self) -> u64 {
        self.failed_by_class.iter().map(|(_, n)| n).sum()
    }
}

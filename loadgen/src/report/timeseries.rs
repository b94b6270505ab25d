//! `timeseries.csv`: one row per second of the run, written as the run goes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use hdrhistogram::Histogram;

use crate::stats::{ErrorClass, ForwarderFigures, Interval};

pub struct TimeseriesWriter {
    out: BufWriter<File>,
}

/// One second as seen by loadgen (and the forwarder, when scraped).
pub struct Tick<'a> {
    pub elapsed_s: f64,
    pub users: u32,
    /// Arrivals per second wanted (open model).
    pub target_rate: Option<f64>,
    pub interval: &'a Interval,
    pub seconds: f64,
    pub forwarder: Option<ForwarderFigures>,
    /// Scheduled faults active in this second (`;`-separated names), and the ones that
    /// started (`+name`) or ended (`-name`) in it.
    pub active_faults: &'a str,
    pub fault_events: &'a str,
}

impl TimeseriesWriter {
    pub fn create(path: &Path) -> std::io::Result<TimeseriesWriter> {
        let mut out = BufWriter::new(File::create(path)?);
        let mut header = String::from("elapsed_s,users,target_rate,requests,ok,failed,dropped");
        for class in ErrorClass::ALL {
            header.push_str(",failed_");
            header.push_str(class.name());
        }
        header.push_str(
            ",throughput,latency_p50_ms,latency_p90_ms,latency_p99_ms,latency_max_ms,\
             ttft_p50_ms,ttft_p99_ms,itl_p50_ms,itl_p99_ms,output_tokens_per_s,\
             fwd_inflight,fwd_queue_depth,fwd_queue_depth_max,fwd_shed_total,\
             active_faults,fault_events",
        );
        writeln!(out, "{header}")?;
        Ok(TimeseriesWriter { out })
    }

    pub fn write(&mut self, tick: &Tick) -> std::io::Result<()> {
        let i = tick.interval;
        let rate = tick
            .target_rate
            .map_or_else(String::new, |r| format!("{r:.1}"));
        let mut row = format!(
            "{:.1},{},{rate},{},{},{},{}",
            tick.elapsed_s,
            tick.users,
            i.requests(),
            i.ok,
            i.failed_total(),
            i.dropped
        );
        for class in ErrorClass::ALL {
            row.push_str(&format!(",{}", i.failed[class.index()]));
        }
        let rate = |n: u64| {
            if tick.seconds > 0.0 {
                n as f64 / tick.seconds
            } else {
                0.0
            }
        };
        row.push_str(&format!(",{:.1}", rate(i.requests())));
        for (h, q) in [(&i.latency, 0.5), (&i.latency, 0.9), (&i.latency, 0.99)] {
            row.push_str(&quantile_ms(h, q));
        }
        row.push_str(&max_ms(&i.latency));
        for (h, q) in [
            (&i.ttft, 0.5),
            (&i.ttft, 0.99),
            (&i.inter_token, 0.5),
            (&i.inter_token, 0.99),
        ] {
            row.push_str(&quantile_ms(h, q));
        }
        row.push_str(&format!(",{:.1}", rate(i.output_tokens)));
        match tick.forwarder {
            Some(f) => row.push_str(&format!(
                ",{},{},{},{}",
                f.inflight, f.queue_depth, f.queue_depth_max, f.shed_total
            )),
            None => row.push_str(",,,,"),
        }
        // Names are made of [A-Za-z0-9_.+;-], so they need no CSV quoting.
        row.push_str(&format!(",{},{}", tick.active_faults, tick.fault_events));
        writeln!(self.out, "{row}")?;
        // Flushed every second so a crashed or killed run still leaves its timeline.
        self.out.flush()
    }
}

fn quantile_ms(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        ",".to_owned()
    } else {
        format!(",{:.3}", h.value_at_quantile(q) as f64 / 1000.0)
    }
}

fn max_ms(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        ",".to_owned()
    } else {
        format!(",{:.3}", h.max() as f64 / 1000.0)
    }
}

//! `latency.hlog`: an HdrHistogram V2 interval log, one compressed histogram per second and
//! metric (tags `latency`, `ttft` for streams, `service_time` in the open model), values in
//! microseconds, readable by HdrHistogram's HistogramLogProcessor and the `hdrhistogram` Python
//! package.
//!
//! The crate's log writer borrows its file and serializer for as long as the log is open, so a
//! small thread owns all three and the reporter hands it each second's histograms over a channel:
//! nothing is kept in memory between seconds and every line reaches the file at once.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

struct Entry {
    tag: &'static str,
    start: Duration,
    length: Duration,
    histogram: Histogram<u64>,
}

pub struct HlogWriter {
    tx: Option<mpsc::Sender<Entry>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl HlogWriter {
    /// Creates the log; `start` is the wall-clock time the run's elapsed seconds count from.
    pub fn create(path: &Path, start: SystemTime) -> io::Result<HlogWriter> {
        // Opened here so an unwritable folder is reported before the run starts.
        let mut file = File::create(path)?;
        let (tx, rx) = mpsc::channel::<Entry>();
        let thread = std::thread::Builder::new()
            .name("hlog-writer".into())
            .spawn(move || -> io::Result<()> {
                let mut serializer = V2DeflateSerializer::new();
                let mut log = IntervalLogWriterBuilder::new()
                    .add_comment("[Histogram log format version 1.3]")
                    .add_comment("[loadgen interval log: values in microseconds; tags latency, ttft, service_time]")
                    .with_start_time(start)
                    .with_base_time(start)
                    // Interval_Max in milliseconds, for people reading the log.
                    .with_max_value_divisor(1000.0)
                    .begin_log_with(&mut file, &mut serializer)?;
                for entry in rx {
                    log.write_histogram(
                        &entry.histogram,
                        entry.start,
                        entry.length,
                        Tag::new(entry.tag),
                    )
                    .map_err(|e| io::Error::other(format!("{e:?}")))?;
                }
                Ok(())
            })?;
        Ok(HlogWriter {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues one interval of one metric; `start` counts from the run's start.
    pub fn write(&self, tag: &'static str, start: Duration, length: Duration, h: &Histogram<u64>) {
        if let Some(tx) = &self.tx {
            // A send fails only when the thread stopped on an error, which `finish` reports.
            let _ = tx.send(Entry {
                tag,
                start,
                length,
                histogram: h.clone(),
            });
        }
    }

    /// Closes the log and reports the first write error, if any.
    pub fn finish(mut self) -> io::Result<()> {
        self.tx.take();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the interval log writer panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for HlogWriter {
    fn drop(&mut self) {
        // Closing the channel ends the thread; nobody waits for it on an error path.
        self.tx.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn intervals_are_written_with_tags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.hlog");
        let writer = HlogWriter::create(&path, SystemTime::UNIX_EPOCH).unwrap();
        let mut h = new_histogram();
        h.record(1500).unwrap();
        h.record(2000).unwrap();
        let second = Duration::from_secs(1);
        writer.write("latency", Duration::ZERO, second, &h);
        writer.write("ttft", Duration::ZERO, second, &h);
        writer.write("latency", second, second, &new_histogram());
        writer.finish().unwrap();

        // The contents are checked by an independent reader (Python) in the e2e tests.
        let bytes = std::fs::read(&path).unwrap();
        let intervals: Vec<(Option<String>, f64, f64)> = IntervalLogIterator::new(&bytes)
            .filter_map(|entry| match entry.unwrap() {
                LogEntry::Interval(i) => Some((
                    i.tag().map(|t| t.as_str().to_owned()),
                    i.start_timestamp().as_secs_f64(),
                    i.max(),
                )),
                _ => None,
            })
            .collect();
        let tag = |t: &str| Some(t.to_owned());
        assert_eq!(
            intervals,
            [
                (tag("latency"), 0.0, 2.0),
                (tag("ttft"), 0.0, 2.0),
                (tag("latency"), 1.0, 0.0)
            ]
        );
    }
}

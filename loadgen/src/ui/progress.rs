//! The simple display: an indicatif bar on a terminal, plain periodic lines otherwise (CI logs).
//! Used with `--no-tui` or when the full-screen view cannot run.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// What the display shows each second.
pub struct Snapshot {
    pub elapsed: Duration,
    pub users: u32,
    /// The open model's wanted arrivals per second (shown instead of users).
    pub rate: Option<f64>,
    pub throughput: f64,
    pub ok: u64,
    pub failed: u64,
    /// Of the last second's successful requests, in ms.
    pub latency_p99_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub queue_depth: Option<f64>,
}

impl Snapshot {
    pub fn line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}ms"));
        let level = match self.rate {
            Some(rate) => format!("rate {rate:>6.0}/s"),
            None => format!("users {:>6}", self.users),
        };
        let mut line = format!(
            "{level}  {:>8.1} req/s  ok {:>9}  failed {:>7}  p99 {:>7}",
            self.throughput,
            self.ok,
            self.failed,
            ms(self.latency_p99_ms)
        );
        if self.ttft_p99_ms.is_some() {
            line.push_str(&format!("  ttft p99 {:>6}", ms(self.ttft_p99_ms)));
        }
        if let Some(q) = self.queue_depth {
            line.push_str(&format!("  queue {q:.0}"));
        }
        line
    }
}

pub enum Progress {
    Bar(ProgressBar),
    Plain { every: Duration, next: Duration },
    Quiet,
}

impl Progress {
    /// A bar when stdout is a terminal, plain lines every `every` otherwise.
    pub fn new(total: Duration, every: Duration, quiet: bool) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if std::io::stdout().is_terminal() {
            let bar = ProgressBar::new(total.as_secs().max(1));
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            Progress::Bar(bar)
        } else {
            Progress::Plain { every, next: every }
        }
    }

    pub fn update(&mut self, snapshot: &Snapshot) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(snapshot.elapsed.as_secs());
                bar.set_message(snapshot.line());
            }
            Progress::Plain { every, next } => {
                if snapshot.elapsed >= *next {
                    println!(
                        "[{:>6.1}s] {}",
                        snapshot.elapsed.as_secs_f64(),
                        snapshot.line()
                    );
                    while *next <= snapshot.elapsed {
                        *next += *every;
                    }
                }
            }
            Progress::Quiet => {}
        }
    }

    /// Prints a line above the bar, or plainly.
    pub fn note(&self, message: &str) {
        match self {
            Progress::Bar(bar) => bar.println(message),
            Progress::Plain { .. } => println!("{message}"),
            Progress::Quiet => {}
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

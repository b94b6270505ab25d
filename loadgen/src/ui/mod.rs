//! Showing a run as it goes. On a terminal: the live full-screen view ([`tui`]); with
//! `--no-tui`, or when stdout is not a terminal, or if the view cannot start: an indicatif bar
//! on a terminal and plain periodic lines otherwise ([`progress`]). The reporter feeds one
//! [`Frame`] per second either way.

pub mod frame;
pub mod progress;
pub mod tui;

use std::io::IsTerminal;
use std::time::Duration;

pub use frame::{Frame, FrameInput, Percentiles};
pub use progress::{Progress, Snapshot};
pub use tui::{FaultView, OnStop, RunView, StageView};

/// What the display needs to know before the run starts.
pub struct DisplayOptions {
    pub run: RunView,
    /// How often plain progress lines are printed (no terminal).
    pub progress_every: Duration,
    pub no_tui: bool,
    /// Called when the user presses q or Ctrl-C in the full-screen view.
    pub on_stop: OnStop,
}

pub enum Display {
    Tui(tui::Tui),
    Lines {
        progress: Progress,
        open: bool,
        streaming: bool,
    },
}

impl Display {
    pub fn new(options: DisplayOptions) -> Display {
        let DisplayOptions {
            run,
            progress_every,
            no_tui,
            on_stop,
        } = options;
        let (total, open, streaming) = (run.total, run.open, run.streaming);
        if !no_tui && std::io::stdout().is_terminal() {
            match tui::Tui::start(run, on_stop) {
                Ok(tui) => return Display::Tui(tui),
                Err(e) => eprintln!(
                    "loadgen: the full-screen view cannot start ({e}); showing progress lines"
                ),
            }
        }
        Display::Lines {
            progress: Progress::new(total, progress_every, false),
            open,
            streaming,
        }
    }

    /// Whether the full-screen view owns the terminal (so nothing else should print).
    pub fn is_full_screen(&self) -> bool {
        matches!(self, Display::Tui(_))
    }

    pub fn update(&mut self, frame: Frame) {
        match self {
            Display::Tui(tui) => tui.update(frame),
            Display::Lines {
                progress,
                open,
                streaming,
            } => progress.update(&Snapshot {
                elapsed: frame.elapsed,
                users: if *open { 0 } else { frame.level.round() as u32 },
                rate: open.then_some(frame.level),
                throughput: frame.throughput,
                ok: frame.ok,
                failed: frame.failed(),
                latency_p99_ms: frame.latency.p99,
                ttft_p99_ms: if *streaming { frame.ttft.p99 } else { None },
                queue_depth: frame.forwarder.map(|f| f.queue_depth),
            }),
        }
    }

    pub fn note(&self, message: &str) {
        match self {
            Display::Tui(tui) => tui.note(message),
            Display::Lines { progress, .. } => progress.note(message),
        }
    }

    /// Ends the display; the full-screen view gives the terminal back.
    pub fn finish(self) {
        match self {
            Display::Tui(tui) => tui.finish(),
            Display::Lines { progress, .. } => progress.finish(),
        }
    }
}

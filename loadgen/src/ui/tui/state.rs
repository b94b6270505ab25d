//! What the full-screen view remembers: the run's fixed facts and the frames received so far
//! (a bounded window, so a long run does not grow memory).

use std::collections::VecDeque;
use std::time::Duration;

use crate::ui::frame::Frame;

/// Seconds of history kept for the charts (wider than any terminal shows).
const HISTORY: usize = 900;

/// One stage, as the header shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageView {
    /// When the stage ends, from the run's start.
    pub end: Duration,
    /// Users or rate at the end of the stage.
    pub target: f64,
}

/// Facts that do not change during the run.
#[derive(Clone, Debug, Default)]
pub struct RunView {
    pub title: String,
    pub total: Duration,
    pub stages: Vec<StageView>,
    pub open: bool,
    pub streaming: bool,
    pub with_forwarder: bool,
    /// The scenario's fault schedule, in time order.
    pub faults: Vec<FaultView>,
}

/// One scheduled fault, as the timeline panel shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultView {
    pub name: String,
    pub at: Duration,
    /// `None`: until the end of the run.
    pub end: Option<Duration>,
}

#[derive(Clone, Debug, Default)]
pub struct State {
    pub run: RunView,
    pub frames: VecDeque<Frame>,
    /// How often the user pressed q / Ctrl-C.
    pub stop_presses: u32,
    /// A message from the run (e.g. "stages done").
    pub note: Option<String>,
}

impl State {
    pub fn new(run: RunView) -> State {
        State {
            run,
            ..State::default()
        }
    }

    pub fn push(&mut self, frame: Frame) {
        if self.frames.len() == HISTORY {
            self.frames.pop_front();
        }
        self.frames.push_back(frame);
    }

    pub fn last(&self) -> Option<&Frame> {
        self.frames.back()
    }

    /// The stage running at `clock` (index, stage), or `None` once all are done.
    pub fn stage_at(&self, clock: Duration) -> Option<(usize, StageView)> {
        self.run
            .stages
            .iter()
            .copied()
            .enumerate()
            .find(|(_, s)| clock < s.end)
    }
}

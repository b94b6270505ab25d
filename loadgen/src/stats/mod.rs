//! Recording outcomes: every request ends in exactly one [`Outcome`], recorded into the current
//! one-second [`Interval`]; the reporter takes each interval and folds it into the run totals.

mod during_faults;
mod forwarder;
mod interval;
mod outcome;

pub use during_faults::{DuringFaults, FaultTally, FaultWindows, MAX_FAULTS};
pub use forwarder::ForwarderFigures;
pub use interval::{Interval, Recorder, Totals, new_histogram};
pub use outcome::{ErrorClass, Outcome};

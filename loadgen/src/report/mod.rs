//! Run outputs: the run folder, `summary.csv`, `timeseries.csv`, and the budget verdict.

pub mod budget;
pub mod run_dir;
pub mod summary;
pub mod timeseries;

//! `loadgen compare BASE NEW`: key metrics of two runs side by side, with absolute and relative
//! deltas, each marked better, same or worse against a tolerance; the exit code says whether the
//! new run regressed, so a release pipeline can gate on it.
//!
//! Exit codes: 0 nothing worse beyond tolerance; 1 a regression; 2 bad input (a report that is
//! missing or garbled, a bad tolerance) with a message naming the file.

mod judge;
mod table;
mod tolerance;

use std::path::PathBuf;

pub use judge::{Line, Mark, compare};
pub use table::{Format, render};
pub use tolerance::{Tolerance, Tolerances};

use crate::report::folder;

/// No metric worse beyond its tolerance.
pub const OK: i32 = 0;
/// At least one metric regressed.
pub const REGRESSION: i32 = 1;
/// A report or tolerance could not be read.
pub const BAD_INPUT: i32 = 2;

#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The baseline: a run folder or its summary.csv.
    pub base: PathBuf,
    /// The run to judge: a run folder or its summary.csv.
    pub new: PathBuf,
    /// A tolerance for a metric or family, e.g. latency_p99=15%, latency=20%, success_rate=0.2,
    /// ttft_p50=5ms (repeatable; overrides the defaults and --tolerances).
    #[arg(long = "tolerance", value_name = "METRIC=VALUE")]
    pub tolerance: Vec<String>,
    /// A file of METRIC=VALUE lines (# comments).
    #[arg(long, value_name = "FILE")]
    pub tolerances: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Runs the comparison; returns the text to print or the error message, and the exit code.
pub fn run(args: &CompareArgs) -> Result<(String, i32), String> {
    let mut tolerances = Tolerances::default();
    if let Some(file) = &args.tolerances {
        tolerances.add_file(file)?;
    }
    for flag in &args.tolerance {
        tolerances
            .add_flag(flag)
            .map_err(|e| format!("--tolerance {e}"))?;
    }
    let base = folder::read_summary(&args.base).map_err(|e| e.to_string())?;
    let new = folder::read_summary(&args.new).map_err(|e| e.to_string())?;
    let lines = compare(&base, &new, &tolerances);
    let label = |s: &folder::SummaryFile| {
        format!("{} (report format v{})", s.path.display(), s.format_version)
    };
    let mut text = render(&lines, &label(&base), &label(&new), args.format);
    if let (Some(b), Some(n)) = (scenario_of(&args.base), scenario_of(&args.new))
        && b != n
    {
        text.push_str(&format!(
            "note: different scenarios ({b} vs {n}): the comparison may not mean much\n"
        ));
    }
    let code = if lines.iter().any(|l| l.mark == Mark::Worse) {
        REGRESSION
    } else {
        OK
    };
    Ok((text, code))
}

/// The scenario name from a run folder's run.json, when there is one to read.
fn scenario_of(path: &std::path::Path) -> Option<String> {
    let dir = if path.is_dir() { path } else { path.parent()? };
    let meta = folder::read_meta(dir).ok()??;
    Some(meta.scenario_name().to_owned())
}

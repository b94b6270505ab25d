//! Run outputs: the run folder and every file in it — `summary.csv`, `timeseries.csv`, the
//! percentile spectra, the HdrHistogram interval log, `run.json`, `budgets.xml` (JUnit),
//! `report.html` — the budget verdict, and reading a folder back for `compare` and `report`.

pub mod artifacts;
pub mod budget;
pub mod console;
pub mod folder;
pub mod format;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod rerender;
pub mod run_dir;
pub mod run_meta;
pub mod spectrum;
pub mod summary;
pub mod svg;
pub mod timeseries;

//! The report folder's format version and file names, shared by the writers and the reader.
//!
//! The version is written twice so that either file alone identifies it: as the summary row
//! `report_format,<n>,version` (summary.csv's header stays `metric,value,unit`) and as
//! `format_version` in run.json. Folders written before versioning carry neither and are read as
//! version 1, whose layout they share.

/// Bumped whenever a file's layout or a metric's meaning changes; readers keep accepting every
/// older version (see [`crate::report::folder`]).
pub const REPORT_FORMAT: u32 = 1;

/// The summary row carrying [`REPORT_FORMAT`].
pub const FORMAT_ROW: &str = "report_format";

pub const SUMMARY: &str = "summary.csv";
pub const TIMESERIES: &str = "timeseries.csv";
pub const RUN_JSON: &str = "run.json";
pub const BUDGETS_XML: &str = "budgets.xml";
pub const REPORT_HTML: &str = "report.html";
pub const HLOG: &str = "latency.hlog";

/// The percentile spectrum file of one metric family: `percentiles.csv` for latency,
/// `percentiles-<family>.csv` for the others (ttft, itl, service_time).
pub fn spectrum_file(family: &str) -> String {
    if family == "latency" {
        "percentiles.csv".to_owned()
    } else {
        format!("percentiles-{family}.csv")
    }
}

//! `loadgen report DIR`: reads a run folder back, prints its summary and budget verdicts, and
//! renders its report.html again (after an upgrade, or for a folder copied from CI).

use std::path::Path;

use super::folder::{ReadError, RunReport};
use super::format::REPORT_HTML;
use super::{console, html};

/// Re-renders the page; returns the summary text to print.
pub fn run(dir: &Path) -> Result<String, ReadError> {
    let report = RunReport::load(dir)?;
    let path = dir.join(REPORT_HTML);
    std::fs::write(&path, html::render(&report)).map_err(|e| ReadError {
        path: path.clone(),
        reason: format!("cannot write it: {e}"),
    })?;
    let mut text = console::render(&report.summary, report.meta.as_ref());
    text.push_str(&format!("report: {}\n", path.display()));
    Ok(text)
}

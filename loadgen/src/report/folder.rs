//! Reading a report folder back (for `loadgen compare` and `loadgen report`): summary.csv,
//! timeseries.csv, the percentile spectra and run.json, by report format version.
//!
//! Every error names the file and says what is wrong with it. Each format version has its own
//! reading step that upgrades what it reads to the current shape, so reports written by older
//! loadgen builds stay comparable; a version newer than this build knows is refused plainly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::format::{self, FORMAT_ROW, REPORT_FORMAT};
use super::run_meta::RunMeta;
use super::spectrum::{self, Point};

/// A file that could not be read, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    pub reason: String,
}

impl ReadError {
    fn new(path: &Path, reason: impl Into<String>) -> ReadError {
        ReadError {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// One summary metric as read; `value` is `None` when it was not measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: String,
    pub value: Option<f64>,
    pub unit: String,
}

/// A summary.csv, upgraded to the current format.
#[derive(Clone, Debug)]
pub struct SummaryFile {
    pub path: PathBuf,
    /// The format the file was written in.
    pub format_version: u32,
    pub metrics: Vec<Metric>,
}

impl SummaryFile {
    pub fn get(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    pub fn value(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|m| m.value)
    }
}

/// Where a report lives: a run folder, or a lone summary.csv.
pub fn summary_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(format::SUMMARY)
    } else {
        path.to_owned()
    }
}

/// Reads a run folder's summary.csv (or the summary file given).
pub fn read_summary(path: &Path) -> Result<SummaryFile, ReadError> {
    let path = summary_path(path);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ReadError::new(
            &path,
            match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "no such file (give a run folder or its summary.csv)".to_owned()
                }
                _ => format!("cannot read it: {e}"),
            },
        )
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| ReadError::new(&path, format!("not CSV: {e}")))?
        .clone();
    if header.iter().collect::<Vec<_>>() != ["metric", "value", "unit"] {
        return Err(ReadError::new(
            &path,
            format!(
                "not a loadgen summary: the header is {:?}, expected \"metric,value,unit\"",
                header.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }
    let mut metrics = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record
            .map_err(|e| ReadError::new(&path, format!("line {line}: malformed row: {e}")))?;
        let value = match record[1].trim() {
            "" => None,
            text => Some(
                text.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        ReadError::new(
                            &path,
                            format!("line {line}: {:?} is not a number", &record[1]),
                        )
                    })?,
            ),
        };
        metrics.push(Metric {
            name: record[0].trim().to_owned(),
            value,
            unit: record[2].trim().to_owned(),
        });
    }
    let format_version = match metrics.iter().find(|m| m.name == FORMAT_ROW) {
        // Summaries from before versioning share version 1's layout.
        None => 1,
        Some(Metric { value: Some(v), .. }) if v.fract() == 0.0 && *v >= 1.0 => *v as u32,
        Some(m) => {
            return Err(ReadError::new(
                &path,
                format!(
                    "the {FORMAT_ROW} row holds {:?}, not a version number",
                    m.value
                ),
            ));
        }
    };
    metrics.retain(|m| m.name != FORMAT_ROW);
    if !metrics.iter().any(|m| m.name == "requests") {
        return Err(ReadError::new(
            &path,
            "not a loadgen summary: it has no `requests` row",
        ));
    }
    let metrics = upgrade_summary(format_version, metrics).map_err(|r| ReadError::new(&path, r))?;
    Ok(SummaryFile {
        path,
        format_version,
        metrics,
    })
}

/// Brings an older summary's metrics to the current names and units.
fn upgrade_summary(version: u32, metrics: Vec<Metric>) -> Result<Vec<Metric>, String> {
    match version {
        // The current layout. A future v2 that renames a metric adds its step here, mapping v1
        // names to v2 ones, and v1 files keep comparing against v2 files.
        1 => Ok(metrics),
        newer => Err(format!(
            "written in report format v{newer}, newer than this loadgen reads (up to \
             v{REPORT_FORMAT}); use a newer loadgen"
        )),
    }
}

/// run.json, if the folder has one (summaries from before it existed do not).
pub fn read_meta(dir: &Path) -> Result<Option<RunMeta>, ReadError> {
    let path = dir.join(format::RUN_JSON);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::new(&path, format!("cannot read it: {e}"))),
    };
    let meta: RunMeta = serde_json::from_str(&text)
        .map_err(|e| ReadError::new(&path, format!("not valid run metadata: {e}")))?;
    if meta.format_version > REPORT_FORMAT {
        return Err(ReadError::new(
            &path,
            format!(
                "written in report format v{}, newer than this loadgen reads (up to v{REPORT_FORMAT})",
                meta.format_version
            ),
        ));
    }
    Ok(Some(meta))
}

/// timeseries.csv: column names and rows of numbers (`None` for empty cells).
#[derive(Clone, Debug, Default)]
pub struct Timeseries {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<f64>>>,
}

impl Timeseries {
    /// One column's values, or `None` if the file has no such column.
    pub fn column(&self, name: &str) -> Option<Vec<Option<f64>>> {
        let index = self.columns.iter().position(|c| c == name)?;
        Some(
            self.rows
                .iter()
                .map(|r| r.get(index).copied().flatten())
                .collect(),
        )
    }
}

pub fn read_timeseries(dir: &Path) -> Result<Timeseries, ReadError> {
    let path = dir.join(format::TIMESERIES);
    let mut reader =
        csv::Reader::from_path(&path).map_err(|e| ReadError::new(&path, e.to_string()))?;
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| ReadError::new(&path, format!("not CSV: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    if columns.first().map(String::as_str) != Some("elapsed_s") {
        return Err(ReadError::new(
            &path,
            "not a loadgen timeseries: the first column is not elapsed_s",
        ));
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record
            .map_err(|e| ReadError::new(&path, format!("line {}: malformed row: {e}", i + 2)))?;
        rows.push(
            record
                .iter()
                .map(|v| v.trim().parse::<f64>().ok())
                .collect(),
        );
    }
    Ok(Timeseries { columns, rows })
}

/// A metric family's percentile spectrum, if the folder has one.
pub fn read_spectrum(dir: &Path, family: &str) -> Result<Option<Vec<Point>>, ReadError> {
    let path = dir.join(format::spectrum_file(family));
    match std::fs::read_to_string(&path) {
        Ok(text) => spectrum::parse(&text)
            .map(Some)
            .map_err(|reason| ReadError::new(&path, reason)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReadError::new(&path, format!("cannot read it: {e}"))),
    }
}

/// Summary metrics as a name -> value map (for tables).
pub fn values(summary: &SummaryFile) -> BTreeMap<&str, Option<f64>> {
    summary
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.value))
        .collect()
}

/// Everything a run folder holds that the HTML page and `loadgen report` show.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub dir: PathBuf,
    pub summary: SummaryFile,
    pub meta: Option<RunMeta>,
    pub timeseries: Timeseries,
    /// (family, points) for each spectrum file present: latency first.
    pub spectra: Vec<(&'static str, Vec<Point>)>,
}

/// Spectrum families a folder may hold, in the order they are shown.
pub const SPECTRUM_FAMILIES: [&str; 4] = ["latency", "service_time", "ttft", "itl"];

impl RunReport {
    pub fn load(dir: &Path) -> Result<RunReport, ReadError> {
        if !dir.is_dir() {
            return Err(ReadError::new(dir, "not a run folder (no such directory)"));
        }
        let summary = read_summary(dir)?;
        let meta = read_meta(dir)?;
        // A folder may hold only its summary (a trimmed baseline): then there are no charts.
        let timeseries = if dir.join(format::TIMESERIES).exists() {
            read_timeseries(dir)?
        } else {
            Timeseries::default()
        };
        let mut spectra = Vec::new();
        for family in SPECTRUM_FAMILIES {
            if let Some(points) = read_spectrum(dir, family)? {
                spectra.push((family, points));
            }
        }
        Ok(RunReport {
            dir: dir.to_owned(),
            summary,
            meta,
            timeseries,
            spectra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("summary.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn summaries_of_every_version_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = write(
            dir.path(),
            "metric,value,unit\nreport_format,1,version\nrequests,10,count\nlatency_p99,,ms\n",
        );
        let s = read_summary(&v1).unwrap();
        assert_eq!((s.format_version, s.value("requests")), (1, Some(10.0)));
        assert_eq!(s.get("latency_p99").unwrap().value, None);
        assert!(
            s.get(FORMAT_ROW).is_none(),
            "the version row is not a metric"
        );
        // Written before versioning: read as v1; a folder works as well as the file.
        write(dir.path(), "metric,value,unit\nrequests,3,count\n");
        assert_eq!(read_summary(dir.path()).unwrap().format_version, 1);
    }

    #[test]
    fn bad_summaries_name_the_file_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_summary(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("nope") && missing.contains("no such file"),
            "{missing}"
        );
        let cases = [
            ("metric;value\n", "header"),
            ("metric,value,unit\nrequests,ten,count\n", "line 2"),
            ("metric,value,unit\nrequests,1\n", "line 2"),
            ("metric,value,unit\nok,1,count\n", "no `requests` row"),
            (
                "metric,value,unit\nreport_format,99,version\nrequests,1,count\n",
                "v99",
            ),
        ];
        for (text, reason) in cases {
            let path = write(dir.path(), text);
            let e = read_summary(&path).unwrap_err().to_string();
            assert!(
                e.contains("summary.csv") && e.contains(reason),
                "{text:?}: {e}"
            );
        }
    }
}

//! `percentiles.csv`: the full HDR percentile spectrum of a run in the wrk2 / HdrHistogram
//! layout — columns `Value,Percentile,TotalCount,1/(1-Percentile)` with values in milliseconds
//! (HdrHistogram's CSV flavour), then the `#[Mean = .., StdDeviation = ..]` and
//! `#[Max = .., Total count = ..]` footer lines as comments, so CSV readers that skip `#` lines
//! and people who know wrk2's output both read it.

use std::io::Write;
use std::path::Path;

use hdrhistogram::Histogram;

/// The header row, as HdrHistogram names the columns.
pub const HEADER: &str = "Value,Percentile,TotalCount,1/(1-Percentile)";

/// Quantile steps per halving of the distance to 100%, as wrk2 and HdrHistogram print them.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Renders the spectrum of a histogram recorded in microseconds.
pub fn render(h: &Histogram<u64>) -> String {
    let ms = |us: f64| us / 1000.0;
    let mut out = String::with_capacity(8 * 1024);
    out.push_str(HEADER);
    out.push('\n');
    if !h.is_empty() {
        let mut total = 0u64;
        for step in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += step.count_since_last_iteration();
            let q = step.quantile_iterated_to();
            let inverse = if q < 1.0 {
                format!("{:.2}", 1.0 / (1.0 - q))
            } else {
                // HdrHistogram's CSV output writes the last row's inverse this way.
                "Infinity".to_owned()
            };
            out.push_str(&format!(
                "{:.3},{q:.12},{total},{inverse}\n",
                ms(step.value_iterated_to() as f64)
            ));
        }
    }
    out.push_str(&format!(
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]\n",
        ms(h.mean()),
        ms(h.stdev())
    ));
    out.push_str(&format!(
        "#[Max     = {:12.3}, Total count    = {:12}]\n",
        ms(h.max() as f64),
        h.len()
    ));
    out
}

pub fn write(path: &Path, h: &Histogram<u64>) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(render(h).as_bytes())?;
    file.flush()
}

/// One row of a spectrum file, as read back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub value_ms: f64,
    pub quantile: f64,
    pub total_count: u64,
}

/// Reads a spectrum file's rows; the reason says what is wrong (the caller names the file).
pub fn parse(text: &str) -> Result<Vec<Point>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| e.to_string())?.clone();
    if header.iter().collect::<Vec<_>>().join(",") != HEADER {
        return Err(format!("the header is not {HEADER:?}"));
    }
    let mut points = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| e.to_string())?;
        let field = |n: usize| -> Result<f64, String> {
            record
                .get(n)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("row {} column {} is not a number", i + 2, n + 1))
        };
        points.push(Point {
            value_ms: field(0)?,
            quantile: field(1)?,
            total_count: field(2)? as u64,
        });
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn the_spectrum_climbs_to_the_max_and_ends_with_the_footer() {
        let mut h = new_histogram();
        for us in 1..=10_000u64 {
            h.record(us * 10).unwrap();
        }
        let text = render(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert!(lines[lines.len() - 2].starts_with("#[Mean    ="));
        assert!(lines[lines.len() - 1].contains("Total count    =        10000"));
        let points = parse(&text).unwrap();
        assert!(points.len() > 20, "a fine spectrum: {}", points.len());
        assert!(points.windows(2).all(|w| w[0].value_ms <= w[1].value_ms));
        assert!(points.windows(2).all(|w| w[0].quantile <= w[1].quantile));
        let last = points.last().unwrap();
        assert_eq!((last.quantile, last.total_count), (1.0, 10_000));
        assert!((last.value_ms - 100.0).abs() < 0.1, "max 100 ms: {last:?}");
        assert!(lines[lines.len() - 3].ends_with(",Infinity"));
    }

    #[test]
    fn an_empty_histogram_has_a_header_and_zero_footer() {
        let text = render(&new_histogram());
        assert!(parse(&text).unwrap().is_empty());
        assert!(text.contains("Total count    =            0"));
    }

    #[test]
    fn garbled_spectra_are_refused() {
        assert!(parse("a,b\n1,2\n").unwrap_err().contains("header"));
        assert!(parse(&format!("{HEADER}\nx,0.5,1,2\n")).is_err());
    }
}

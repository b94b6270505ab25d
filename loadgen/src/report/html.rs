//! `report.html`: one self-contained page per run — verdict, budgets, key metrics, and inline
//! SVG charts of latency and throughput over time and of the percentile spectrum — for people
//! who would rather look than read. Rendered from the run folder's files, so `loadgen report`
//! and the end of a run produce the same page.

use std::fmt::Write as _;
use std::path::Path;

use super::folder::{ReadError, RunReport};
use super::format::{REPORT_FORMAT, REPORT_HTML};
use super::summary::format_value;
use super::svg::{Chart, Series, escape};

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1340px;\
color:#222;padding:0 1em}h1 span{font-size:.6em;padding:.15em .5em;border-radius:4px;\
vertical-align:middle;color:#fff}.pass{background:#2a7}.fail{background:#c33}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;\
padding:.25em .8em;text-align:right}th:first-child,td:first-child{text-align:left}\
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{width:640px;max-width:100%;\
border:1px solid #ddd;background:#fff}.chart .title{font-weight:600;font-size:13px}\
.chart .tick{font-size:11px;fill:#555}.chart .axis{font-size:11px;fill:#333}\
.chart .grid{stroke:#eee}.meta{color:#555}td.bad{color:#c33;font-weight:600}";

const KEY_METRICS: [&str; 14] = [
    "requests",
    "ok",
    "failed",
    "success_rate",
    "throughput",
    "latency_p50",
    "latency_p90",
    "latency_p99",
    "latency_max",
    "ttft_p50",
    "ttft_p99",
    "itl_p50",
    "itl_p99",
    "output_tokens_per_s",
];

const COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c"];

pub fn render(report: &RunReport) -> String {
    let meta = report.meta.as_ref();
    let name = meta.map_or_else(
        || {
            report
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        },
        |m| m.scenario_name().to_owned(),
    );
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"generator\" content=\"loadgen {}\">\
         <title>loadgen report: {}</title><style>{STYLE}</style></head><body>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&name)
    );
    let badge = meta.map(|m| (m.verdict.result == "pass", m.verdict.result.to_uppercase()));
    let _ = write!(out, "<h1>{}", escape(&name));
    if let Some((pass, label)) = badge {
        let _ = write!(
            out,
            " <span class=\"{}\">{label}</span>",
            if pass { "pass" } else { "fail" }
        );
    }
    out.push_str("</h1>\n");
    if let Some(m) = meta {
        let _ = writeln!(
            out,
            "<p class=\"meta\">{} &rarr; {} ({:.1} s{}) &middot; loadgen {} &middot; {} \
             &middot; git {} &middot; host {} ({} {}, {} cpus)</p>",
            escape(&m.started_at),
            escape(&m.ended_at),
            m.duration_s,
            if m.stopped_early {
                ", stopped early"
            } else {
                ""
            },
            escape(&m.loadgen_version),
            escape(m.forwarder_version.as_deref().unwrap_or("no forwarder")),
            escape(m.git_revision.as_deref().unwrap_or("-")),
            escape(&m.host.hostname),
            escape(&m.host.os),
            escape(&m.host.arch),
            m.host.cpus
        );
        if !m.budgets.is_empty() {
            out.push_str(
                "<h2>Budgets</h2><table><tr><th>metric</th><th>budget</th><th>measured</th><th>result</th></tr>\n",
            );
            for b in &m.budgets {
                let op = if b.bound == "at_least" {
                    "&ge;"
                } else {
                    "&le;"
                };
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{op} {} {}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                    escape(&b.metric),
                    format_value(b.limit),
                    escape(&b.unit),
                    b.measured
                        .map_or_else(|| "not measured".to_owned(), format_value),
                    if b.passed { "" } else { "bad" },
                    if b.passed { "PASS" } else { "FAIL" }
                );
            }
            out.push_str("</table>\n");
        }
    }

    out.push_str(
        "<h2>Key metrics</h2><table><tr><th>metric</th><th>value</th><th>unit</th></tr>\n",
    );
    for metric in KEY_METRICS.iter().filter_map(|m| report.summary.get(m)) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&metric.name),
            metric.value.map_or_else(|| "-".to_owned(), format_value),
            escape(&metric.unit)
        );
    }
    out.push_str("</table>\n<h2>Over time</h2><div class=\"charts\">\n");
    for chart in time_charts(report) {
        out.push_str(&chart);
        out.push('\n');
    }
    out.push_str("</div>\n");
    if let Some(table) = faults_table(&report.dir) {
        out.push_str(&table);
    }
    if !report.spectra.is_empty() {
        out.push_str("<h2>Percentile spectrum</h2><div class=\"charts\">\n");
        out.push_str(&spectrum_chart(report));
        out.push_str("\n</div>\n");
    }
    out.push_str(
        "<details><summary>All summary metrics</summary><table>\
         <tr><th>metric</th><th>value</th><th>unit</th></tr>\n",
    );
    for m in &report.summary.metrics {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.name),
            m.value.map_or_else(|| "-".to_owned(), format_value),
            escape(&m.unit)
        );
    }
    let _ = write!(
        out,
        "</table></details>\n<p class=\"meta\">report format v{} (read from v{})</p>\n</body></html>\n",
        REPORT_FORMAT, report.summary.format_version
    );
    out
}

/// The run's faults (faults.csv, when the scenario had any) as a table: what, where, when, and
/// what happened meanwhile.
fn faults_table(dir: &Path) -> Option<String> {
    let mut reader = csv::Reader::from_path(dir.join("faults.csv")).ok()?;
    let headers = reader.headers().ok()?.clone();
    let mut out = String::from("<h2>Faults</h2><table><tr>");
    for h in &headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for record in reader.records().map_while(Result::ok) {
        out.push_str("<tr>");
        for field in &record {
            let _ = write!(out, "<td>{}</td>", escape(field));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    Some(out)
}

fn time_charts(report: &RunReport) -> Vec<String> {
    let ts = &report.timeseries;
    let Some(elapsed) = ts.column("elapsed_s") else {
        return Vec::new();
    };
    let x: Vec<f64> = elapsed.iter().map(|v| v.unwrap_or(0.0)).collect();
    let series = |name: &'static str, column: &str, color: &'static str| {
        ts.column(column).map(|values| Series {
            name,
            color,
            points: x.iter().copied().zip(values).collect(),
        })
    };
    let mut charts = Vec::new();
    let latency: Vec<Series> = [
        series("p50", "latency_p50_ms", COLORS[0]),
        series("p90", "latency_p90_ms", COLORS[1]),
        series("p99", "latency_p99_ms", COLORS[2]),
    ]
    .into_iter()
    .flatten()
    .collect();
    charts.push(
        Chart {
            title: "Latency over time",
            x_label: "elapsed (s)",
            y_label: "ms",
            series: latency,
            x_ticks: None,
        }
        .render(),
    );
    let throughput: Vec<Series> = [
        series("requests/s", "throughput", COLORS[0]),
        ts.column("failed").map(|failed| Series {
            name: "failed/s",
            color: COLORS[2],
            points: x.iter().copied().zip(failed).collect(),
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    charts.push(
        Chart {
            title: "Throughput and failures",
            x_label: "elapsed (s)",
            y_label: "per second",
            series: throughput,
            x_ticks: None,
        }
        .render(),
    );
    let ttft_measured = ts
        .column("ttft_p50_ms")
        .is_some_and(|v| v.iter().any(Option::is_some));
    if ttft_measured {
        let ttft: Vec<Series> = [
            series("ttft p50", "ttft_p50_ms", COLORS[0]),
            series("ttft p99", "ttft_p99_ms", COLORS[2]),
            series("itl p99", "itl_p99_ms", COLORS[3]),
        ]
        .into_iter()
        .flatten()
        .collect();
        charts.push(
            Chart {
                title: "Time to first token and inter-token latency",
                x_label: "elapsed (s)",
                y_label: "ms",
                series: ttft,
                x_ticks: None,
            }
            .render(),
        );
    }
    charts
}

/// x = log10(1 / (1 - q)): 0 at the median's left edge, 1 at 90%, 2 at 99%, 3 at 99.9%...
fn spectrum_chart(report: &RunReport) -> String {
    let series: Vec<Series> = report
        .spectra
        .iter()
        .zip(COLORS)
        .map(|((family, points), color)| Series {
            name: family,
            color,
            points: points
                .iter()
                .filter(|p| p.quantile < 1.0)
                .map(|p| ((1.0 / (1.0 - p.quantile)).log10(), Some(p.value_ms)))
                .collect(),
        })
        .collect();
    let ticks = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"]
        .iter()
        .enumerate()
        .map(|(i, label)| (i as f64, (*label).to_owned()))
        .collect();
    Chart {
        title: "Percentile spectrum (whole run)",
        x_label: "percentile",
        y_label: "ms",
        series,
        x_ticks: Some(ticks),
    }
    .render()
}

/// Renders the page from a run folder's files and writes it there.
pub fn write_for(dir: &Path) -> Result<(), ReadError> {
    let report = RunReport::load(dir)?;
    let path = dir.join(REPORT_HTML);
    std::fs::write(&path, render(&report)).map_err(|e| ReadError {
        path,
        reason: format!("cannot write it: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_with_only_a_summary_renders_without_charts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("summary.csv"),
            "metric,value,unit\nrequests,10,count\nlatency_p99,12.5,ms\n",
        )
        .unwrap();
        write_for(dir.path()).unwrap();
        let page = std::fs::read_to_string(dir.path().join(REPORT_HTML)).unwrap();
        assert!(
            page.contains("<td>latency_p99</td><td>12.500</td><td>ms</td>"),
            "{page}"
        );
        assert!(!page.contains("<svg"), "no data, no charts");
        assert!(page.ends_with("</html>\n"));
    }
}

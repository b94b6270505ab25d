//! The report files of a real run, each checked by an independent reader: CSV by the csv crate,
//! the HdrHistogram interval log by the `hdrhistogram` Python package, JUnit XML by roxmltree,
//! run.json by serde_json; and `loadgen report` re-rendering a folder.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Reads the interval log with the Python package; prints `tag count` per tag.
const READ_HLOG: &str = r#"
import sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
reader = HistogramLogReader(sys.argv[1], HdrHistogram(1, 3600000000, 3))
totals = {}
intervals = 0
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    intervals += 1
    totals[h.tag] = totals.get(h.tag, 0) + h.get_total_count()
print("intervals", intervals)
for tag, count in sorted(totals.items()):
    print(tag, count)
"#;

#[test]
fn every_report_file_is_readable_by_an_independent_reader() {
    let (dir, scenario) = write_scenario(&small_scenario(
        "reports",
        "budgets:\n  success_rate: 99%\n  ttft_p99: 1ms\n",
    ));
    let out = dir.path().join("report");
    let run = loadgen_run(&scenario, &out, &[], LIMIT);
    assert_eq!(
        run.code(),
        Some(1),
        "one budget is missed\n{}\n{}",
        run.stdout,
        run.stderr
    );

    let summary = read_summary(&out);
    assert_eq!(
        summary["report_format"],
        Some(1.0),
        "the format version row"
    );
    let ok = summary["ok"].expect("ok measured") as u64;
    assert!(ok >= 10, "only {ok} successful requests");

    check_spectrum(&out.join("percentiles.csv"), ok);
    check_spectrum(&out.join("percentiles-ttft.csv"), ok);
    check_junit(&out.join("budgets.xml"));
    check_run_json(&out.join("run.json"));
    check_hlog(&out.join("latency.hlog"), ok);

    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.starts_with("<!doctype html>"));
    assert!(
        html.matches("<svg").count() >= 4,
        "latency, throughput, ttft, spectrum charts"
    );
    for needle in [
        "Latency over time",
        "Throughput and failures",
        "Percentile spectrum",
        "ttft_p99",
    ] {
        assert!(html.contains(needle), "{needle} missing from report.html");
    }
    // Self-contained: nothing loaded from anywhere.
    assert!(
        !html.contains("src=") && !html.contains("href="),
        "external references in the page"
    );

    // `loadgen report DIR` renders the page again and prints the summary.
    std::fs::remove_file(out.join("report.html")).unwrap();
    let again = loadgen(&["report".as_ref(), out.as_os_str()], LIMIT);
    assert_eq!(again.code(), Some(0), "{}", again.stderr);
    assert!(
        again.stdout.contains("requests ") && again.stdout.contains("FAIL  ttft_p99"),
        "{}",
        again.stdout
    );
    assert!(
        out.join("report.html").is_file(),
        "report.html rendered again"
    );

    let missing = loadgen(
        &["report".as_ref(), dir.path().join("nope").as_os_str()],
        LIMIT,
    );
    assert_eq!(missing.code(), Some(2));
    assert!(missing.stderr.contains("nope"), "{}", missing.stderr);
}

/// The wrk2 / HdrHistogram layout: header, rows climbing to 100%, then the footer comments.
fn check_spectrum(path: &Path, ok: u64) {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    let rows: Vec<(f64, f64, u64)> = reader
        .records()
        .map(|r| {
            let r = r.expect("well-formed row");
            (
                r[0].parse().unwrap(),
                r[1].parse().unwrap(),
                r[2].parse().unwrap(),
            )
        })
        .collect();
    assert!(
        rows.len() > 10,
        "{}: a fine-grained spectrum",
        path.display()
    );
    assert!(
        rows.windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1 && w[0].2 <= w[1].2)
    );
    let last = rows.last().unwrap();
    assert_eq!(
        (last.1, last.2),
        (1.0, ok),
        "{}: ends at 100% with every request",
        path.display()
    );
    let text = std::fs::read_to_string(path).unwrap();
    let footer: Vec<&str> = text.lines().filter(|l| l.starts_with("#[")).collect();
    assert_eq!(footer.len(), 2, "{text}");
    assert!(footer[0].starts_with("#[Mean") && footer[0].contains("StdDeviation"));
    assert!(
        footer[1].starts_with("#[Max")
            && footer[1].ends_with(&format!("Total count    = {ok:>12}]")),
        "{}",
        footer[1]
    );
}

fn check_junit(path: &Path) {
    let text = std::fs::read_to_string(path).expect("budgets.xml");
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    assert_eq!(
        (suite.attribute("tests"), suite.attribute("failures")),
        (Some("2"), Some("1"))
    );
    let cases: BTreeMap<&str, Option<String>> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|case| {
            let failure = case
                .children()
                .find(|n| n.has_tag_name("failure"))
                .and_then(|f| f.attribute("message").map(str::to_owned));
            (case.attribute("name").unwrap(), failure)
        })
        .collect();
    assert_eq!(
        cases.keys().copied().collect::<Vec<_>>(),
        ["success_rate", "ttft_p99"]
    );
    assert_eq!(cases["success_rate"], None);
    let message = cases["ttft_p99"].as_deref().expect("ttft_p99 failed");
    assert!(
        message.contains("ttft_p99 = ") && message.ends_with("budget <= 1 ms"),
        "{message}"
    );
}

fn check_run_json(path: &Path) {
    let text = std::fs::read_to_string(path).expect("run.json");
    let meta: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(meta["format_version"], 1);
    assert_eq!(meta["scenario"]["name"], "reports");
    assert_eq!(
        meta["scenario"]["load"]["stages"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        meta["scenario"]["budgets"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(meta["loadgen_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        meta["forwarder_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("forwarder ")),
        "{text}"
    );
    assert!(meta["host"]["cpus"].as_u64().is_some_and(|n| n >= 1));
    let (start, end) = (
        meta["started_at"].as_str().unwrap(),
        meta["ended_at"].as_str().unwrap(),
    );
    assert!(start.ends_with('Z') && start < end, "{start} .. {end}");
    assert_eq!(meta["verdict"]["result"], "fail");
    assert_eq!(meta["verdict"]["exit_code"], 1);
    assert_eq!(meta["stopped_early"], false);
}

fn check_hlog(path: &Path, ok: u64) {
    let text = std::fs::read_to_string(path).expect("latency.hlog");
    assert!(
        text.starts_with("#[Histogram log format version 1.3]"),
        "{text}"
    );
    let python = Command::new("python3")
        .args(["-c", "import hdrh"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !require(
        python,
        "python3 with the hdrhistogram package (pip install hdrhistogram)",
    ) {
        return;
    }
    let read = run(
        Command::new("python3").arg("-c").arg(READ_HLOG).arg(path),
        LIMIT,
    );
    assert_eq!(
        read.code(),
        Some(0),
        "the Python reader failed:\n{}",
        read.stderr
    );
    let counts: BTreeMap<&str, u64> = read
        .stdout
        .lines()
        .filter_map(|l| {
            let (tag, n) = l.split_once(' ')?;
            Some((tag, n.parse().ok()?))
        })
        .collect();
    assert!(
        counts["intervals"] >= 4,
        "a latency and a ttft histogram per second: {counts:?}"
    );
    assert_eq!(
        counts.get("latency"),
        Some(&ok),
        "every successful request once: {counts:?}"
    );
    assert_eq!(counts.get("ttft"), Some(&ok), "{counts:?}");
}

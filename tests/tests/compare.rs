//! `loadgen compare BASE NEW`: 0 when nothing regressed beyond tolerance (improvements
//! included), 1 on a regression, 2 on a missing or garbled report with a message naming it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::*;

const LIMIT: Duration = Duration::from_secs(60);

fn summary(dir: &Path, name: &str, latency_p99: f64, success_rate: f64) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("summary.csv"),
        format!(
            "metric,value,unit\nreport_format,1,version\nrequests,1000,count\nok,999,count\n\
             failed,1,count\nsuccess_rate,{success_rate},%\nthroughput,100.000,req/s\n\
             latency_p50,40.000,ms\nlatency_p99,{latency_p99},ms\nttft_p99,30.000,ms\n"
        ),
    )
    .unwrap();
    folder
}

fn compare(base: &Path, new: &Path, extra: &[&str]) -> Finished {
    let mut args: Vec<&OsStr> = vec!["compare".as_ref(), base.as_os_str(), new.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    loadgen(&args, LIMIT)
}

#[test]
fn regressions_exit_1_and_everything_else_0() {
    let dir = tempfile::tempdir().unwrap();
    let base = summary(dir.path(), "base", 100.0, 99.9);
    let same = summary(dir.path(), "same", 105.0, 99.85);
    let better = summary(dir.path(), "better", 50.0, 100.0);
    let slower = summary(dir.path(), "slower", 150.0, 99.9);
    let flakier = summary(dir.path(), "flakier", 100.0, 99.0);

    let within = compare(&base, &same, &[]);
    assert_eq!(within.code(), Some(0), "{}", within.stdout);
    assert!(within.stdout.contains("result: OK"), "{}", within.stdout);

    let improved = compare(&base, &better, &[]);
    assert_eq!(improved.code(), Some(0), "{}", improved.stdout);
    let p99 = improved
        .stdout
        .lines()
        .find(|l| l.starts_with("latency_p99"))
        .unwrap();
    assert!(p99.contains("-50.0%") && p99.ends_with("better"), "{p99}");

    let regressed = compare(&base, &slower, &[]);
    assert_eq!(regressed.code(), Some(1), "{}", regressed.stdout);
    let p99 = regressed
        .stdout
        .lines()
        .find(|l| l.starts_with("latency_p99"))
        .unwrap();
    assert!(
        p99.contains("+50") && p99.contains("+50.0%") && p99.ends_with("worse"),
        "{p99}"
    );
    assert!(
        regressed.stdout.contains("REGRESSION"),
        "{}",
        regressed.stdout
    );

    assert_eq!(
        compare(&base, &flakier, &[]).code(),
        Some(1),
        "success rate fell 0.9 points"
    );
    // The summary file itself works as well as its folder.
    assert_eq!(
        compare(&base.join("summary.csv"), &flakier, &[]).code(),
        Some(1)
    );

    // Tolerances from flags and from a file loosen the gate.
    assert_eq!(
        compare(&base, &slower, &["--tolerance", "latency=60%"]).code(),
        Some(0)
    );
    let file = dir.path().join("tolerances.txt");
    std::fs::write(
        &file,
        "# release gate\nlatency_p99 = 60%\nsuccess_rate = 1\n",
    )
    .unwrap();
    let loose = compare(&base, &flakier, &["--tolerances", file.to_str().unwrap()]);
    assert_eq!(loose.code(), Some(0), "{}", loose.stdout);

    let markdown = compare(&base, &slower, &["--format", "markdown"]);
    assert_eq!(markdown.code(), Some(1));
    assert!(
        markdown.stdout.starts_with("### loadgen compare"),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown
            .stdout
            .contains("| latency_p99 | 100 ms | 150 ms | +50 | +50.0% | ±10% | ❌ worse |"),
        "{}",
        markdown.stdout
    );
}

#[test]
fn missing_or_garbled_reports_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = summary(dir.path(), "base", 100.0, 99.9);
    let cases: [(&str, Option<&str>, &str); 5] = [
        ("missing", None, "no such file"),
        (
            "garbled",
            Some("metric;value;unit\nrequests;1;count\n"),
            "not a loadgen summary",
        ),
        (
            "bad-number",
            Some("metric,value,unit\nrequests,lots,count\n"),
            "line 2",
        ),
        (
            "short-row",
            Some("metric,value,unit\nrequests,1\n"),
            "line 2",
        ),
        (
            "future",
            Some("metric,value,unit\nreport_format,9,version\nrequests,1,count\n"),
            "v9",
        ),
    ];
    for (name, text, reason) in cases {
        let folder = dir.path().join(name);
        if let Some(text) = text {
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join("summary.csv"), text).unwrap();
        }
        let result = compare(&base, &folder, &[]);
        assert_eq!(result.code(), Some(2), "{name}: {}", result.stderr);
        assert!(
            result.stderr.contains(name) && result.stderr.contains(reason),
            "{name}: {}",
            result.stderr
        );
    }
    let bad_tolerance = compare(&base, &base, &["--tolerance", "latency_p99=quick"]);
    assert_eq!(bad_tolerance.code(), Some(2));
    assert!(
        bad_tolerance.stderr.contains("latency_p99=quick"),
        "{}",
        bad_tolerance.stderr
    );
    let bad_file = dir.path().join("tolerances.txt");
    std::fs::write(&bad_file, "latency_p99 15%\n").unwrap();
    let result = compare(&base, &base, &["--tolerances", bad_file.to_str().unwrap()]);
    assert_eq!(result.code(), Some(2));
    assert!(
        result.stderr.contains("tolerances.txt:1"),
        "{}",
        result.stderr
    );
}

#[test]
fn the_committed_baseline_compares_with_itself() {
    let baseline = workspace_root().join("reports/baselines/smoke");
    let result = compare(&baseline, &baseline, &[]);
    assert_eq!(
        result.code(),
        Some(0),
        "{}\n{}",
        result.stdout,
        result.stderr
    );
    let rendered = tempfile::tempdir().unwrap();
    // `loadgen report` reads the whole baseline folder (a copy: the repository stays untouched).
    for entry in std::fs::read_dir(&baseline).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), rendered.path().join(entry.file_name())).unwrap();
        }
    }
    let report = loadgen(&["report".as_ref(), rendered.path().as_os_str()], LIMIT);
    assert_eq!(report.code(), Some(0), "{}", report.stderr);
}

//! No child process outlives loadgen: after a normal run, after Ctrl-C, after loadgen is killed.

use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::*;

fn long_scenario() -> (tempfile::TempDir, std::path::PathBuf) {
    write_scenario(&small_scenario("long", "").replace(
        "duration: 1s, users: 10 }\n    - { duration: 1s",
        "duration: 1s, users: 10 }\n    - { duration: 5m",
    ))
}

/// Starts a long run and returns it once its stack is up and load has begun.
fn start_long_run(
    out: &std::path::Path,
    scenario: &std::path::Path,
) -> (
    std::process::Child,
    Vec<i32>,
    impl Iterator<Item = String> + use<>,
) {
    let mut child = Command::new(binary("loadgen"))
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    let mut lines = lines_of(child.stdout.take().unwrap());
    let seen = read_until(&mut lines, Duration::from_secs(60), |l| {
        l.starts_with("stack: backend-1")
    });
    let pids = stack_pids(&seen.join("\n"));
    assert_eq!(pids.len(), 3, "forwarder and two backends: {seen:?}");
    assert!(pids.iter().all(|&p| alive(p)));
    (child, pids, lines)
}

#[test]
fn children_are_gone_after_a_normal_run() {
    let (dir, scenario) = write_scenario(&small_scenario("normal", ""));
    let run = loadgen_run(
        &scenario,
        &dir.path().join("report"),
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(run.code(), Some(0), "{run:?}");
    let pids = stack_pids(&run.stdout);
    assert_eq!(pids.len(), 3);
    assert!(survivors(&pids, Duration::from_secs(1)).is_empty());
}

#[test]
fn ctrl_c_stops_gracefully_writes_reports_and_stops_children() {
    let (dir, scenario) = long_scenario();
    let out = dir.path().join("report");
    let (child, pids, _lines) = start_long_run(&out, &scenario);
    // Interrupt once at least one second of load is on record.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !read_timeseries_if_any(&out)
        .iter()
        .any(|r| r["requests"] != "0")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no load recorded within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let finished = wait(child, Duration::from_secs(60));
    assert!(
        matches!(finished.code(), Some(0 | 1)),
        "a judged run, not a crash: {finished:?}"
    );
    assert!(
        survivors(&pids, Duration::from_secs(5)).is_empty(),
        "children outlived loadgen"
    );
    let summary = read_summary(&out);
    let requests = summary["requests"].unwrap();
    assert!(requests > 0.0);
    assert_eq!(
        requests,
        summary["ok"].unwrap() + summary["failed"].unwrap()
    );
}

#[test]
fn children_die_with_a_killed_loadgen() {
    let (dir, scenario) = long_scenario();
    let (mut child, pids, _lines) = start_long_run(&dir.path().join("report"), &scenario);
    child.kill().expect("SIGKILL loadgen");
    child.wait().expect("reap loadgen");
    assert!(
        survivors(&pids, Duration::from_secs(5)).is_empty(),
        "parent-death signal must take the stack down"
    );
}

fn read_timeseries_if_any(
    dir: &std::path::Path,
) -> Vec<std::collections::BTreeMap<String, String>> {
    if dir.join("timeseries.csv").is_file() {
        read_timeseries(dir)
    } else {
        Vec::new()
    }
}

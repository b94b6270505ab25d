//! Process faults on the stack's children: a crashed backend is gone and comes back on its port;
//! a hung one makes requests time out, then recovers.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::*;

/// Polls `check` every 20 ms until it holds or `limit` passes.
fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_crash_fault_kills_the_backend_and_restarts_it_on_the_same_port() {
    let scenario = "name: crash\n\
        stack:\n  backends:\n    count: 2\n    profile: { ttft: 5ms, tokens_per_s: 500, output_tokens: 4 }\n\
        load:\n  stages: [{ duration: 1s, users: 10 }, { duration: 7s, users: 10 }]\n  think_time: 20ms\n\
        faults:\n  - { at: 1s, duration: 2s, target: backend-0, kind: crash, restart: true }\n\
        budgets: { lost: 0 }\n";
    let (dir, path) = write_scenario(scenario);
    let out = dir.path().join("report");
    let mut loadgen = Command::new(binary("loadgen"))
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .arg("--no-tui")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    let mut lines = lines_of(loadgen.stdout.take().unwrap());
    let seen = read_until(&mut lines, Duration::from_secs(60), |l| {
        l.starts_with("stack: backend-0")
    });
    let line = seen.last().unwrap().clone();
    let pid = stack_pids(&line)[0];
    let addr: std::net::SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .and_then(|a| a.parse().ok())
        .expect("backend address");
    eventually(Duration::from_secs(20), "the crash", || !alive(pid));
    eventually(Duration::from_secs(20), "the restart", || {
        http_get(addr, "/healthz").0 == 200
    });
    std::thread::spawn(move || for _ in lines {});
    let finished = wait(loadgen, Duration::from_secs(60));
    assert_eq!(finished.code(), Some(0), "{finished:?}");
    let csv = std::fs::read_to_string(out.join("faults.csv")).unwrap();
    let row = csv.lines().nth(1).expect("a row for the crash");
    assert!(row.starts_with("crash-backend-0,crash,backend-0,"), "{csv}");
    assert!(row.ends_with(",\"\""), "no problems applying it: {csv}");
    assert_eq!(read_summary(&out)["lost"], Some(0.0));
}

#[test]
fn a_hung_backend_makes_requests_time_out_then_recover() {
    let scenario = "name: hang\n\
        stack:\n  backends:\n    count: 1\n    profile: { ttft: 5ms, tokens_per_s: 500, output_tokens: 4 }\n  \
        forwarder: { enabled: false }\n\
        request: { timeout: 500ms }\n\
        load:\n  stages: [{ duration: 1s, users: 5 }, { duration: 6s, users: 5 }]\n  think_time: 20ms\n\
        faults:\n  - { at: 1s, duration: 2s, target: backend-0, kind: hang }\n";
    let (dir, path) = write_scenario(scenario);
    let out = dir.path().join("report");
    let run = loadgen_run(&path, &out, &["--no-tui"], Duration::from_secs(120));
    assert_eq!(run.code(), Some(0), "{run:?}");
    let summary = read_summary(&out);
    assert!(summary["failed_timeout"].unwrap() > 0.0, "{summary:?}");
    let rows = read_timeseries(&out);
    // Seconds 4..6 of the load, well after the SIGCONT at 3 s: answered again, and cleanly.
    let after: Vec<_> = rows
        .iter()
        .filter(|r| (5.0..=6.0).contains(&r["elapsed_s"].parse::<f64>().unwrap()))
        .collect();
    assert!(!after.is_empty(), "{rows:?}");
    for row in after {
        assert!(row["ok"].parse::<u64>().unwrap() > 0, "recovered: {row:?}");
        assert_eq!(row["failed"], "0", "recovered: {row:?}");
    }
    assert!(
        rows.iter()
            .any(|r| r["fault_events"].contains("+hang-backend-0")),
        "the hang's start is marked"
    );
}

#[test]
fn the_forwarder_notices_a_stopped_and_a_hung_backend_within_seconds() {
    let scenario = "name: noticed\n\
        stack:\n  backends:\n    count: 3\n    profile: { ttft: 5ms, tokens_per_s: 500, output_tokens: 4 }\n\
        load:\n  stages: [{ duration: 1s, users: 10 }, { duration: 7s, users: 10 }]\n  think_time: 20ms\n\
        faults:\n  \
        - { at: 1s, duration: 4s, target: backend-0, kind: stop, restart: true }\n  \
        - { at: 1s, duration: 3s, target: backend-1, kind: hang }\n\
        budgets: { breaker_open_after: 4s, lost: 0 }\n";
    let (dir, path) = write_scenario(scenario);
    let out = dir.path().join("report");
    let run = loadgen_run(&path, &out, &["--no-tui"], Duration::from_secs(120));
    assert_eq!(run.code(), Some(0), "{run:?}");
    let summary = read_summary(&out);
    let noticed = summary["breaker_open_after"].expect("measured for stop and hang");
    assert!(noticed > 0.0 && noticed <= 4.0, "{summary:?}");

    let mut faults = csv::Reader::from_path(out.join("faults.csv")).expect("faults.csv");
    let header = faults.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = faults.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let after: f64 = row[column("breaker_open_after_s")]
            .parse()
            .expect("noticed");
        assert!(after <= noticed, "the summary holds the worst: {row:?}");
        let by = &row[column("noticed_by")];
        assert!(by == "breaker" || by == "health_check", "{row:?}");
    }
}

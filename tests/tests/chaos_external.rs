//! A scenario without a stack drives a `loadgen chaos-proxy` someone else runs: its faults
//! are set on schedule through the proxy's control API, measured like the stack's, and lifted
//! when the run ends.

use std::time::Duration;

use e2e::*;

#[test]
fn a_scenario_schedules_a_latency_fault_on_a_running_chaos_proxy() {
    let mock = Server::mock(&[
        "--ttft",
        "10ms",
        "--tokens-per-s",
        "500",
        "--output-tokens",
        "4",
    ]);
    let proxy = ChaosProxy::start(mock.addr);
    let scenario = format!(
        "name: external\n\
         target: http://{}\n\
         chaos_proxies:\n  edge: http://{}\n\
         request: {{ stream: false }}\n\
         load:\n  stages: [{{ duration: 1s, users: 5 }}, {{ duration: 7s, users: 5 }}]\n  think_time: 20ms\n\
         faults:\n  - {{ at: 3s, target: edge, kind: latency, delay: 200ms }}\n\
         budgets: {{ lost: 0 }}\n",
        proxy.addr, proxy.control
    );
    let (dir, path) = write_scenario(&scenario);
    let out = dir.path().join("report");
    let run = loadgen_run(&path, &out, &["--no-tui"], Duration::from_secs(120));
    assert_eq!(run.code(), Some(0), "{run:?}");

    let rows = read_timeseries(&out);
    // Seconds 1..3 before; 5..8 inside, clear of the start (the fault lasts to the end).
    let before = median_over(&rows, "latency_p50_ms", 2.0, 3.0);
    let during = median_over(&rows, "latency_p50_ms", 5.0, 8.0);
    let added = during - before;
    assert!(
        (180.0..=240.0).contains(&added),
        "p50 {before} -> {during} ms"
    );
    assert!(
        rows.iter()
            .any(|r| r["fault_events"].contains("+latency-edge")),
        "the start is marked"
    );

    let mut faults = csv::Reader::from_path(out.join("faults.csv")).expect("faults.csv");
    let header = faults.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = faults.records().map(Result::unwrap).collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        [
            &rows[0][column("fault")],
            &rows[0][column("kind")],
            &rows[0][column("target")]
        ],
        ["latency-edge", "latency", "edge"]
    );
    let started: f64 = rows[0][column("start_s")].parse().unwrap();
    assert!((2.9..3.6).contains(&started), "started at {started} s");
    assert!(rows[0][column("requests")].parse::<u64>().unwrap() > 0);
    assert_eq!(&rows[0][column("problems")], "");

    // The run is over: the fault it set is gone from the proxy.
    let (status, toxics) = proxy.call("GET", "/toxics", "");
    assert_eq!(status, 200);
    assert!(toxics.ends_with("{}"), "left behind: {toxics}");
}

fn validate(text: &str) -> Finished {
    let (dir, path) = write_scenario(text);
    let mut validate = std::process::Command::new(binary("loadgen"));
    let finished = run(validate.arg("validate").arg(&path), Duration::from_secs(60));
    drop(dir);
    finished
}

fn external(proxies: &str, fault: &str) -> String {
    format!(
        "name: bad\ntarget: http://127.0.0.1:9/\n\
         chaos_proxies:\n{proxies}\
         load:\n  stages: [{{ duration: 10s, users: 1 }}]\n\
         faults:\n  - {fault}\n"
    )
}

#[test]
fn bad_chaos_proxy_references_name_the_place_and_field() {
    let cases = [
        (
            external(
                "  edge: http://127.0.0.1:9101\n",
                "{ at: 1s, target: egde, kind: down }",
            ),
            ":8:",
            "faults[0].target",
            "chaos proxies (edge)",
        ),
        (
            external(
                "  edge: http://127.0.0.1:9101\n",
                "{ at: 1s, target: edge, kind: crash }",
            ),
            ":8:",
            "faults[0].kind",
            "network faults only",
        ),
        (
            external(
                "  edge: http://10.1.2.3:9101\n",
                "{ at: 1s, target: edge, kind: down }",
            ),
            ":4:",
            "chaos_proxies.edge",
            "not a loopback address",
        ),
    ];
    for (text, place, field, why) in cases {
        let checked = validate(&text);
        assert_eq!(checked.code(), Some(2), "{checked:?}");
        let stderr = &checked.stderr;
        assert!(
            stderr.contains(&format!("scenario.yaml{place}"))
                && stderr.contains(field)
                && stderr.contains(why),
            "{text}\n{stderr}"
        );
    }
}

#[test]
fn a_chaos_proxy_that_does_not_answer_fails_the_run_before_the_load() {
    let mock = Server::mock(&["--ttft", "1ms", "--output-tokens", "2"]);
    // A port nothing listens on: bound, read, and let go.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let control = free.local_addr().unwrap();
    drop(free);
    let scenario = format!(
        "name: gone\ntarget: http://{}\n\
         chaos_proxies:\n  edge: http://{control}\n\
         load:\n  stages: [{{ duration: 2s, users: 1 }}]\n\
         faults:\n  - {{ at: 1s, target: edge, kind: down }}\n",
        mock.addr
    );
    let (dir, path) = write_scenario(&scenario);
    let run = loadgen_run(
        &path,
        &dir.path().join("report"),
        &["--no-tui"],
        Duration::from_secs(60),
    );
    assert_eq!(run.code(), Some(3), "{run:?}");
    assert!(
        run.stderr.contains("chaos proxy edge does not answer"),
        "{}",
        run.stderr
    );
}

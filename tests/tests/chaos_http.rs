//! HTTP faults: the mock's `/_chaos` control, and a scheduled error fault whose 5xx reach the
//! client during its window only, with a faults.csv row per fault, counted apart from the
//! fault right after it in the same second.

use std::time::Duration;

use e2e::*;

fn call(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    read_answer(http_request(
        addr,
        method,
        path,
        &[("content-type", "application/json")],
        body,
    ))
}

#[test]
fn the_mock_control_switches_an_error_fault_on_and_off() {
    let mock = Server::mock(&["--ttft", "1ms", "--output-tokens", "3"]);
    let chat = chat_body(false);
    assert_eq!(
        call(mock.addr, "POST", "/v1/chat/completions", &chat).0,
        200
    );
    let fault = r#"{"kind":"error","status":429,"retry_after_s":7}"#;
    assert_eq!(call(mock.addr, "PUT", "/_chaos/e1", fault).0, 200);
    let (status, text) = call(mock.addr, "POST", "/v1/chat/completions", &chat);
    assert_eq!(status, 429, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 7"),
        "{text}"
    );
    let (status, listed) = call(mock.addr, "GET", "/_chaos", "");
    assert!(status == 200 && listed.contains("\"e1\""), "{listed}");
    assert_eq!(call(mock.addr, "DELETE", "/_chaos/e1", "").0, 200);
    assert_eq!(
        call(mock.addr, "POST", "/v1/chat/completions", &chat).0,
        200
    );
    let bad = r#"{"kind":"error","status":200}"#;
    assert_eq!(call(mock.addr, "PUT", "/_chaos/e2", bad).0, 400);
}

#[test]
fn a_scheduled_error_fault_fails_requests_during_its_window_only() {
    // Straight to one backend (no forwarder to retry elsewhere), so every injected 5xx is seen.
    let scenario = "name: httpfault\n\
        stack:\n  backends:\n    count: 1\n    profile: { ttft: 5ms, tokens_per_s: 500, output_tokens: 4 }\n  \
        forwarder: { enabled: false }\n\
        load:\n  stages: [{ duration: 1s, users: 5 }, { duration: 6s, users: 5 }]\n  think_time: 20ms\n\
        faults:\n  \
        - { at: 2s, duration: 1500ms, target: backend-0, kind: error, status: 503 }\n  \
        - { at: 3500ms, duration: 1s, target: all, kind: delay, delay: 50ms }\n\
        budgets: { lost: 0 }\n";
    let (dir, path) = write_scenario(scenario);
    let out = dir.path().join("report");
    let run = loadgen_run(&path, &out, &["--no-tui"], Duration::from_secs(120));
    assert_eq!(run.code(), Some(0), "{run:?}");

    let summary = read_summary(&out);
    assert!(summary["failed_http_5xx"].unwrap() > 0.0, "{summary:?}");
    assert_eq!(summary["failed_http_5xx"], summary["failed"]);
    assert_eq!(summary["failed_during_faults"], summary["failed"]);
    assert_eq!(summary["lost"], Some(0.0));

    for row in read_timeseries(&out) {
        let elapsed: f64 = row["elapsed_s"].parse().unwrap();
        let failed: u64 = row["failed_http_5xx"].parse().unwrap();
        // The reporter's seconds end at whole seconds; the fault covers 2 s..3.5 s of the load.
        if elapsed <= 2.0 || elapsed >= 5.0 {
            assert_eq!(failed, 0, "5xx outside the fault's window: {row:?}");
        }
        if (3.0..=4.0).contains(&elapsed) {
            assert!(failed > 0, "no 5xx inside the window: {row:?}");
            assert!(row["active_faults"].contains("error-backend-0"), "{row:?}");
        }
    }

    let mut faults = csv::Reader::from_path(out.join("faults.csv")).expect("faults.csv");
    let header = faults.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = faults.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "one row per fault");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][column("fault")], "error-backend-0");
    assert_eq!(&rows[1][column("kind")], "delay");
    let count = |row: usize, name: &str| rows[row][column(name)].parse::<u64>().unwrap();
    let error_5xx = count(0, "failed_http_5xx");
    assert!(error_5xx > 0);
    assert_eq!(count(0, "failed"), error_5xx);
    // The delay begins in the second the error ends, and owns none of its failures but for a
    // request caught at the switch (per-second counting would give it a third of them).
    assert!(count(1, "requests") > 0);
    assert!(
        count(1, "failed_http_5xx") * 20 <= error_5xx,
        "the delay's row holds the error's failures: {rows:?}"
    );
    assert_eq!(&rows[0][column("problems")], "");
    // The HTML report shows the same faults.
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(
        html.contains("<h2>Faults</h2>"),
        "report.html lists the faults"
    );
    assert!(html.contains("<td>error-backend-0</td>"), "{html}");
}

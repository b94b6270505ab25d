//! The open model end to end: arrivals keep their schedule whatever the target does, latency
//! counts from the intended send time, and requests beyond the in-flight cap are dropped — and
//! counted.

use std::time::Duration;

use e2e::*;

const LIMIT: Duration = Duration::from_secs(90);

/// A scenario with one mock backend answering after `delay`, load straight to it.
fn open_scenario(name: &str, delay: &str, load: &str) -> String {
    format!(
        "name: {name}\n\
         stack:\n  backends:\n    count: 1\n    profile: {{ ttft: {delay}, tokens_per_s: 1000, output_tokens: 1 }}\n  \
         forwarder: {{ enabled: false }}\n\
         request: {{ stream: false }}\n\
         load:\n  model: open\n{load}"
    )
}

fn summary_of(text: &str) -> std::collections::BTreeMap<String, Option<f64>> {
    let (dir, scenario) = write_scenario(text);
    let out = dir.path().join("report");
    let run = loadgen_run(&scenario, &out, &[], LIMIT);
    assert_eq!(
        run.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    read_summary(&out)
}

#[test]
fn a_constant_rate_sends_the_scheduled_number_of_requests() {
    let s = summary_of(&open_scenario(
        "rate",
        "5ms",
        "  arrivals: constant\n  start_rate: 40\n  stages:\n    - { duration: 2s, rate: 40 }\n  connections: { protocol: http1, count: 8 }\n",
    ));
    let get = |m: &str| s[m].unwrap();
    // 40/s for 2 s, evenly spaced: exactly 80 arrivals.
    assert_eq!(get("requests"), 80.0);
    assert_eq!(get("requests"), get("ok") + get("failed") + get("dropped"));
    assert_eq!(get("dropped"), 0.0);
}

#[test]
fn latency_counts_from_the_intended_time_and_service_time_from_the_send() {
    // One connection, 100 ms answers, 20 arrivals/s: twice what it can serve, so requests queue
    // in loadgen. Arrival k (0..40) is due at (k + 1) x 50 ms but cannot go out before the k
    // answers ahead of it, 100 ms or more each: it waits at least k x 50 ms. The bounds below
    // follow from that alone, and a busy machine only adds delay, so a stall cannot break
    // them; medians, not tails, so one slow answer cannot either. Measured from the actual
    // send instead (coordinated omission), latency would be the service time, ~100 ms.
    let s = summary_of(&open_scenario(
        "co",
        "100ms",
        "  arrivals: constant\n  start_rate: 20\n  stages:\n    - { duration: 2s, rate: 20 }\n  connections: { protocol: http1, count: 1 }\n",
    ));
    let get = |m: &str| s[m].unwrap();
    assert_eq!(get("requests"), 40.0);
    let (latency_p50, service_p50) = (get("latency_p50"), get("service_time_p50"));
    // Service time: the mock's 100 ms and whatever the machine adds, never the queue (which
    // would put the median request's above a second).
    assert!(
        (95.0..700.0).contains(&service_p50),
        "service time p50 {service_p50}"
    );
    // At most 19 arrivals (k < 19) can be served within 19 x 50 + 100 = 1050 ms of being
    // due, so the median response time is at least that.
    assert!(latency_p50 >= 1000.0, "corrected p50 {latency_p50}");
    assert!(
        latency_p50 >= 2.0 * service_p50,
        "corrected p50 {latency_p50} vs service p50 {service_p50}"
    );
    // The last arrival is due at 2 s and waited for 39 answers: at least 39 x 50 + 100 ms.
    assert!(
        get("latency_max") >= 1900.0,
        "corrected max {}",
        get("latency_max")
    );
}

#[test]
fn requests_beyond_the_in_flight_cap_are_dropped_and_counted() {
    let s = summary_of(&open_scenario(
        "dropped",
        "400ms",
        "  arrivals: constant\n  start_rate: 50\n  stages:\n    - { duration: 1s, rate: 50 }\n  max_inflight: 2\n  connections: { protocol: http2, count: 1 }\n",
    ));
    let get = |m: &str| s[m].unwrap();
    assert_eq!(get("requests"), 50.0, "every scheduled arrival is counted");
    assert_eq!(get("requests"), get("ok") + get("failed") + get("dropped"));
    assert!(
        get("dropped") >= 40.0,
        "2 in flight of 400 ms cover ~5 arrivals: {}",
        get("dropped")
    );
    assert!(get("ok") >= 2.0);
}

#[test]
fn poisson_arrivals_average_the_rate() {
    let s = summary_of(&open_scenario(
        "poisson",
        "2ms",
        "  arrivals: poisson\n  start_rate: 200\n  stages:\n    - { duration: 2s, rate: 200 }\n  connections: { protocol: http2, count: 4 }\n",
    ));
    let requests = s["requests"].unwrap();
    // 400 expected; Poisson's standard deviation is 20: allow 5 of them.
    assert!((300.0..=500.0).contains(&requests), "{requests} arrivals");
}

#[test]
fn an_ad_hoc_rate_run_sends_about_rate_times_duration_through_the_open_model() {
    // No scenario file: `--target --rate --duration` against a mock, Poisson arrivals by
    // default. 50/s for 2 s is 100 expected, standard deviation 10: allow 4 of them.
    let mock = Server::mock(&["--ttft", "5ms", "--output-tokens", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let target = format!("http://{}", mock.addr);
    let mut command = std::process::Command::new(binary("loadgen"));
    command.args([
        "run",
        "--target",
        &target,
        "--rate",
        "50",
        "--duration",
        "2s",
        "--out",
    ]);
    let run = e2e::run(command.arg(&out), LIMIT);
    assert_eq!(run.code(), Some(0), "{run:?}");
    let s = read_summary(&out);
    let get = |m: &str| s[m].unwrap_or_else(|| panic!("{m} not measured: {s:?}"));
    let requests = get("requests");
    assert!((60.0..=140.0).contains(&requests), "{requests} arrivals");
    assert_eq!(get("ok"), requests, "{s:?}");
    assert_eq!(get("dropped"), 0.0);
    // Only the open model reports the uncorrected view, and its timeseries the planned rate.
    assert!(get("service_time_p50") > 0.0);
    let rates: Vec<String> = read_timeseries(&out)
        .iter()
        .map(|r| r["target_rate"].clone())
        .collect();
    assert!(
        rates.iter().any(|r| r.parse::<f64>() == Ok(50.0)),
        "{rates:?}"
    );
}

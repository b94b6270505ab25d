//! Goodput end to end: with `request.slo` set, the successful requests that met every bound
//! are counted, and `goodput` (per second) and `goodput_rate` (% of requests) in summary.csv
//! agree with each other and with what the mock's known first-token delay allows.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Four users for 1.5 s against one mock backend with first-token delay `ttft` (streams of 4
/// tokens at 1,000/s), under `slo`; the run must pass and its sums add up.
fn run_with_slo(name: &str, ttft: &str, slo: &str) -> BTreeMap<String, f64> {
    let text = format!(
        "name: {name}\nstack:\n  backends:\n    count: 1\n    profile: {{ ttft: \"{ttft}\", tokens_per_s: 1000, output_tokens: 4, seed: 11 }}\n  \
         forwarder: {{ enabled: false }}\n\
         request:\n  stream: true\n  slo: {slo}\n\
         load:\n  start_users: 4\n  stages:\n    - {{ duration: 1500ms, users: 4 }}\n  think_time: 10ms\n"
    );
    let (dir, scenario) = write_scenario(&text);
    let out = dir.path().join("report");
    let run = loadgen_run(&scenario, &out, &[], LIMIT);
    assert_eq!(run.code(), Some(0), "{run:?}");
    let s: BTreeMap<String, f64> = read_summary(&out)
        .into_iter()
        .map(|(m, v)| (m.clone(), v.unwrap_or_else(|| panic!("{m} not measured"))))
        .collect();
    assert!(s["ok"] >= 4.0, "{s:?}");
    assert_eq!(s["ok"], s["requests"], "the mock answers everything: {s:?}");
    // The two goodput figures are one count seen two ways: per second of the run (as
    // throughput is) and as a share of the requests. Both must give the same whole count.
    let good_from_rate = s["goodput_rate"] / 100.0 * s["requests"];
    let good_from_per_second = s["goodput"] / s["throughput"] * s["requests"];
    assert!(
        (good_from_rate - good_from_rate.round()).abs() < 0.05
            && (good_from_rate - good_from_per_second).abs() < 0.05,
        "goodput {} and goodput_rate {} disagree: {s:?}",
        s["goodput"],
        s["goodput_rate"]
    );
    s
}

/// The number of requests that met the SLO.
fn good(s: &BTreeMap<String, f64>) -> f64 {
    (s["goodput_rate"] / 100.0 * s["requests"]).round()
}

#[test]
fn an_slo_every_request_meets_makes_goodput_equal_to_ok() {
    let s = run_with_slo("met", "20ms", "{ ttft: 5s, tpot: 1s, latency: 10s }");
    assert_eq!(good(&s), s["ok"], "{s:?}");
    assert_eq!(s["goodput_rate"], s["success_rate"], "{s:?}");
    assert_eq!(s["goodput"], s["throughput"], "{s:?}");
}

#[test]
fn an_slo_no_request_can_meet_makes_goodput_zero_though_all_succeed() {
    // The mock waits 50 ms before the first token; nothing can start within 1 ms.
    let s = run_with_slo("missed", "50ms", "{ ttft: 1ms }");
    assert_eq!(s["success_rate"], 100.0, "{s:?}");
    assert_eq!((s["goodput"], s["goodput_rate"]), (0.0, 0.0), "{s:?}");
}

#[test]
fn an_slo_between_fast_and_slow_answers_counts_only_the_fast_ones() {
    // First tokens spread evenly over 10..400 ms against a 200 ms bound: about half meet it
    // (fewer on a busy machine, whose delays only add). Far from both "all" and "none".
    let s = run_with_slo("split", "uniform(10ms, 400ms)", "{ ttft: 200ms }");
    let rate = s["goodput_rate"];
    assert!((10.0..=90.0).contains(&rate), "goodput_rate {rate}: {s:?}");
    assert!(good(&s) >= 1.0 && good(&s) < s["ok"], "{s:?}");
}

//! `loadgen run` end to end: real loadgen, real forwarder, real mock backends, real sockets.

use std::time::Duration;

use e2e::*;

const LIMIT: Duration = Duration::from_secs(90);

#[test]
fn a_short_scenario_passes_and_its_reports_add_up() {
    let (dir, scenario) = write_scenario(&small_scenario(
        "short",
        "budgets:\n  success_rate: 99%\n  ttft_p99: 5s\n  requests: 10\n",
    ));
    let out = dir.path().join("report");
    let run = loadgen_run(&scenario, &out, &[], LIMIT);
    assert_eq!(
        run.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.contains("result: PASS"), "{}", run.stdout);

    let summary = read_summary(&out);
    let get = |m: &str| {
        summary
            .get(m)
            .copied()
            .flatten()
            .unwrap_or_else(|| panic!("{m} missing"))
    };
    let requests = get("requests");
    assert!(requests >= 10.0, "only {requests} requests");
    assert_eq!(
        requests,
        get("ok") + get("failed"),
        "requests = ok + failed"
    );
    assert_eq!(get("lost"), 0.0, "every scheduled request was counted");
    let by_class: f64 = summary
        .iter()
        .filter(|(m, _)| m.starts_with("failed_"))
        .map(|(_, v)| v.unwrap_or(0.0))
        .sum();
    assert_eq!(by_class, get("failed"), "failed = sum of failed_<class>");
    for metric in [
        "latency_p50",
        "latency_p99",
        "ttft_p50",
        "ttft_p99",
        "itl_p50",
        "output_tokens_per_s",
    ] {
        assert!(get(metric) > 0.0, "{metric} measured");
    }
    assert!(
        get("ttft_p50") <= get("latency_p50"),
        "first token comes before the end"
    );
    assert_eq!(get("users_max"), 10.0);

    // The per-second rows add up to the summary: nothing counted twice, nothing lost.
    let rows = read_timeseries(&out);
    assert!(rows.len() >= 2, "one row per second: {rows:?}");
    let column = |name: &str| -> f64 { rows.iter().map(|r| r[name].parse::<f64>().unwrap()).sum() };
    assert_eq!(column("requests"), requests);
    assert_eq!(column("ok"), get("ok"));
    assert!(rows.iter().any(|r| r["users"] == "10"));
    assert!(
        rows.iter().all(|r| !r["fwd_inflight"].is_empty()),
        "forwarder scraped every second"
    );
}

#[test]
fn a_budget_that_cannot_be_met_exits_1() {
    // The mock takes ~20 ms to the first token: a 1 ms budget cannot hold.
    let (dir, scenario) = write_scenario(&small_scenario("tight", "budgets:\n  ttft_p99: 1ms\n"));
    let out = dir.path().join("report");
    let run = loadgen_run(&scenario, &out, &[], LIMIT);
    assert_eq!(
        run.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.contains("FAIL  ttft_p99"), "{}", run.stdout);
    assert!(
        out.join("summary.csv").is_file(),
        "reports are written even when a budget fails"
    );
}

#[test]
fn errors_from_backends_are_counted_by_class_and_fail_the_success_budget() {
    // Straight to one backend: this is about how loadgen classifies answers, not about what a
    // gateway's breaker or retries make of them.
    let text = small_scenario("errors", "budgets:\n  success_rate: 99%\n")
        .replace(
            "output_tokens: uniform(4, 10)",
            "output_tokens: uniform(4, 10)\n      error_rate: 50%\n      error_status: 503\n  forwarder: { enabled: false }",
        )
        .replace("count: 2", "count: 1");
    let (dir, scenario) = write_scenario(&text);
    let out = dir.path().join("report");
    let run = loadgen_run(&scenario, &out, &[], LIMIT);
    assert_eq!(
        run.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    let summary = read_summary(&out);
    let get = |m: &str| summary[m].unwrap();
    assert!(get("failed_http_5xx") > 0.0);
    assert_eq!(
        get("failed"),
        get("failed_http_5xx"),
        "503s are the only failures"
    );
    assert_eq!(get("requests"), get("ok") + get("failed"));
    let rate = get("success_rate");
    assert!(
        (20.0..80.0).contains(&rate),
        "about half succeed, got {rate}%"
    );
}

#[test]
fn a_malformed_scenario_exits_2_naming_line_column_and_field() {
    let text = small_scenario("bad", "").replace(
        "think_time: uniform(20ms, 60ms)",
        "think_time: uniform(20ms)",
    );
    let (dir, scenario) = write_scenario(&text);
    let run = loadgen_run(&scenario, &dir.path().join("report"), &[], LIMIT);
    assert_eq!(run.code(), Some(2), "{run:?}");
    let line = text.lines().position(|l| l.contains("think_time")).unwrap() + 1;
    let expected = format!("scenario.yaml:{line}:");
    assert!(
        run.stderr.contains(&expected),
        "want {expected} in: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("load.think_time"),
        "names the field: {}",
        run.stderr
    );
    assert!(
        !dir.path().join("report").exists(),
        "bad input starts nothing"
    );

    let mut validate = std::process::Command::new(binary("loadgen"));
    let checked = e2e::run(validate.arg("validate").arg(&scenario), LIMIT);
    assert_eq!(checked.code(), Some(2));
    assert!(checked.stderr.contains(&expected), "{}", checked.stderr);
}

#[test]
fn unknown_keys_and_bad_usage_exit_2() {
    let text = small_scenario("typo", "budgets:\n  latency_p42: 1s\n");
    let (dir, scenario) = write_scenario(&text);
    let run = loadgen_run(&scenario, &dir.path().join("report"), &[], LIMIT);
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr.contains("budgets.latency_p42"), "{}", run.stderr);

    let mut usage = std::process::Command::new(binary("loadgen"));
    let run = e2e::run(usage.args(["run", "--duration", "soon", "x.yaml"]), LIMIT);
    assert_eq!(run.code(), Some(2), "{run:?}");
}

#[test]
fn a_stack_that_cannot_start_exits_3_and_leaves_nothing_running() {
    // The forwarder rejects its config and exits: the stack never becomes ready.
    let (dir, scenario) = write_scenario(&small_scenario("nostack", "").replace(
        "load:\n",
        "  forwarder:\n    args: [\"--max-inflight\", \"lots\"]\nload:\n",
    ));
    let run = loadgen_run(&scenario, &dir.path().join("report"), &[], LIMIT);
    assert_eq!(
        run.code(),
        Some(3),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stderr.contains("forwarder"),
        "says which part failed: {}",
        run.stderr
    );
    // The backends had started before the forwarder failed; they must be gone.
    let logs = dir.path().join("report").join("logs");
    assert!(logs.join("backend-0.log").is_file());
    assert!(survivors(&stack_pids(&run.stdout), Duration::from_secs(5)).is_empty());
}

#[test]
fn an_unreachable_target_exits_3() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let text = format!(
        "name: nowhere\ntarget: http://127.0.0.1:{port}\nload:\n  stages:\n    - {{ duration: 1s, users: 1 }}\n"
    );
    let (dir, scenario) = write_scenario(&text);
    let run = loadgen_run(&scenario, &dir.path().join("report"), &[], LIMIT);
    assert_eq!(run.code(), Some(3), "{run:?}");
    assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
}

#[test]
fn duration_squeezes_the_whole_scenario() {
    // Written as 40 s of stages; squeezed into 2 s it must end in a few seconds.
    let text = small_scenario("squeezed", "").replace(
        "duration: 1s, users: 10 }\n    - { duration: 1s",
        "duration: 20s, users: 10 }\n    - { duration: 20s",
    );
    let (dir, scenario) = write_scenario(&text);
    let out = dir.path().join("report");
    // Built (or found up to date) before the clock starts: only the run is timed.
    let loadgen = binary("loadgen");
    let mut command = std::process::Command::new(loadgen);
    command
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .args(["--duration", "2s"]);
    let started = std::time::Instant::now();
    let run = e2e::run(&mut command, LIMIT);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let duration = read_summary(&out)["duration"].unwrap();
    assert!((1.5..10.0).contains(&duration), "ran {duration}s");
}

#[test]
fn users_max_counts_a_spike_held_between_two_report_ticks() {
    // 5 users, a step to 40 from 1.2 s to 1.7 s, and back: the reporter's once-a-second
    // samples (at 1 s and 2 s) never see the spike, but the summary's peak must.
    let text = "name: blip\nstack:\n  backends:\n    count: 1\n    profile: { ttft: 5ms, tokens_per_s: 1000, output_tokens: 2 }\n  \
                forwarder: { enabled: false }\n\
                load:\n  start_users: 5\n  stages:\n    - { duration: 1200ms, users: 5 }\n    \
                - { duration: 500ms, users: 40, shape: step }\n    - { duration: 1300ms, users: 5, shape: step }\n  \
                think_time: 100ms\n";
    let (dir, scenario) = write_scenario(text);
    let out = dir.path().join("report");
    let run = loadgen_run(&scenario, &out, &[], LIMIT);
    assert_eq!(run.code(), Some(0), "{run:?}");
    let summary = read_summary(&out);
    assert_eq!(summary["users_max"], Some(40.0), "{summary:?}");
}

#[test]
fn repeated_questions_are_answered_from_the_forwarders_cache_and_the_summary_says_how_often() {
    // Three distinct questions (user ids 1..3, the question's rank) asked over and over: after
    // the first answer to each, the forwarder's cache answers. The hit rate comes from its
    // /metrics, lands in summary.csv, and can be a budget.
    let text = small_scenario(
        "cache",
        "request:\n  stream: false\n  user_ids: uniform(1, 3)\n  \
         body: { model: \"{{model}}\", messages: [{ role: user, content: \"FAQ {{user_id}}\" }] }\n\
         budgets:\n  cache_hit_rate: 50%\n",
    )
    .replace(
        "stack:\n",
        "stack:\n  forwarder:\n    args: [\"--cache\"]\n",
    );
    let (dir, scenario) = write_scenario(&text);
    let out = dir.path().join("report");
    let run = loadgen_run(&scenario, &out, &[], LIMIT);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout, run.stderr);
    let summary = read_summary(&out);
    let hit_rate = summary["cache_hit_rate"].expect("cache_hit_rate measured");
    let requests = summary["requests"].unwrap();
    // The first askings of each question miss (several users may ask before one answer is
    // cached); every later one hits.
    assert!(requests >= 20.0, "{requests} requests");
    assert!(hit_rate > 50.0 && hit_rate < 100.0, "{hit_rate}");
}

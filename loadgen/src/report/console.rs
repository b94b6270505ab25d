//! The run summary as text for the terminal, from a report read back (`loadgen report DIR`).

use std::fmt::Write as _;

use super::folder::SummaryFile;
use super::run_meta::RunMeta;
use super::summary::format_value;

/// Lines like those `loadgen run` prints at its end.
pub fn render(summary: &SummaryFile, meta: Option<&RunMeta>) -> String {
    let mut out = String::new();
    if let Some(m) = meta {
        let _ = writeln!(
            out,
            "scenario {}: {} -> {} ({:.1} s{}), loadgen {}",
            m.scenario_name(),
            m.started_at,
            m.ended_at,
            m.duration_s,
            if m.stopped_early {
                ", stopped early"
            } else {
                ""
            },
            m.loadgen_version
        );
    }
    let count = |name: &str| {
        summary
            .value(name)
            .map_or_else(|| "-".to_owned(), format_value)
    };
    // `dropped` only exists in the open model; show it whenever it has a count.
    let dropped = match summary.value("dropped") {
        Some(d) if d > 0.0 => format!(" + dropped {}", format_value(d)),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "requests {} = ok {} + failed {}{dropped}",
        count("requests"),
        count("ok"),
        count("failed")
    );
    if let Some(lost) = summary.value("lost").filter(|l| *l > 0.0) {
        let _ = writeln!(
            out,
            "LOST {} requests: scheduled but never counted (a loadgen bug; please report it)",
            format_value(lost)
        );
    }
    let failures: Vec<String> = summary
        .metrics
        .iter()
        // `failed_during_faults` is a resilience figure (shown below), not a failure class.
        .filter(|m| m.name.starts_with("failed_") && m.name != "failed_during_faults")
        .filter(|m| m.value.is_some_and(|v| v > 0.0))
        .map(|m| {
            format!(
                "{} {}",
                &m.name["failed_".len()..],
                format_value(m.value.unwrap_or(0.0))
            )
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "failures by class: {}", failures.join(", "));
    }
    for group in [
        &["success_rate", "throughput", "goodput"][..],
        &["latency_p50", "latency_p90", "latency_p99", "latency_max"],
        &["service_time_p50", "service_time_p99"],
        &[
            "ttft_p50",
            "ttft_p99",
            "itl_p50",
            "itl_p99",
            "output_tokens_per_s",
        ],
        &["queue_depth_max", "shed"],
        &crate::chaos::figures::METRICS,
    ] {
        let parts: Vec<String> = group
            .iter()
            .filter_map(|name| summary.get(name))
            .map(|m| match m.value {
                Some(v) => format!("{} {} {}", m.name, format_value(v), m.unit),
                None => format!("{} -", m.name),
            })
            .collect();
        if !parts.is_empty() {
            let _ = writeln!(out, "{}", parts.join("  "));
        }
    }
    if let Some(m) = meta.filter(|m| !m.budgets.is_empty()) {
        let _ = writeln!(out, "budgets:");
        for b in &m.budgets {
            let op = if b.bound == "at_least" { ">=" } else { "<=" };
            let measured = b.measured.map_or_else(
                || "not measured".to_owned(),
                |v| format!("{} {}", format_value(v), b.unit),
            );
            let _ = writeln!(
                out,
                "  {}  {:<22} {measured:>18}  (budget {op} {} {})",
                if b.passed { "PASS" } else { "FAIL" },
                b.metric,
                format_value(b.limit),
                b.unit
            );
        }
        let _ = writeln!(out, "result: {}", m.verdict.result.to_uppercase());
    }
    out
}

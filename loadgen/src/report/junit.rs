//! `budgets.xml`: the budget verdicts as a JUnit XML report, one test case per budget, so CI
//! systems that show test results (GitHub, GitLab, Jenkins) show the budgets too. A missed budget
//! is a `<failure>` whose message gives the measured value and the limit.

use std::fmt::Write as _;
use std::path::Path;

use super::budget::{Bound, Verdict};
use super::summary::format_value;

/// Renders the report for a scenario's verdicts; `seconds` is the run's length.
pub fn render(scenario: &str, verdicts: &[Verdict], seconds: f64, timestamp: &str) -> String {
    let failures = verdicts.iter().filter(|v| !v.passed).count();
    let suite = format!("loadgen.budgets.{scenario}");
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"loadgen\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{seconds:.3}\">",
        verdicts.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" \
         time=\"{seconds:.3}\" timestamp=\"{}\">",
        escape(&suite),
        verdicts.len(),
        escape(timestamp)
    );
    for verdict in verdicts {
        let b = &verdict.budget;
        let op = match b.bound {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        let unit = b.unit.label();
        let measured = verdict.measured.map_or_else(
            || "not measured".to_owned(),
            |v| format!("{} {unit}", format_value(v)),
        );
        let limit = format!("{op} {} {unit}", format_value(b.limit));
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"0\">",
            escape(&suite),
            escape(&b.metric)
        );
        if verdict.passed {
            let _ = write!(
                out,
                "<system-out>{}</system-out>",
                escape(&format!("{} = {measured}, budget {limit}", b.metric))
            );
        } else {
            let message = format!("{} = {measured}, budget {limit}", b.metric);
            let _ = write!(
                out,
                "\n      <failure type=\"budget\" message=\"{}\">measured: {}\nlimit: {}</failure>\n    ",
                escape(&message),
                escape(&measured),
                escape(&limit)
            );
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

pub fn write(
    path: &Path,
    scenario: &str,
    verdicts: &[Verdict],
    seconds: f64,
    timestamp: &str,
) -> std::io::Result<()> {
    std::fs::write(path, render(scenario, verdicts, seconds, timestamp))
}

/// Escapes text for XML attributes and character data.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && c != '\t' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::budget::Budget;

    #[test]
    fn one_case_per_budget_and_a_failure_for_each_miss() {
        let verdicts = vec![
            Budget::parse("latency_p99", "300ms")
                .unwrap()
                .judge(Some(412.5)),
            Budget::parse("success_rate", "99%")
                .unwrap()
                .judge(Some(100.0)),
            Budget::parse("ttft_p99", "1s").unwrap().judge(None),
        ];
        let xml = render("smoke<&>", &verdicts, 12.0, "2026-01-01T00:00:00Z");
        assert!(xml.contains("tests=\"3\" failures=\"2\""), "{xml}");
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert_eq!(xml.matches("<failure ").count(), 2);
        assert!(
            xml.contains("latency_p99 = 412.500 ms, budget &lt;= 300 ms"),
            "{xml}"
        );
        assert!(xml.contains("ttft_p99 = not measured"), "{xml}");
        assert!(xml.contains("loadgen.budgets.smoke&lt;&amp;&gt;"));
    }
}

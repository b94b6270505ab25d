//! The comparison as a table: aligned text for terminals, Markdown for pull-request comments.

use super::judge::{Line, Mark};
use crate::report::summary::format_value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
}

const HEAD: [&str; 7] = [
    "metric",
    "base",
    "new",
    "delta",
    "change",
    "tolerance",
    "verdict",
];

fn cells(line: &Line, markdown: bool) -> [String; 7] {
    let value = |v: Option<f64>| {
        v.map_or_else(
            || "-".to_owned(),
            |v| {
                format!("{} {}", format_value(v), line.unit)
                    .trim()
                    .to_owned()
            },
        )
    };
    let delta = line.delta().map_or_else(
        || "-".to_owned(),
        |d| format!("{}{}", sign(d), format_value(d.abs())),
    );
    let change = line
        .relative()
        .map_or_else(|| "-".to_owned(), |r| format!("{}{:.1}%", sign(r), r.abs()));
    let verdict = match (line.mark, markdown) {
        (Mark::Worse, true) => "❌ worse".to_owned(),
        (Mark::Better, true) => "✅ better".to_owned(),
        (mark, _) => mark.word().to_owned(),
    };
    [
        line.metric.clone(),
        value(line.base),
        value(line.new),
        delta,
        change,
        line.tolerance.map(|t| t.label()).unwrap_or_default(),
        verdict,
    ]
}

fn sign(v: f64) -> &'static str {
    if v > 0.0 {
        "+"
    } else if v < 0.0 {
        "-"
    } else {
        ""
    }
}

pub fn render(lines: &[Line], base: &str, new: &str, format: Format) -> String {
    let worse = lines.iter().filter(|l| l.mark == Mark::Worse).count();
    let better = lines.iter().filter(|l| l.mark == Mark::Better).count();
    let verdict = if worse > 0 {
        format!("REGRESSION: {worse} metric(s) worse beyond tolerance, {better} better")
    } else {
        format!("OK: no metric worse beyond tolerance, {better} better")
    };
    let rows: Vec<[String; 7]> = lines
        .iter()
        .map(|l| cells(l, format == Format::Markdown))
        .collect();
    let mut out = String::new();
    match format {
        Format::Markdown => {
            out.push_str(&format!(
                "### loadgen compare\n\n**base** `{base}` vs **new** `{new}`\n\n"
            ));
            out.push_str(&format!("| {} |\n", HEAD.join(" | ")));
            out.push_str("|:--|--:|--:|--:|--:|--:|:--|\n");
            for row in &rows {
                out.push_str(&format!("| {} |\n", row.join(" | ")));
            }
            out.push_str(&format!("\n**{verdict}**\n"));
        }
        Format::Text => {
            out.push_str(&format!("base: {base}\nnew:  {new}\n\n"));
            let mut widths = HEAD.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let line = |cells: &[String]| {
                let mut text = String::new();
                for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                    let pad = w - cell.chars().count();
                    if i == 0 || i == 6 {
                        text.push_str(cell);
                        text.push_str(&" ".repeat(pad));
                    } else {
                        text.push_str(&" ".repeat(pad));
                        text.push_str(cell);
                    }
                    text.push_str("  ");
                }
                text.trim_end().to_owned() + "\n"
            };
            out.push_str(&line(&HEAD.map(String::from)));
            for row in &rows {
                out.push_str(&line(row));
            }
            out.push_str(&format!("\nresult: {verdict}\n"));
        }
    }
    out
}

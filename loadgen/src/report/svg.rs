//! Small inline SVG line charts for report.html: no scripts, no network, any browser.

use std::fmt::Write as _;

/// One line of a chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    /// (x, y) points; `None` y values break the line (nothing was measured there).
    pub points: Vec<(f64, Option<f64>)>,
}

/// A chart: series, axis titles, and optional x tick labels (positions in x units).
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Series<'a>>,
    pub x_ticks: Option<Vec<(f64, String)>>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;

impl Chart<'_> {
    pub fn render(&self) -> String {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1));
        let (x_min, x_max) = bounds(xs);
        let (_, y_max) = bounds(ys);
        let y_max = nice_ceiling(y_max.max(1e-9));
        let x_span = (x_max - x_min).max(1e-9);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x_min) / x_span * plot_w;
        let sy = |y: f64| TOP + plot_h - (y / y_max).clamp(0.0, 1.0) * plot_h;

        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
             role=\"img\" aria-label=\"{}\" class=\"chart\">",
            escape(self.title)
        );
        let _ = write!(
            out,
            "<text x=\"{LEFT}\" y=\"18\" class=\"title\">{}</text>",
            escape(self.title)
        );
        // Horizontal grid with y labels.
        for i in 0..=4 {
            let y = y_max * f64::from(i) / 4.0;
            let py = sy(y);
            let _ = write!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{py:.1}\" y2=\"{py:.1}\" class=\"grid\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
                WIDTH - RIGHT,
                LEFT - 6.0,
                py + 4.0,
                short(y)
            );
        }
        let ticks = self.x_ticks.clone().unwrap_or_else(|| {
            (0..=5)
                .map(|i| {
                    let x = x_min + x_span * f64::from(i) / 5.0;
                    (x, short(x))
                })
                .collect()
        });
        for (x, label) in ticks.iter().filter(|(x, _)| *x >= x_min && *x <= x_max) {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
                sx(*x),
                TOP + plot_h + 16.0,
                escape(label)
            );
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">{}</text>\
             <text x=\"14\" y=\"{:.1}\" class=\"axis\" transform=\"rotate(-90 14 {:.1})\" \
             text-anchor=\"middle\">{}</text>",
            LEFT + plot_w / 2.0,
            HEIGHT - 6.0,
            escape(self.x_label),
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(self.y_label)
        );
        for series in &self.series {
            let mut path = String::new();
            let mut pen_down = false;
            for &(x, y) in &series.points {
                match y {
                    Some(y) => {
                        let _ = write!(
                            path,
                            "{}{:.1},{:.1} ",
                            if pen_down { "L" } else { "M" },
                            sx(x),
                            sy(y)
                        );
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            if !path.is_empty() {
                let _ = write!(
                    out,
                    "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\"><title>{}</title></path>",
                    path.trim_end(),
                    series.color,
                    escape(series.name)
                );
            }
        }
        // Legend along the top right.
        let mut lx = WIDTH - RIGHT;
        for series in self.series.iter().rev() {
            lx -= 12.0 + 7.0 * series.name.len() as f64;
            let _ = write!(
                out,
                "<rect x=\"{lx:.1}\" y=\"9\" width=\"9\" height=\"9\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"17\" class=\"tick\">{}</text>",
                series.color,
                lx + 12.0,
                escape(series.name)
            );
        }
        out.push_str("</svg>");
        out
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f64, f64)>, v| {
            Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        })
        .unwrap_or((0.0, 1.0))
}

/// The next "round" number at or above `v` whose quarters are round too (the grid has four
/// steps): 1, 1.2, 1.6, 2, 2.4, 3.2, 4, 6, 8 times a power of ten.
fn nice_ceiling(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 1.2, 1.6, 2.0, 2.4, 3.2, 4.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

/// A compact axis label.
fn short(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_its_lines_and_breaks_them_at_gaps() {
        let chart = Chart {
            title: "latency <ms>",
            x_label: "elapsed (s)",
            y_label: "ms",
            series: vec![Series {
                name: "p99",
                color: "#c00",
                points: vec![
                    (0.0, Some(1.0)),
                    (1.0, None),
                    (2.0, Some(3.0)),
                    (3.0, Some(2.0)),
                ],
            }],
            x_ticks: None,
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("latency &lt;ms&gt;"));
        let path = svg.split("<path d=\"").nth(1).unwrap();
        assert_eq!(
            path.split('"').next().unwrap().matches('M').count(),
            2,
            "{path}"
        );
        assert_eq!(nice_ceiling(3.3), 4.0);
        assert_eq!(nice_ceiling(180.0), 200.0);
        assert_eq!(nice_ceiling(245.0), 320.0);
    }
}

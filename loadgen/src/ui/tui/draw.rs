//! Drawing the full-screen view from its [`State`]: header with stage progress, throughput and
//! latency charts, the HDR percentile spectrum, streams, outcomes, the forwarder, and a help
//! line. Pure: it only paints a frame, so tests render it on ratatui's TestBackend.
//!
//! A terminal smaller than the full layout needs gets a compact text view instead of squeezed
//! charts; a tiny one gets a single line.

use std::time::Duration;

use ratatui::Frame as Screen;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Chart, Dataset, Gauge, GraphType, LegendPosition, Paragraph, Row, Table,
};

use super::state::State;
use crate::ui::frame::{Frame, Percentiles};

/// The full layout needs this much room.
pub const FULL_WIDTH: u16 = 80;
pub const FULL_HEIGHT: u16 = 24;

const HELP: &str = " q / Ctrl-C: stop (in-flight requests finish, reports are written)   \
                    press again: abandon in-flight requests ";

/// Paints the view; `clock` is the run's elapsed time now (between frames too).
pub fn render(screen: &mut Screen, state: &State, clock: Duration) {
    let area = screen.area();
    if area.width < 20 || area.height < 3 {
        screen.render_widget(Paragraph::new(one_line(state, clock)), area);
    } else if area.width < FULL_WIDTH || area.height < FULL_HEIGHT {
        compact(screen, area, state, clock);
    } else {
        full(screen, area, state, clock);
    }
}

fn full(screen: &mut Screen, area: Rect, state: &State, clock: Duration) {
    let [header, charts, panels, help] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Percentage(50),
        Constraint::Min(10),
        Constraint::Length(1),
    ])
    .areas(area);
    header_gauge(screen, header, state, clock);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(charts);
    throughput_chart(screen, left, state);
    latency_chart(screen, right, state);

    let mut widths = vec![Constraint::Fill(3), Constraint::Fill(3)];
    if state.run.streaming {
        widths.push(Constraint::Fill(4));
    }
    if state.run.with_forwarder {
        widths.push(Constraint::Fill(3));
    }
    if !state.run.faults.is_empty() {
        widths.push(Constraint::Fill(3));
    }
    let cells = Layout::horizontal(widths).split(panels);
    spectrum(screen, cells[0], state);
    outcomes(screen, cells[1], state);
    let mut next = 2;
    if state.run.streaming {
        streams(screen, cells[next], state);
        next += 1;
    }
    if state.run.with_forwarder {
        forwarder(screen, cells[next], state);
        next += 1;
    }
    if !state.run.faults.is_empty() {
        faults(screen, cells[next], state, clock);
    }
    screen.render_widget(
        Paragraph::new(Line::from(Span::styled(
            HELP,
            Style::new().fg(Color::Black).bg(Color::Gray),
        ))),
        help,
    );
}

/// The fault timeline: each scheduled fault with its window; active ones highlighted, past
/// ones dimmed.
fn faults(screen: &mut Screen, area: Rect, state: &State, clock: Duration) {
    let active = state
        .last()
        .map(|f| f.active_faults.as_slice())
        .unwrap_or_default();
    // Two lines a fault (name, then window and state): the panel shares the row with four
    // others, so one line would cut the window off.
    let lines: Vec<Line> = state
        .run
        .faults
        .iter()
        .flat_map(|fault| {
            let window = match fault.end {
                Some(end) => format!("{}-{}", clock_text(fault.at), clock_text(end)),
                None => format!("{}-end", clock_text(fault.at)),
            };
            let (mark, style) = if active.contains(&fault.name) {
                (
                    "ACTIVE",
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                )
            } else if fault.end.is_some_and(|end| end <= clock) {
                ("done", Style::new().fg(Color::DarkGray))
            } else {
                ("", Style::new())
            };
            [
                Line::from(Span::styled(fault.name.clone(), style)),
                Line::from(Span::styled(format!("  {window} {mark}"), style)),
            ]
        })
        .collect();
    let title = format!(" Faults · {} active ", active.len());
    screen.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}

/// One line of a time chart.
fn line_series<'a>(name: &'a str, color: Color, data: &'a [(f64, f64)]) -> Dataset<'a> {
    Dataset::default()
        .name(name)
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(Style::new().fg(color))
        .data(data)
}

/// A chart over the run's elapsed time, legend top left; the caller sets the y axis.
fn time_chart<'a>(datasets: Vec<Dataset<'a>>, title: String, bounds: [f64; 2]) -> Chart<'a> {
    Chart::new(datasets)
        .legend_position(Some(LegendPosition::TopLeft))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
        .block(Block::bordered().title(title))
        .x_axis(
            Axis::default()
                .bounds(bounds)
                .labels(x_labels(bounds))
                .style(Style::new().fg(Color::DarkGray)),
        )
}

/// `00:12 / 00:30`.
fn clock_text(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

fn level_text(state: &State, level: f64) -> String {
    if state.run.open {
        format!("rate {level:.0}/s")
    } else {
        format!("users {level:.0}")
    }
}

/// Stage, level, time and phase, e.g. `stage 2/3 · users 10 -> 20 · 00:12 / 00:30 · 18s left`.
fn status(state: &State, clock: Duration) -> String {
    let run = &state.run;
    let level = state.last().map_or(0.0, |f| f.level);
    let mut parts = Vec::new();
    match state.stage_at(clock) {
        Some((i, stage)) => {
            parts.push(format!("stage {}/{}", i + 1, run.stages.len()));
            parts.push(format!(
                "{} -> {:.0}",
                level_text(state, level),
                stage.target
            ));
        }
        None => parts.push(level_text(state, level)),
    }
    parts.push(format!("{} / {}", clock_text(clock), clock_text(run.total)));
    let draining = state.last().is_some_and(|f| f.draining);
    if state.stop_presses >= 2 {
        parts.push("abandoning in-flight requests".into());
    } else if state.stop_presses == 1 {
        parts.push("stopping: finishing in-flight requests (q again to abandon)".into());
    } else if draining {
        parts.push("stages done: finishing in-flight requests".into());
    } else {
        parts.push(format!(
            "{}s left",
            run.total.saturating_sub(clock).as_secs()
        ));
    }
    parts.join(" · ")
}

fn header_gauge(screen: &mut Screen, area: Rect, state: &State, clock: Duration) {
    let total = state.run.total.as_secs_f64();
    let ratio = if total > 0.0 {
        (clock.as_secs_f64() / total).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let title = format!(" loadgen · {} ", state.run.title);
    let gauge = Gauge::default()
        .block(Block::bordered().title(Span::styled(
            title,
            Style::new().add_modifier(Modifier::BOLD),
        )))
        .gauge_style(Style::new().fg(Color::Cyan).bg(Color::Black))
        .ratio(ratio)
        .label(status(state, clock));
    screen.render_widget(gauge, area);
}

/// The frames that fit a chart `width` cells wide (braille doubles the resolution).
fn window(state: &State, width: u16) -> impl Iterator<Item = &Frame> {
    let keep = usize::from(width.saturating_sub(10)).max(10) * 2;
    let skip = state.frames.len().saturating_sub(keep);
    state.frames.iter().skip(skip)
}

fn x_bounds(points: &[(f64, f64)]) -> [f64; 2] {
    let lo = points.first().map_or(0.0, |p| p.0);
    let hi = points.last().map_or(1.0, |p| p.0).max(lo + 1.0);
    [lo, hi]
}

fn x_labels(bounds: [f64; 2]) -> Vec<Line<'static>> {
    vec![
        Line::from(format!("{:.0}s", bounds[0])),
        Line::from(format!("{:.0}s", bounds[1])),
    ]
}

fn throughput_chart(screen: &mut Screen, area: Rect, state: &State) {
    let frames: Vec<&Frame> = window(state, area.width).collect();
    let ok: Vec<(f64, f64)> = frames
        .iter()
        .map(|f| (f.elapsed.as_secs_f64(), f.throughput))
        .collect();
    let failed: Vec<(f64, f64)> = frames
        .iter()
        .map(|f| (f.elapsed.as_secs_f64(), f.failed_per_s))
        .collect();
    let top = ok.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let bounds = x_bounds(&ok);
    let now = state.last().map_or(0.0, |f| f.throughput);
    let datasets = vec![
        line_series("requests/s", Color::Cyan, &ok),
        line_series("failed/s", Color::Red, &failed),
    ];
    let chart = time_chart(
        datasets,
        format!(" Throughput and errors · {now:.1} req/s "),
        bounds,
    )
    .y_axis(
        Axis::default()
            .bounds([0.0, top])
            .labels(vec![Line::from("0"), Line::from(format!("{top:.0}"))])
            .style(Style::new().fg(Color::DarkGray)),
    );
    screen.render_widget(chart, area);
}

fn log_ms(v: Option<f64>) -> Option<f64> {
    v.map(|ms| ms.max(0.001).log10())
}

fn ms_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{}s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms}ms")
    }
}

/// p50, p90 and p99 of each second, on a log scale so a tail does not flatten the median.
fn latency_chart(screen: &mut Screen, area: Rect, state: &State) {
    let frames: Vec<&Frame> = window(state, area.width).collect();
    let line = |pick: fn(&Percentiles) -> Option<f64>| -> Vec<(f64, f64)> {
        frames
            .iter()
            .filter_map(|f| Some((f.elapsed.as_secs_f64(), log_ms(pick(&f.latency))?)))
            .collect()
    };
    let p50 = line(|p| p.p50);
    let p90 = line(|p| p.p90);
    let p99 = line(|p| p.p99);
    let all = p50.iter().chain(&p90).chain(&p99).map(|p| p.1);
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo > hi {
        (0.0, 3.0)
    } else {
        (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
    };
    let labels: Vec<Line> = (lo as i32..=hi as i32)
        .map(|k| Line::from(ms_label(10f64.powi(k))))
        .collect();
    let bounds = x_bounds(if p50.is_empty() { &p99 } else { &p50 });
    let now = state
        .last()
        .and_then(|f| f.latency.p99)
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}ms"));
    let datasets = vec![
        line_series("p50", Color::Green, &p50),
        line_series("p90", Color::Yellow, &p90),
        line_series("p99", Color::Red, &p99),
    ];
    let chart = time_chart(
        datasets,
        format!(" Latency p50/p90/p99 (log) · p99 {now} "),
        bounds,
    )
    .y_axis(
        Axis::default()
            .bounds([lo, hi])
            .labels(labels)
            .style(Style::new().fg(Color::DarkGray)),
    );
    screen.render_widget(chart, area);
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

fn quantile_label(q: f64) -> String {
    if q >= 1.0 {
        "max".to_owned()
    } else {
        let text = format!("{:.3}", q * 100.0);
        format!("p{}", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// The whole run's latency spectrum with a log-scaled bar per quantile.
fn spectrum(screen: &mut Screen, area: Rect, state: &State) {
    let block = Block::bordered().title(" Spectrum (run, ms) ");
    let Some(frame) = state.last().filter(|f| !f.spectrum.is_empty()) else {
        screen.render_widget(
            Paragraph::new("no successful request yet").block(block),
            area,
        );
        return;
    };
    let max = frame.spectrum.last().map_or(1.0, |p| p.1).max(0.001);
    let min = frame.spectrum.first().map_or(0.001, |p| p.1).max(0.001);
    let bar_room = usize::from(area.width.saturating_sub(22)).max(1);
    let rows: Vec<Row> = frame
        .spectrum
        .iter()
        .map(|&(q, v)| {
            // Log scale between the median and the max, so the tail's steps are visible.
            let span = (max / min).log10();
            let share = if span > 0.0 {
                ((v.max(min) / min).log10() / span).clamp(0.0, 1.0)
            } else {
                1.0
            };
            let bar = "█".repeat(1 + (share * (bar_room - 1) as f64).round() as usize);
            Row::new(vec![quantile_label(q), format!("{v:.2}"), bar])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Fill(1),
        ],
    )
    .block(block)
    .style(Style::new().fg(Color::White));
    screen.render_widget(table, area);
}

fn outcomes(screen: &mut Screen, area: Rect, state: &State) {
    let block = Block::bordered().title(" Outcomes (run) ");
    let Some(f) = state.last() else {
        screen.render_widget(
            Paragraph::new("waiting for the first second").block(block),
            area,
        );
        return;
    };
    let rate = if f.requests > 0 {
        format!("{:.2}%", f.ok as f64 * 100.0 / f.requests as f64)
    } else {
        "-".to_owned()
    };
    let mut rows = vec![
        Row::new(vec!["requests".to_owned(), f.requests.to_string()]),
        Row::new(vec!["ok".to_owned(), f.ok.to_string()]).style(Style::new().fg(Color::Green)),
        Row::new(vec!["success".to_owned(), rate]),
        Row::new(vec!["failed".to_owned(), f.failed().to_string()]).style(if f.failed() > 0 {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        }),
    ];
    for (class, n) in f.failed_by_class.iter().filter(|(_, n)| *n > 0) {
        rows.push(
            Row::new(vec![format!("  {class}"), n.to_string()]).style(Style::new().fg(Color::Red)),
        );
    }
    if state.run.open {
        rows.push(Row::new(vec!["dropped".to_owned(), f.dropped.to_string()]));
    }
    let table = Table::new(rows, [Constraint::Length(14), Constraint::Fill(1)]).block(block);
    screen.render_widget(table, area);
}

fn streams(screen: &mut Screen, area: Rect, state: &State) {
    let block = Block::bordered().title(" Streams (ms): last second | run ");
    let Some(f) = state.last() else {
        screen.render_widget(Paragraph::new("").block(block), area);
        return;
    };
    let header = Row::new(vec!["", "p50", "p99", "run p50", "run p99"])
        .style(Style::new().add_modifier(Modifier::BOLD));
    let row = |name: &str, now: &Percentiles, run: &Percentiles| {
        Row::new(vec![
            name.to_owned(),
            ms(now.p50),
            ms(now.p99),
            ms(run.p50),
            ms(run.p99),
        ])
    };
    let rows = vec![
        row("TTFT", &f.ttft, &f.total_ttft),
        row("ITL", &f.itl, &f.total_itl),
        Row::new(vec![
            "tok/s".to_owned(),
            format!("{:.0}", f.output_tokens_per_s),
        ]),
    ];
    let table = Table::new(
        rows,
        [
            Constraint::Length(5),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Length(7),
        ],
    )
    .header(header)
    .block(block);
    screen.render_widget(table, area);
}

fn forwarder(screen: &mut Screen, area: Rect, state: &State) {
    let block = Block::bordered().title(" Forwarder /metrics ");
    let Some(fwd) = state.last().and_then(|f| f.forwarder) else {
        screen.render_widget(Paragraph::new("not scraped yet").block(block), area);
        return;
    };
    let rows = vec![
        Row::new(vec!["in flight".to_owned(), format!("{:.0}", fwd.inflight)]),
        Row::new(vec![
            "queue depth".to_owned(),
            format!("{:.0}", fwd.queue_depth),
        ]),
        Row::new(vec![
            "queue max".to_owned(),
            format!("{:.0}", fwd.queue_depth_max),
        ]),
        Row::new(vec!["shed".to_owned(), format!("{:.0}", fwd.shed_total)]).style(
            if fwd.shed_total > 0.0 {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            },
        ),
        {
            let open: Vec<String> = fwd.open_breakers().map(|i| format!("b{i}")).collect();
            let (text, style) = if open.is_empty() {
                ("all closed".to_owned(), Style::new())
            } else {
                (
                    format!("open {}", open.join(",")),
                    Style::new().fg(Color::Red),
                )
            };
            Row::new(vec!["breakers".to_owned(), text]).style(style)
        },
        Row::new(vec![
            "cache hit".to_owned(),
            fwd.cache_hit_rate()
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}%")),
        ]),
    ];
    let table = Table::new(rows, [Constraint::Length(12), Constraint::Fill(1)]).block(block);
    screen.render_widget(table, area);
}

/// Key figures as lines, for a terminal too small for the charts.
fn compact(screen: &mut Screen, area: Rect, state: &State, clock: Duration) {
    let mut lines = vec![Line::from(Span::styled(
        format!("loadgen · {}", state.run.title),
        Style::new().add_modifier(Modifier::BOLD),
    ))];
    lines.push(Line::from(status(state, clock)));
    if let Some(f) = state.last() {
        lines.push(Line::from(format!(
            "{:.1} req/s  ok {}  failed {}",
            f.throughput,
            f.ok,
            f.failed()
        )));
        lines.push(Line::from(format!(
            "latency ms p50 {} p90 {} p99 {}",
            ms(f.latency.p50),
            ms(f.latency.p90),
            ms(f.latency.p99)
        )));
        if state.run.streaming {
            lines.push(Line::from(format!(
                "ttft ms p50 {} p99 {}  itl p99 {}",
                ms(f.ttft.p50),
                ms(f.ttft.p99),
                ms(f.itl.p99)
            )));
        }
        if let Some(fwd) = f.forwarder {
            lines.push(Line::from(format!(
                "forwarder: in flight {:.0}  queue {:.0}  shed {:.0}",
                fwd.inflight, fwd.queue_depth, fwd.shed_total
            )));
        }
    }
    let body_height = area.height.saturating_sub(1);
    let [body, help] =
        Layout::vertical([Constraint::Length(body_height), Constraint::Length(1)]).areas(area);
    screen.render_widget(Paragraph::new(lines), body);
    screen.render_widget(
        Paragraph::new(Span::styled(
            "q: stop",
            Style::new().fg(Color::Black).bg(Color::Gray),
        )),
        help,
    );
}

fn one_line(state: &State, clock: Duration) -> String {
    let rate = state.last().map_or(0.0, |f| f.throughput);
    format!("{} {:.0}/s q:stop", clock_text(clock), rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ForwarderFigures;
    use crate::ui::tui::state::{RunView, StageView};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn mid_run() -> State {
        let mut state = State::new(RunView {
            title: "smoke".into(),
            total: Duration::from_secs(30),
            stages: vec![
                StageView {
                    end: Duration::from_secs(10),
                    target: 20.0,
                },
                StageView {
                    end: Duration::from_secs(30),
                    target: 20.0,
                },
            ],
            open: false,
            streaming: true,
            with_forwarder: true,
            faults: Vec::new(),
        });
        for s in 1..=12u64 {
            let p = |base: f64| Percentiles {
                p50: Some(base),
                p90: Some(base * 2.0),
                p99: Some(base * 5.0),
                max: Some(base * 9.0),
            };
            state.push(Frame {
                elapsed: Duration::from_secs(s),
                level: (s * 2).min(20) as f64,
                throughput: 40.0 + s as f64,
                failed_per_s: if s == 7 { 3.0 } else { 0.0 },
                latency: p(20.0 + s as f64),
                ttft: p(5.0),
                itl: p(2.0),
                requests: 50 * s,
                ok: 50 * s - 3,
                dropped: 0,
                failed_by_class: vec![("connect", 0), ("http_5xx", 3)],
                total_latency: p(25.0),
                total_ttft: p(5.0),
                total_itl: p(2.0),
                spectrum: vec![
                    (0.5, 25.0),
                    (0.9, 50.0),
                    (0.99, 120.0),
                    (0.999, 200.0),
                    (1.0, 400.0),
                ],
                output_tokens_per_s: 900.0,
                forwarder: Some(ForwarderFigures {
                    inflight: 17.0,
                    queue_depth: 4.0,
                    queue_depth_max: 9.0,
                    shed_total: 2.0,
                    ..ForwarderFigures::default()
                }),
                draining: false,
                active_faults: Vec::new(),
            });
        }
        state
    }

    fn draw(state: &State, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|screen| render(screen, state, Duration::from_millis(12_400)))
            .unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_owned())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn after_a_fault_begins_the_timeline_marks_it_active() {
        let mut state = mid_run();
        state.run.faults = vec![
            super::super::FaultView {
                name: "crash-backend-0".into(),
                at: Duration::from_secs(10),
                end: Some(Duration::from_secs(20)),
            },
            super::super::FaultView {
                name: "slow-backend-1".into(),
                at: Duration::from_secs(25),
                end: None,
            },
        ];
        let before = draw(&state, 140, 36);
        assert!(before.contains("Faults · 0 active"), "{before}");
        assert!(!before.contains("ACTIVE"), "{before}");
        if let Some(frame) = state.frames.back_mut() {
            frame.active_faults = vec!["crash-backend-0".into()];
        }
        let after = draw(&state, 140, 36);
        assert!(after.contains("Faults · 1 active"), "{after}");
        assert!(
            after.contains("crash-backend-0"),
            "the fault is listed: {after}"
        );
        assert!(after.contains("00:10-00:20 ACTIVE"), "{after}");
        assert!(
            after.contains("slow-backend-1") && after.contains("00:25-end"),
            "{after}"
        );
        // The other panels are still there beside it.
        assert!(
            after.contains("Forwarder /metrics") && after.contains("Outcomes (run)"),
            "{after}"
        );
    }

    #[test]
    fn a_frame_mid_run_shows_every_panel() {
        let screen = draw(&mid_run(), 120, 36);
        for panel in [
            "loadgen · smoke",
            "stage 2/2",
            "users 20 -> 20",
            "00:12 / 00:30",
            "17s left",
            "Throughput and errors · 52.0 req/s",
            "Latency p50/p90/p99 (log) · p99 160.0ms",
            "Spectrum (run, ms)",
            "p99.9",
            "max",
            "Outcomes (run)",
            "http_5xx",
            "Streams (ms)",
            "tok/s",
            "Forwarder /metrics",
            "queue depth",
            "q / Ctrl-C: stop",
        ] {
            assert!(screen.contains(panel), "{panel:?} missing from\n{screen}");
        }
        assert!(
            screen.contains('⣿')
                || screen.contains('⠁')
                || screen
                    .chars()
                    .any(|c| ('\u{2800}'..='\u{28ff}').contains(&c)),
            "charts drawn:\n{screen}"
        );
    }

    #[test]
    fn a_narrow_terminal_gets_the_compact_view() {
        let screen = draw(&mid_run(), 60, 12);
        assert!(screen.contains("loadgen · smoke"), "{screen}");
        assert!(
            screen.contains("req/s") && screen.contains("latency ms p50"),
            "{screen}"
        );
        assert!(screen.contains("q: stop"), "{screen}");
        assert!(!screen.contains("Spectrum"), "{screen}");
        let tiny = draw(&mid_run(), 18, 2);
        assert!(tiny.starts_with("00:12"), "{tiny}");
    }

    #[test]
    fn the_open_model_shows_its_rate_and_dropped_arrivals() {
        let mut state = mid_run();
        state.run.open = true;
        state.run.with_forwarder = false;
        let screen = draw(&state, 100, 30);
        assert!(screen.contains("rate 20/s -> 20"), "{screen}");
        assert!(screen.contains("dropped"), "{screen}");
        assert!(
            !screen.contains("Forwarder"),
            "no forwarder, no panel:\n{screen}"
        );
    }

    #[test]
    fn the_header_says_when_a_stop_was_asked_and_before_any_data() {
        let mut state = mid_run();
        state.stop_presses = 1;
        assert!(draw(&state, 120, 30).contains("stopping: finishing in-flight requests"));
        let empty = State::new(RunView {
            title: "empty".into(),
            total: Duration::from_secs(5),
            ..RunView::default()
        });
        let screen = draw(&empty, 100, 30);
        assert!(screen.contains("no successful request yet"), "{screen}");
    }
}

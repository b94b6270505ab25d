//! The live full-screen view in a real terminal: loadgen runs inside tmux, the screen is read
//! with capture-pane until the panels show, `q` stops the run, and the reports are written with
//! the terminal given back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::*;

/// A tmux server of our own (its own socket), killed when the test ends however it ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.arg("-L").arg(&self.socket);
        command
    }

    fn run(&self, args: &[&str]) -> Finished {
        run(self.command().args(args), Duration::from_secs(20))
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "lg"]).stdout
    }

    /// Polls the screen until `wanted` holds, within `limit`.
    fn wait_for(&self, limit: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if wanted(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed what was expected:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // tmux leaves its socket file behind after kill-server: remove it too.
        let socket = self
            .command()
            .args(["display-message", "-p", "#{socket_path}"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        let _ = self
            .command()
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
        if let Some(socket) = socket.filter(|s| !s.is_empty()) {
            let _ = std::fs::remove_file(socket);
        }
    }
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts `loadgen run` on a 60 s scenario inside a fresh tmux server of `width` x `height`.
fn launch(
    name: &str,
    budgets: &str,
    width: u16,
    height: u16,
) -> (Tmux, tempfile::TempDir, PathBuf) {
    let loadgen = binary("loadgen");
    // Long enough that only a key press ends it within the test's limits.
    let (dir, scenario) = write_scenario(&small_scenario(name, budgets).replace(
        "{ duration: 1s, users: 10 }\n    - { duration: 1s, users: 10 }",
        "{ duration: 1s, users: 10 }\n    - { duration: 60s, users: 10 }",
    ));
    let out = dir.path().join("report");
    let shell = format!(
        "'{}' run '{}' --out '{}'; echo LOADGEN-EXIT=$?; sleep 300",
        loadgen.display(),
        scenario.display(),
        out.display()
    );
    let tmux = Tmux {
        socket: format!("loadgen-e2e-{name}-{}", std::process::id()),
    };
    let (width, height) = (width.to_string(), height.to_string());
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "lg",
        "-x",
        &width,
        "-y",
        &height,
        "-e",
        "TERM=xterm-256color",
        &shell,
    ]);
    assert_eq!(
        started.code(),
        Some(0),
        "tmux did not start: {}",
        started.stderr
    );
    (tmux, dir, out)
}

#[test]
fn the_live_view_shows_its_panels_and_q_stops_the_run_with_reports_written() {
    if !require(tmux_available(), "tmux") {
        return;
    }
    let (tmux, _dir, out) = launch("tui", "budgets:\n  success_rate: 90%\n", 120, 40);

    let screen = tmux.wait_for(Duration::from_secs(60), |s| {
        [
            "loadgen · tui",
            "Throughput and errors",
            "Latency p50/p90/p99",
            "Spectrum (run, ms)",
            "Outcomes (run)",
            "Streams (ms)",
            "Forwarder /metrics",
            "q / Ctrl-C: stop",
        ]
        .iter()
        .all(|panel| s.contains(panel))
            && s.contains("p99.9")
            // A few seconds in, so the charts have lines to show.
            && seconds_on_screen(s).is_some_and(|t| t >= 3)
    });
    eprintln!("the live view:\n{screen}");

    tmux.run(&["send-keys", "-t", "lg", "q"]);
    let after = tmux.wait_for(Duration::from_secs(60), |s| s.contains("LOADGEN-EXIT="));
    eprintln!("after q:\n{after}");
    assert!(
        after.contains("LOADGEN-EXIT=0"),
        "budgets met, so exit 0:\n{after}"
    );
    // The terminal is back: the summary is printed on the normal screen, the view is gone.
    assert!(
        after.contains("result: PASS") && after.contains("requests "),
        "{after}"
    );
    assert!(
        !after.contains("Throughput and errors"),
        "the view was left on screen:\n{after}"
    );

    for file in [
        "summary.csv",
        "timeseries.csv",
        "percentiles.csv",
        "budgets.xml",
        "run.json",
        "report.html",
        "latency.hlog",
    ] {
        assert!(out.join(file).is_file(), "{file} written after q");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        meta["stopped_early"], true,
        "q stopped the run before its stages ended"
    );
    assert!(meta["duration_s"].as_f64().is_some_and(|d| d < 60.0));
    assert_summary_adds_up(&out);
}

fn assert_summary_adds_up(out: &Path) {
    let summary = read_summary(out);
    let get = |m: &str| summary[m].unwrap_or_else(|| panic!("{m} missing"));
    assert!(get("requests") > 0.0);
    assert_eq!(get("requests"), get("ok") + get("failed"));
}

#[test]
fn a_small_terminal_gets_the_compact_view_and_ctrl_c_stops_the_run() {
    if !require(tmux_available(), "tmux") {
        return;
    }
    let (tmux, _dir, out) = launch("tui-small", "", 60, 14);
    let screen = tmux.wait_for(Duration::from_secs(60), |s| {
        s.contains("loadgen · tui-small") && s.contains("latency ms p50") && s.contains("q: stop")
    });
    eprintln!("the compact view:\n{screen}");
    assert!(
        !screen.contains("Throughput and errors"),
        "no squeezed charts:\n{screen}"
    );

    // In raw mode Ctrl-C is a key, not a signal: the view turns it into the same stop.
    tmux.run(&["send-keys", "-t", "lg", "C-c"]);
    let after = tmux.wait_for(Duration::from_secs(60), |s| s.contains("LOADGEN-EXIT="));
    assert!(
        after.contains("LOADGEN-EXIT=0"),
        "no budgets, so exit 0:\n{after}"
    );
    assert!(out.join("report.html").is_file() && out.join("budgets.xml").is_file());
    assert_summary_adds_up(&out);
}

/// The run's elapsed seconds as the header shows them (`00:03 / 01:01`).
fn seconds_on_screen(screen: &str) -> Option<u64> {
    let at = screen.find(" / 01:01")?;
    let clock = screen.get(at.checked_sub(5)?..at)?;
    let (minutes, seconds) = clock.split_once(':')?;
    Some(minutes.parse::<u64>().ok()? * 60 + seconds.parse::<u64>().ok()?)
}

//! Scenario files: the YAML schema, its validation into a runnable [`Plan`], and the human
//! scalars and distributions used in it.
//!
//! Errors always name the file, the line and column, and the field, so a user can fix the file
//! without guessing; they map to exit code 2.

pub mod distribution;
pub mod human;
pub mod schema;
#[cfg(test)]
mod shipped;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use validate::{FILE_RESERVE, validate};

use crate::report::budget::Budget;
use distribution::DurationDist;
use schema::{Arrivals, Protocol, ReportSpec, RequestSpec, StackSpec};

/// A scenario checked and resolved, ready to run.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub description: String,
    /// Local processes to start, if any.
    pub stack: Option<StackSpec>,
    /// An explicit target; `None` means "the forwarder (or single backend) the stack starts".
    pub target: Option<http::Uri>,
    pub request: RequestSpec,
    /// Trust for `https://` targets, the CA path resolved.
    pub tls: schema::TlsSpec,
    /// Per-request objectives for goodput.
    pub slo: crate::engine::slo::Slo,
    pub load: LoadPlan,
    /// Scheduled faults, in the same time frame as `load` (squeezed with it).
    pub faults: Vec<crate::chaos::Fault>,
    pub budgets: Vec<Budget>,
    pub report: ReportSpec,
}

impl Plan {
    /// Squeezes the whole scenario into `total`: the stages, and the fault timeline with them.
    pub fn squeeze(&mut self, total: Duration) {
        let before = self.load.total_duration().as_secs_f64();
        self.load.squeeze(total);
        if before > 0.0 {
            let factor = total.as_secs_f64() / before;
            for fault in &mut self.faults {
                fault.scale(factor);
            }
        }
    }
}

/// How load is generated.
#[derive(Debug, Clone)]
pub enum Model {
    /// Virtual users; levels are user counts.
    Closed {
        think_time: DurationDist,
        stagger: bool,
    },
    /// Arrivals; levels are requests per second.
    Open {
        arrivals: Arrivals,
        max_inflight: u32,
    },
}

/// The load shape, in absolute durations after any `--duration` squeeze.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub model: Model,
    /// Level (users or rate) at the start of the first stage.
    pub start: f64,
    pub stages: Vec<Stage>,
    pub protocol: Protocol,
    /// Shared connections (HTTP/2, or an HTTP/1.1 pool); 0 means one per closed-model user.
    pub connections: u32,
    pub graceful_stop: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    /// Users (closed) or arrivals per second (open) at the end of the stage.
    pub target: f64,
    /// Jump to `target` at the stage's start instead of ramping.
    pub step: bool,
}

impl LoadPlan {
    pub fn is_open(&self) -> bool {
        matches!(self.model, Model::Open { .. })
    }

    pub fn total_duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// Highest level: peak users (closed) or peak rate (open).
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start, f64::max)
    }

    /// The peak in words: `20000 users` or `300 req/s`.
    pub fn describe_peak(&self) -> String {
        if self.is_open() {
            format!("{} req/s", self.peak())
        } else {
            format!("{} users", self.peak_users())
        }
    }

    /// Peak users of the closed model (0 for the open model).
    pub fn peak_users(&self) -> u32 {
        if self.is_open() {
            0
        } else {
            self.peak().round() as u32
        }
    }

    /// The level wanted `elapsed` into the run: linear within a stage, or a step at its start.
    pub fn level_at(&self, elapsed: Duration) -> f64 {
        let mut from = self.start;
        let mut stage_start = Duration::ZERO;
        for stage in &self.stages {
            let end = stage_start + stage.duration;
            if elapsed < end {
                if stage.step {
                    return stage.target;
                }
                let into = (elapsed - stage_start).as_secs_f64() / stage.duration.as_secs_f64();
                return from + (stage.target - from) * into;
            }
            from = stage.target;
            stage_start = end;
        }
        self.stages.last().map_or(self.start, |s| s.target)
    }

    /// The open model's next arrival after `from`: the time at which the area under the rate
    /// curve since `from` reaches `work` arrivals (1 for evenly spaced arrivals, an Exp(1) draw
    /// for Poisson). Exact for linear ramps and steps; `None` past the last stage.
    pub fn next_arrival(&self, from: Duration, mut work: f64) -> Option<Duration> {
        let mut level_before = self.start;
        let mut stage_start = Duration::ZERO;
        for stage in &self.stages {
            let stage_end = stage_start + stage.duration;
            let (a, b) = if stage.step {
                (stage.target, stage.target)
            } else {
                (level_before, stage.target)
            };
            level_before = stage.target;
            if from >= stage_end {
                stage_start = stage_end;
                continue;
            }
            let x = from.max(stage_start);
            let slope = (b - a) / stage.duration.as_secs_f64();
            let rate_at_x = a + slope * (x - stage_start).as_secs_f64();
            let remaining = (stage_end - x).as_secs_f64();
            let area = rate_at_x * remaining + slope / 2.0 * remaining * remaining;
            if area >= work {
                // Solve rate_at_x * h + slope / 2 * h^2 = work for the smallest h >= 0.
                let h = if slope.abs() < 1e-12 {
                    work / rate_at_x
                } else {
                    let disc = (rate_at_x * rate_at_x + 2.0 * slope * work).max(0.0);
                    (disc.sqrt() - rate_at_x) / slope
                };
                return Some(x + Duration::from_secs_f64(h.clamp(0.0, remaining)));
            }
            work -= area;
            stage_start = stage_end;
        }
        None
    }

    /// Users wanted `elapsed` into a closed-model run.
    pub fn users_at(&self, elapsed: Duration) -> u32 {
        self.level_at(elapsed).round() as u32
    }

    /// Scales every stage so the whole load takes `total` (the `--duration` squeeze).
    pub fn squeeze(&mut self, total: Duration) {
        let current = self.total_duration().as_secs_f64();
        if current <= 0.0 {
            return;
        }
        let factor = total.as_secs_f64() / current;
        for stage in &mut self.stages {
            stage.duration = stage.duration.mul_f64(factor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_plan(start: f64, stages: &[(u64, f64, bool)]) -> LoadPlan {
        LoadPlan {
            model: Model::Open {
                arrivals: Arrivals::Constant,
                max_inflight: 1,
            },
            start,
            stages: stages
                .iter()
                .map(|&(secs, target, step)| Stage {
                    duration: Duration::from_secs(secs),
                    target,
                    step,
                })
                .collect(),
            protocol: Protocol::Http1,
            connections: 1,
            graceful_stop: Duration::ZERO,
        }
    }

    /// A closed-model plan: `(seconds, users, step)` per stage.
    fn closed_plan(start: f64, stages: &[(u64, f64, bool)]) -> LoadPlan {
        LoadPlan {
            model: Model::Closed {
                think_time: DurationDist::constant(Duration::from_secs(1)),
                stagger: false,
            },
            ..open_plan(start, stages)
        }
    }

    fn users_at_ms(plan: &LoadPlan, ms: &[u64]) -> Vec<u32> {
        ms.iter()
            .map(|&m| plan.users_at(Duration::from_millis(m)))
            .collect()
    }

    fn arrivals(plan: &LoadPlan) -> Vec<Duration> {
        let mut at = Duration::ZERO;
        std::iter::from_fn(|| {
            at = plan.next_arrival(at, 1.0)?;
            Some(at)
        })
        .collect()
    }

    #[test]
    fn a_constant_rate_spaces_arrivals_evenly() {
        let times = arrivals(&open_plan(10.0, &[(2, 10.0, false)]));
        assert_eq!(times.len(), 20);
        assert!((times[0].as_secs_f64() - 0.1).abs() < 1e-9);
        assert!((times[19].as_secs_f64() - 2.0).abs() < 1e-6);
    }

    #[test]
    fn a_ramp_from_zero_has_the_area_of_its_triangle() {
        // 0 -> 10/s over 10 s: 50 arrivals, denser towards the end.
        let times = arrivals(&open_plan(0.0, &[(10, 10.0, false)]));
        assert_eq!(times.len(), 50);
        assert!(
            (times[0].as_secs_f64() - 2f64.sqrt()).abs() < 1e-6,
            "first at sqrt(2 / slope)"
        );
        let first_half = times.iter().filter(|t| t.as_secs_f64() < 5.0).count();
        assert_eq!(
            first_half, 12,
            "a quarter of the area lies in the first half"
        );
    }

    #[test]
    fn closed_users_ramp_linearly_through_each_stage() {
        // 0 -> 100 users over 10 s, held for 10 s, then 100 -> 20 over 4 s.
        let plan = closed_plan(
            0.0,
            &[(10, 100.0, false), (10, 100.0, false), (4, 20.0, false)],
        );
        assert_eq!(
            users_at_ms(&plan, &[0, 2_500, 5_000, 7_500, 10_000]),
            [0, 25, 50, 75, 100],
            "the first ramp, midpoint included"
        );
        assert_eq!(users_at_ms(&plan, &[15_000, 19_999]), [100, 100], "held");
        assert_eq!(
            users_at_ms(&plan, &[21_000, 22_000, 23_000]),
            [80, 60, 40],
            "ramping down from the level the previous stage reached"
        );
        assert_eq!(
            users_at_ms(&plan, &[24_000, 60_000]),
            [20, 20],
            "after the last stage its level stays"
        );
        // A ramp that does not start from zero starts from `start_users`.
        let from_ten = closed_plan(10.0, &[(4, 30.0, false)]);
        assert_eq!(users_at_ms(&from_ten, &[0, 1_000, 2_000]), [10, 15, 20]);
    }

    #[test]
    fn a_closed_spike_steps_up_for_its_stage_then_steps_back() {
        // 100 users for 10 s, a step to 500 for 5 s, a step back to 100 for 5 s.
        let plan = closed_plan(
            100.0,
            &[(10, 100.0, false), (5, 500.0, true), (5, 100.0, true)],
        );
        assert_eq!(
            users_at_ms(&plan, &[0, 5_000, 9_999]),
            [100, 100, 100],
            "before the spike"
        );
        assert_eq!(
            users_at_ms(&plan, &[10_000, 10_001, 12_500, 14_999]),
            [500, 500, 500, 500],
            "the whole spike at its level from its first instant, no ramp"
        );
        assert_eq!(
            users_at_ms(&plan, &[15_000, 17_500, 19_999, 30_000]),
            [100, 100, 100, 100],
            "back at once when the spike ends"
        );
        assert_eq!(plan.peak_users(), 500);
    }

    #[test]
    fn steps_and_idle_stages_are_honoured() {
        // 1 s at 0/s, then a step to 5/s for 2 s, then back to 1/s for 2 s.
        let times = arrivals(&open_plan(
            0.0,
            &[(1, 0.0, true), (2, 5.0, true), (2, 1.0, true)],
        ));
        assert_eq!(times.len(), 12);
        assert!(times[0] > Duration::from_secs(1));
        let in_spike = times.iter().filter(|t| t.as_secs_f64() <= 3.0).count();
        assert_eq!(in_spike, 10);
    }
}

/// Why a scenario could not be loaded: where, which field, what is wrong.
#[derive(Debug, thiserror::Error)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(u64, u64)>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Reads, parses and validates a scenario file.
pub fn load(path: &Path) -> Result<Plan, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.to_owned(),
        position: None,
        field: None,
        message: format!("cannot read the scenario file: {e}"),
    })?;
    parse(path, &text)
}

/// Parses and validates scenario text; `path` is used in messages and to resolve relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Plan, ScenarioError> {
    let mut field = None;
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        // Through serde_path_to_error to learn the field path of a failure, not just its place.
        serde_path_to_error::deserialize::<_, schema::Scenario>(de).map_err(|e| {
            // `Spanned` wraps fields in a `value`; users never wrote that part.
            let path = e.path().to_string().replace(".value", "");
            field = Some(path).filter(|f| f != "." && !f.is_empty());
            e.into_inner()
        })
    });
    let error = match parsed {
        Ok(scenario) => return validate(path, scenario),
        Err(error) => error,
    };
    let position = error
        .location()
        .map(|l| (l.line(), l.column()))
        .filter(|&(l, _)| l > 0);
    let message = error.without_snippet().to_string();
    // The message repeats the position we already lead with.
    let message = match message.rfind(" at line ") {
        Some(cut) if position.is_some() => message[..cut].to_owned(),
        _ => message,
    };
    Err(ScenarioError {
        file: path.to_owned(),
        position,
        field,
        message,
    })
}

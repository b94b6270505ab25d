//! Scenario files: the YAML schema, its validation into a runnable [`Plan`], and the human
//! scalars and distributions used in it.
//!
//! Errors always name the file, the line and column, and the field, so a user can fix the file
//! without guessing; they map to exit code 2.

pub mod distribution;
pub mod human;
pub mod schema;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use validate::{FILE_RESERVE, validate};

use crate::report::budget::Budget;
use distribution::DurationDist;
use schema::{Protocol, ReportSpec, RequestSpec, StackSpec};

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
    pub load: LoadPlan,
    pub budgets: Vec<Budget>,
    pub report: ReportSpec,
}

/// The load shape, in absolute durations after any `--duration` squeeze.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub start_users: u32,
    pub stages: Vec<Stage>,
    pub think_time: DurationDist,
    pub stagger: bool,
    pub protocol: Protocol,
    /// Shared connections for HTTP/2; for HTTP/1.1 each user has its own.
    pub connections: u32,
    pub graceful_stop: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub users: u32,
}

impl LoadPlan {
    pub fn total_duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    pub fn peak_users(&self) -> u32 {
        self.stages
            .iter()
            .map(|s| s.users)
            .fold(self.start_users, u32::max)
    }

    /// Users wanted `elapsed` into the run: each stage ramps linearly from the previous level.
    pub fn users_at(&self, elapsed: Duration) -> u32 {
        let mut from = self.start_users as f64;
        let mut stage_start = Duration::ZERO;
        for stage in &self.stages {
            let end = stage_start + stage.duration;
            if elapsed < end {
                let into = (elapsed - stage_start).as_secs_f64() / stage.duration.as_secs_f64();
                return (from + (stage.users as f64 - from) * into).round() as u32;
            }
            from = stage.users as f64;
            stage_start = end;
        }
        self.stages.last().map_or(self.start_users, |s| s.users)
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

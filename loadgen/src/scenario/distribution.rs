//! Named random distributions (`constant`, `uniform`, `normal`, `lognormal`, `exponential`, `zipf`)
//! written compactly in scenario files and CLI flags, e.g. `lognormal(200ms, 0.5)`.
//!
//! A distribution is either over durations (think time, TTFT) or over plain numbers (tokens,
//! tokens/s, user ids); the parser is told which, so `uniform(1s, 3s)` and `uniform(10, 30)` both
//! read naturally and a unit in the wrong place is an error.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution as _, Exp, LogNormal, Normal, Zipf};
use serde::{Deserialize, Deserializer, de};

use super::human::{ScalarText, parse_duration};

/// What a distribution's values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Values are durations; parameters are written with a unit (`200ms`) and held in seconds.
    Duration,
    /// Values are plain non-negative numbers.
    Number,
}

/// A sampler with its parameters in base units (seconds for durations).
#[derive(Clone, Debug)]
pub enum Distribution {
    Constant(f64),
    Uniform {
        low: f64,
        high: f64,
    },
    Normal {
        mean: f64,
        stddev: f64,
        sampler: Normal<f64>,
    },
    LogNormal {
        median: f64,
        sigma: f64,
        sampler: LogNormal<f64>,
    },
    Exponential {
        mean: f64,
        sampler: Exp<f64>,
    },
    Zipf {
        n: u64,
        s: f64,
        sampler: Zipf<f64>,
    },
}

impl PartialEq for Distribution {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Distribution {
    /// Parses `200ms` / `40` (constant) or `name(arg, ...)`.
    pub fn parse(text: &str, unit: Unit) -> Result<Self, String> {
        let text = text.trim();
        let Some(open) = text.find('(') else {
            return Ok(Distribution::Constant(parse_value(text, unit)?));
        };
        let name = text[..open].trim().to_ascii_lowercase();
        let args_text = text[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| format!("{text:?}: missing closing parenthesis"))?;
        let args: Vec<&str> = args_text.split(',').map(str::trim).collect();
        let want = |n: usize, shape: &str| -> Result<(), String> {
            if args.len() == n && args.iter().all(|a| !a.is_empty()) {
                Ok(())
            } else {
                Err(format!(
                    "{text:?}: {name} takes {n} argument(s): {name}({shape})"
                ))
            }
        };
        let dist = match name.as_str() {
            "constant" => {
                want(1, "value")?;
                Distribution::Constant(parse_value(args[0], unit)?)
            }
            "uniform" => {
                want(2, "low, high")?;
                let (low, high) = (parse_value(args[0], unit)?, parse_value(args[1], unit)?);
                if high < low {
                    return Err(format!("{text:?}: uniform needs low <= high"));
                }
                Distribution::Uniform { low, high }
            }
            "normal" => {
                want(2, "mean, stddev")?;
                let (mean, stddev) = (parse_value(args[0], unit)?, parse_value(args[1], unit)?);
                let sampler = Normal::new(mean, stddev).map_err(|e| format!("{text:?}: {e}"))?;
                Distribution::Normal {
                    mean,
                    stddev,
                    sampler,
                }
            }
            "lognormal" => {
                want(2, "median, sigma")?;
                let median = parse_value(args[0], unit)?;
                let sigma = parse_plain(args[1])?;
                if median <= 0.0 {
                    return Err(format!("{text:?}: lognormal needs a median above zero"));
                }
                let sampler =
                    LogNormal::new(median.ln(), sigma).map_err(|e| format!("{text:?}: {e}"))?;
                Distribution::LogNormal {
                    median,
                    sigma,
                    sampler,
                }
            }
            "exponential" => {
                want(1, "mean")?;
                let mean = parse_value(args[0], unit)?;
                if mean <= 0.0 {
                    return Err(format!("{text:?}: exponential needs a mean above zero"));
                }
                let sampler = Exp::new(1.0 / mean).map_err(|e| format!("{text:?}: {e}"))?;
                Distribution::Exponential { mean, sampler }
            }
            "zipf" => {
                want(2, "n, s")?;
                if unit == Unit::Duration {
                    return Err(format!(
                        "{text:?}: zipf is for counts and ids, not durations"
                    ));
                }
                let n = parse_plain(args[0])?;
                let s = parse_plain(args[1])?;
                if n < 1.0 || n.fract() != 0.0 {
                    return Err(format!("{text:?}: zipf needs a whole n >= 1"));
                }
                let sampler = Zipf::new(n, s).map_err(|e| format!("{text:?}: {e}"))?;
                Distribution::Zipf {
                    n: n as u64,
                    s,
                    sampler,
                }
            }
            other => {
                return Err(format!(
                    "unknown distribution {other:?}: use constant, uniform, normal, lognormal, exponential or zipf"
                ));
            }
        };
        Ok(dist)
    }

    /// Draws one value, never negative.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let v = match self {
            Distribution::Constant(v) => *v,
            Distribution::Uniform { low, high } => {
                if high > low {
                    rng.random_range(*low..*high)
                } else {
                    *low
                }
            }
            Distribution::Normal { sampler, .. } => sampler.sample(rng),
            Distribution::LogNormal { sampler, .. } => sampler.sample(rng),
            Distribution::Exponential { sampler, .. } => sampler.sample(rng),
            Distribution::Zipf { sampler, .. } => sampler.sample(rng),
        };
        v.max(0.0)
    }

    /// Draws a duration (for duration distributions).
    pub fn sample_duration<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        Duration::from_secs_f64(self.sample(rng))
    }

    /// The mean of the distribution, for planning (file budgets, expected rates).
    pub fn mean(&self) -> f64 {
        match self {
            Distribution::Constant(v) => *v,
            Distribution::Uniform { low, high } => (low + high) / 2.0,
            Distribution::Normal { mean, .. } => mean.max(0.0),
            Distribution::LogNormal { median, sigma, .. } => median * (sigma * sigma / 2.0).exp(),
            Distribution::Exponential { mean, .. } => *mean,
            Distribution::Zipf { n, .. } => *n as f64 / 2.0,
        }
    }
}

fn parse_plain(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a non-negative number")),
    }
}

fn parse_value(text: &str, unit: Unit) -> Result<f64, String> {
    match unit {
        Unit::Duration => parse_duration(text).map(|d| d.as_secs_f64()),
        Unit::Number => parse_plain(text),
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Constant(v) => write!(f, "constant({v})"),
            Distribution::Uniform { low, high } => write!(f, "uniform({low}, {high})"),
            Distribution::Normal { mean, stddev, .. } => write!(f, "normal({mean}, {stddev})"),
            Distribution::LogNormal { median, sigma, .. } => {
                write!(f, "lognormal({median}, {sigma})")
            }
            Distribution::Exponential { mean, .. } => write!(f, "exponential({mean})"),
            Distribution::Zipf { n, s, .. } => write!(f, "zipf({n}, {s})"),
        }
    }
}

/// A distribution of durations, e.g. `uniform(1s, 3s)`; values sampled in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct DurationDist(pub Distribution);

/// A distribution of plain numbers, e.g. `normal(40, 10)`.
#[derive(Clone, Debug, PartialEq)]
pub struct NumberDist(pub Distribution);

impl DurationDist {
    pub fn parse(text: &str) -> Result<Self, String> {
        Distribution::parse(text, Unit::Duration).map(DurationDist)
    }
    pub fn constant(d: Duration) -> Self {
        DurationDist(Distribution::Constant(d.as_secs_f64()))
    }
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        self.0.sample_duration(rng)
    }
}

impl NumberDist {
    pub fn parse(text: &str) -> Result<Self, String> {
        Distribution::parse(text, Unit::Number).map(NumberDist)
    }
    pub fn constant(v: f64) -> Self {
        NumberDist(Distribution::Constant(v))
    }
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.0.sample(rng)
    }
}

impl std::str::FromStr for DurationDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl std::str::FromStr for NumberDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for DurationDist {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = ScalarText::deserialize(deserializer)?;
        DurationDist::parse(&text.0).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for NumberDist {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = ScalarText::deserialize(deserializer)?;
        NumberDist::parse(&text.0).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn mean_of(d: &Distribution, n: usize) -> f64 {
        let mut rng = SmallRng::seed_from_u64(7);
        (0..n).map(|_| d.sample(&mut rng)).sum::<f64>() / n as f64
    }

    #[test]
    fn each_named_distribution_parses_and_samples_near_its_mean() {
        for (text, unit, expected) in [
            ("200ms", Unit::Duration, 0.2),
            ("constant(40)", Unit::Number, 40.0),
            ("uniform(1s, 3s)", Unit::Duration, 2.0),
            ("normal(50, 5)", Unit::Number, 50.0),
            (
                "lognormal(100ms, 0.3)",
                Unit::Duration,
                0.1 * (0.045f64).exp(),
            ),
            ("exponential(2s)", Unit::Duration, 2.0),
        ] {
            let d = Distribution::parse(text, unit).unwrap();
            let m = mean_of(&d, 20_000);
            assert!(
                (m - expected).abs() / expected < 0.03,
                "{text}: mean {m}, want {expected}"
            );
            assert!(
                (d.mean() - expected).abs() / expected < 1e-9,
                "{text}: analytic mean"
            );
        }
    }

    #[test]
    fn zipf_favours_small_ids() {
        let d = Distribution::parse("zipf(1000, 1.1)", Unit::Number).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let ones = (0..10_000).filter(|_| d.sample(&mut rng) == 1.0).count();
        assert!(ones > 1_000, "rank 1 drawn {ones} times in 10000");
    }

    #[test]
    fn bad_text_is_explained() {
        assert!(
            Distribution::parse("uniform(3s)", Unit::Duration)
                .unwrap_err()
                .contains("2 argument")
        );
        assert!(
            Distribution::parse("gamma(1, 2)", Unit::Number)
                .unwrap_err()
                .contains("unknown")
        );
        assert!(Distribution::parse("uniform(1, 2)", Unit::Duration).is_err());
        assert!(Distribution::parse("zipf(10, 1.1)", Unit::Duration).is_err());
        assert!(Distribution::parse("uniform(5s, 1s)", Unit::Duration).is_err());
    }
}

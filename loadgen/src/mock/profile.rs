//! The mock backend's latency and token profile, as written under `stack.backends.profile` in a
//! scenario and as `loadgen mock` flags — one struct serves both so they cannot drift apart.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, de};

use crate::scenario::distribution::{DurationDist, NumberDist};
use crate::scenario::human::{HumanDuration, Percent, ScalarText, parse_duration, parse_percent};

pub const DEFAULT_TTFT: &str = "lognormal(150ms, 0.4)";
pub const DEFAULT_TOKENS_PER_S: &str = "normal(60, 10)";
pub const DEFAULT_OUTPUT_TOKENS: &str = "lognormal(40, 0.5)";
pub const DEFAULT_ERROR_RATE: &str = "0%";
pub const DEFAULT_ERROR_STATUS: u16 = 500;

/// How a mock backend behaves: latency, speed, answer length and injected errors.
///
/// Every draw is per request, so one profile gives the spread of a real model server.
#[derive(Clone, Debug, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct MockProfile {
    /// Time to first token, e.g. `lognormal(150ms, 0.4)`, `uniform(50ms, 300ms)`, `200ms`.
    #[arg(long, value_name = "DIST", default_value = DEFAULT_TTFT)]
    pub ttft: Written<DurationDist>,
    /// Decode speed of one request in tokens per second (floored at 1), e.g. `normal(60, 10)`.
    #[arg(long, value_name = "DIST", default_value = DEFAULT_TOKENS_PER_S)]
    pub tokens_per_s: Written<NumberDist>,
    /// Answer length in tokens (at least 1, capped by the request's max_tokens), e.g. `lognormal(40, 0.5)`.
    #[arg(long, value_name = "DIST", default_value = DEFAULT_OUTPUT_TOKENS)]
    pub output_tokens: Written<NumberDist>,
    /// Share of requests answered with `error_status` instead, e.g. `1%`.
    #[arg(long, value_name = "PCT", default_value = DEFAULT_ERROR_RATE, value_parser = parse_error_rate)]
    pub error_rate: Percent,
    /// HTTP status of injected errors (400-599); 429 and 503 carry `Retry-After: 1`.
    #[arg(long, value_name = "CODE", default_value_t = DEFAULT_ERROR_STATUS, value_parser = parse_error_status)]
    #[serde(deserialize_with = "deserialize_error_status")]
    pub error_status: u16,
    /// Seed for reproducible draws; without it every run differs.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// A fresh instance's model load, e.g. `3s`: the first completion request starts it and
    /// every request waits until it is over (`0`: none). A restarted backend is cold again.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_cold_start)]
    pub cold_start: HumanDuration,
}

impl Default for MockProfile {
    fn default() -> Self {
        MockProfile {
            ttft: Written::builtin(DEFAULT_TTFT),
            tokens_per_s: Written::builtin(DEFAULT_TOKENS_PER_S),
            output_tokens: Written::builtin(DEFAULT_OUTPUT_TOKENS),
            error_rate: Percent(0.0),
            error_status: DEFAULT_ERROR_STATUS,
            seed: None,
            cold_start: HumanDuration::default(),
        }
    }
}

impl MockProfile {
    /// The `loadgen mock` flags that reproduce this profile in a child process (without `--listen`).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--ttft".to_owned(),
            self.ttft.text().to_owned(),
            "--tokens-per-s".to_owned(),
            self.tokens_per_s.text().to_owned(),
            "--output-tokens".to_owned(),
            self.output_tokens.text().to_owned(),
            "--error-rate".to_owned(),
            // f64's Display is the shortest text that parses back to the same value.
            format!("{}%", self.error_rate.0),
            "--error-status".to_owned(),
            self.error_status.to_string(),
        ];
        if let Some(seed) = self.seed {
            args.push("--seed".to_owned());
            args.push(seed.to_string());
        }
        if !self.cold_start.0.is_zero() {
            args.push("--cold-start".to_owned());
            args.push(format!("{}ms", self.cold_start.0.as_millis()));
        }
        args
    }
}

fn parse_cold_start(text: &str) -> Result<HumanDuration, String> {
    parse_duration(text).map(HumanDuration)
}

/// A parsed value together with the text it was written as.
///
/// The text is what goes back on a command line: the distributions' own `Display` holds durations
/// in bare seconds, which would not parse again as a duration distribution.
#[derive(Clone, Debug, PartialEq)]
pub struct Written<T> {
    text: String,
    value: T,
}

impl<T> Written<T> {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn value(&self) -> &T {
        &self.value
    }
}

impl<T: FromStr<Err = String>> Written<T> {
    /// For the built-in defaults, which a unit test proves parse.
    fn builtin(text: &str) -> Self {
        match text.parse() {
            Ok(written) => written,
            Err(e) => unreachable!("built-in default {text:?} does not parse: {e}"),
        }
    }
}

impl<T> Deref for Written<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> fmt::Display for Written<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<T: FromStr<Err = String>> FromStr for Written<T> {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        Ok(Written {
            value: text.parse()?,
            text: text.to_owned(),
        })
    }
}

impl<'de, T: FromStr<Err = String>> Deserialize<'de> for Written<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = ScalarText::deserialize(deserializer)?;
        text.0.parse().map_err(de::Error::custom)
    }
}

fn parse_error_rate(text: &str) -> Result<Percent, String> {
    parse_percent(text).map(Percent)
}

fn parse_error_status(text: &str) -> Result<u16, String> {
    let status = text
        .trim()
        .parse::<u16>()
        .map_err(|_| format!("{text:?} is not an HTTP status code"))?;
    check_error_status(status)
}

fn check_error_status(status: u16) -> Result<u16, String> {
    if (400..=599).contains(&status) {
        Ok(status)
    } else {
        Err(format!(
            "error_status {status} is not an error: use a status from 400 to 599"
        ))
    }
}

fn deserialize_error_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let text = ScalarText::deserialize(deserializer)?;
    parse_error_status(&text.0).map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        profile: MockProfile,
    }

    fn from_yaml(text: &str) -> Result<MockProfile, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let p = MockProfile::default();
        assert_eq!(p.ttft.text(), "lognormal(150ms, 0.4)");
        assert_eq!(
            p.ttft.value(),
            &DurationDist::parse("lognormal(150ms, 0.4)").unwrap()
        );
        assert_eq!(p.tokens_per_s.text(), "normal(60, 10)");
        assert_eq!(p.output_tokens.text(), "lognormal(40, 0.5)");
        assert_eq!(p.error_rate, Percent(0.0));
        assert_eq!(p.error_status, 500);
        assert_eq!(p.seed, None);
        // The CLI defaults come from the same constants.
        assert_eq!(Cli::try_parse_from(["mock"]).unwrap().profile, p);
        // So does an empty YAML mapping.
        assert_eq!(from_yaml("{}").unwrap(), p);
    }

    #[test]
    fn yaml_profile_parses() {
        let p = from_yaml(
            "ttft: uniform(50ms, 300ms)\ntokens_per_s: 80\noutput_tokens: normal(100, 20)\n\
             error_rate: 2.5%\nerror_status: 429\nseed: 42\n",
        )
        .unwrap();
        assert_eq!(p.ttft.text(), "uniform(50ms, 300ms)");
        assert_eq!(p.tokens_per_s.value(), &NumberDist::constant(80.0));
        assert_eq!(p.output_tokens.text(), "normal(100, 20)");
        assert_eq!(p.error_rate, Percent(2.5));
        assert_eq!(p.error_status, 429);
        assert_eq!(p.seed, Some(42));
    }

    #[test]
    fn partial_yaml_keeps_other_defaults() {
        let p = from_yaml("ttft: 200ms\n").unwrap();
        assert_eq!(
            p.ttft.value(),
            &DurationDist::constant(std::time::Duration::from_millis(200))
        );
        assert_eq!(p.tokens_per_s, MockProfile::default().tokens_per_s);
    }

    #[test]
    fn bad_yaml_is_rejected_with_a_reason() {
        assert!(from_yaml("ttfb: 200ms\n").unwrap_err().contains("ttfb"));
        assert!(from_yaml("ttft: 200\n").is_err(), "a duration needs a unit");
        assert!(
            from_yaml("tokens_per_s: gamma(1, 2)\n")
                .unwrap_err()
                .contains("unknown")
        );
        assert!(from_yaml("error_rate: 120%\n").is_err());
        assert!(
            from_yaml("error_status: 200\n")
                .unwrap_err()
                .contains("400 to 599")
        );
        assert!(from_yaml("error_status: lots\n").is_err());
    }

    #[test]
    fn to_args_round_trips_through_the_cli() {
        let profiles = [
            MockProfile::default(),
            from_yaml(
                "ttft: exponential(80ms)\ntokens_per_s: uniform(20, 80)\noutput_tokens: 7\n\
                 error_rate: 0.1%\nerror_status: 429\nseed: 18446744073709551615\n\
                 cold_start: 1500ms\n",
            )
            .unwrap(),
        ];
        for profile in profiles {
            let args = profile.to_args();
            let cli = Cli::try_parse_from(std::iter::once("mock".to_owned()).chain(args.clone()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(cli.profile, profile, "{args:?}");
        }
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(Cli::try_parse_from(["mock", "--ttft", "soon"]).is_err());
        assert!(Cli::try_parse_from(["mock", "--error-status", "302"]).is_err());
        assert!(Cli::try_parse_from(["mock", "--error-rate", "-1%"]).is_err());
        assert!(Cli::try_parse_from(["mock", "--cold-start", "a while"]).is_err());
    }
}

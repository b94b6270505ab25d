//! Human-friendly scalar values in scenario files: durations (`250ms`, `1m30s`) and percentages (`99.9%`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// Parses `250ms`, `2s`, `1m30s`, `1h`; a bare `0` is accepted as zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write it like 250ms, 2s, 1m30s or 1h")
    })
}

/// Formats a duration compactly for messages and reports (`1m30s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return format!("{}us", d.as_micros());
    }
    let (h, m, s, rest) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || (rest > 0 && ms >= 1000) {
        if rest > 0 && ms >= 1000 {
            out.push_str(&format!("{s}.{rest:03}s"));
        } else {
            out.push_str(&format!("{s}s"));
        }
    } else if rest > 0 {
        out.push_str(&format!("{rest}ms"));
    }
    out
}

/// A duration written the human way in YAML.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = ScalarText::deserialize(deserializer)?;
        parse_duration(&text.0)
            .map(HumanDuration)
            .map_err(de::Error::custom)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// A percentage written as `99.9%` (or a bare number meaning percent).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct Percent(pub f64);

pub fn parse_percent(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let number = t.strip_suffix('%').unwrap_or(t).trim();
    match number.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "invalid percentage {t:?}: write it like 99.9% (0% to 100%)"
        )),
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = ScalarText::deserialize(deserializer)?;
        parse_percent(&text.0)
            .map(Percent)
            .map_err(de::Error::custom)
    }
}

/// Any YAML scalar (string or number) taken as its text, so `2` and `"2s"` both reach our parsers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalarText(pub String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl de::Visitor<'_> for Visit {
            type Value = ScalarText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_the_human_way() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("fast").is_err());
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn percentages_are_bounded() {
        assert_eq!(parse_percent("99.9%").unwrap(), 99.9);
        assert_eq!(parse_percent("50").unwrap(), 50.0);
        assert!(parse_percent("101%").is_err());
    }
}

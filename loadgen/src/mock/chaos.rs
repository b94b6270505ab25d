//! Scheduled HTTP faults, switched on and off at run time through `/_chaos` (loopback only), so a
//! chaos timeline can degrade a running backend without restarting it.
//!
//! `PUT /_chaos/<id>` sets one fault (JSON, below), `DELETE /_chaos/<id>` clears it, `DELETE
//! /_chaos` clears all, `GET /_chaos` lists the active ones. Several faults may be active at once;
//! each request rolls each fault's toxicity on its own.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// One HTTP fault as the control endpoint takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpFault {
    /// Answer with `status` (and `body`, else an OpenAI-style error) instead of tokens.
    Error {
        status: u16,
        #[serde(default)]
        body: Option<String>,
        /// Seconds for `Retry-After` (429 and 503 get 1 by default).
        #[serde(default)]
        retry_after_s: Option<u64>,
        #[serde(default = "always")]
        toxicity: f64,
    },
    /// Hold the whole answer back by `delay_ms` plus up to +-`jitter_ms`.
    Delay {
        delay_ms: u64,
        #[serde(default)]
        jitter_ms: u64,
        #[serde(default = "always")]
        toxicity: f64,
    },
    /// Delay only the first token (the rest keep their pace after it).
    SlowFirstToken {
        delay_ms: u64,
        #[serde(default)]
        jitter_ms: u64,
        #[serde(default = "always")]
        toxicity: f64,
    },
    /// End a stream after `after_tokens` tokens, without `[DONE]`.
    CutStream {
        after_tokens: u32,
        #[serde(default = "always")]
        toxicity: f64,
    },
}

fn always() -> f64 {
    1.0
}

/// What the active faults do to one request, rolled once when it arrives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effect {
    /// Answer with this status and optional body and Retry-After instead.
    pub error: Option<(u16, Option<String>, Option<u64>)>,
    /// Extra wait before anything is answered.
    pub delay: Duration,
    /// Extra wait before the first token only.
    pub first_token_delay: Duration,
    /// Cut the stream after this many tokens.
    pub cut_after: Option<u32>,
}

/// The faults active in one mock process.
#[derive(Debug, Default)]
pub struct Faults {
    active: RwLock<BTreeMap<String, HttpFault>>,
}

impl Faults {
    pub fn set(&self, id: &str, fault: HttpFault) -> Result<(), String> {
        fault.check()?;
        self.write().insert(id.to_owned(), fault);
        Ok(())
    }

    /// Clears one fault (`Some`) or all; says whether anything was cleared.
    pub fn clear(&self, id: Option<&str>) -> bool {
        let mut active = self.write();
        match id {
            Some(id) => active.remove(id).is_some(),
            None => {
                let any = !active.is_empty();
                active.clear();
                any
            }
        }
    }

    pub fn list_json(&self) -> String {
        let active = self.active.read().unwrap_or_else(|p| p.into_inner());
        serde_json::to_string(&*active).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Rolls every active fault for one request. Cheap when none is active.
    pub fn roll<R: Rng + ?Sized>(&self, rng: &mut R) -> Effect {
        let active = self.active.read().unwrap_or_else(|p| p.into_inner());
        let mut effect = Effect::default();
        for fault in active.values() {
            if !hit(fault.toxicity(), rng) {
                continue;
            }
            match fault {
                HttpFault::Error {
                    status,
                    body,
                    retry_after_s,
                    ..
                } => effect.error = Some((*status, body.clone(), *retry_after_s)),
                HttpFault::Delay {
                    delay_ms,
                    jitter_ms,
                    ..
                } => effect.delay += jittered(*delay_ms, *jitter_ms, rng),
                HttpFault::SlowFirstToken {
                    delay_ms,
                    jitter_ms,
                    ..
                } => effect.first_token_delay += jittered(*delay_ms, *jitter_ms, rng),
                HttpFault::CutStream { after_tokens, .. } => {
                    let cut = effect
                        .cut_after
                        .map_or(*after_tokens, |c| c.min(*after_tokens));
                    effect.cut_after = Some(cut);
                }
            }
        }
        effect
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, HttpFault>> {
        self.active.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl HttpFault {
    fn toxicity(&self) -> f64 {
        match self {
            HttpFault::Error { toxicity, .. }
            | HttpFault::Delay { toxicity, .. }
            | HttpFault::SlowFirstToken { toxicity, .. }
            | HttpFault::CutStream { toxicity, .. } => *toxicity,
        }
    }

    fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.toxicity()) {
            return Err("toxicity must be between 0 and 1".into());
        }
        match self {
            HttpFault::Error { status, .. } if !(400..=599).contains(status) => {
                Err(format!("status {status} is not an error (400..599)"))
            }
            _ => Ok(()),
        }
    }
}

fn hit<R: Rng + ?Sized>(p: f64, rng: &mut R) -> bool {
    p >= 1.0 || (p > 0.0 && rng.random::<f64>() < p)
}

/// `delay` plus a uniform draw in `-jitter..=jitter`, never below zero.
pub(crate) fn jittered<R: Rng + ?Sized>(delay_ms: u64, jitter_ms: u64, rng: &mut R) -> Duration {
    let spread = if jitter_ms == 0 {
        0
    } else {
        rng.random_range(0..=2 * jitter_ms) as i64 - jitter_ms as i64
    };
    Duration::from_millis((delay_ms as i64 + spread).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn faults_combine_and_clear() {
        let faults = Faults::default();
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(faults.roll(&mut rng), Effect::default());
        let json = r#"{"kind":"delay","delay_ms":500,"jitter_ms":50}"#;
        faults
            .set("a", serde_json::from_str(json).unwrap())
            .unwrap();
        let json = r#"{"kind":"cut_stream","after_tokens":3}"#;
        faults
            .set("b", serde_json::from_str(json).unwrap())
            .unwrap();
        let effect = faults.roll(&mut rng);
        assert!((450..=550).contains(&(effect.delay.as_millis() as u64)));
        assert_eq!(effect.cut_after, Some(3));
        assert!(faults.clear(Some("a")));
        assert_eq!(faults.roll(&mut rng).delay, Duration::ZERO);
        assert!(faults.clear(None));
        assert!(!faults.clear(None));
    }

    #[test]
    fn toxicity_is_a_share_and_bad_faults_are_refused() {
        let faults = Faults::default();
        let json = r#"{"kind":"error","status":503,"toxicity":0.25}"#;
        faults
            .set("e", serde_json::from_str(json).unwrap())
            .unwrap();
        let mut rng = SmallRng::seed_from_u64(7);
        let hits = (0..4000)
            .filter(|_| faults.roll(&mut rng).error.is_some())
            .count();
        assert!((800..1200).contains(&hits), "{hits} of 4000");
        let bad: HttpFault = serde_json::from_str(r#"{"kind":"error","status":200}"#).unwrap();
        assert!(faults.set("x", bad).is_err());
    }
}

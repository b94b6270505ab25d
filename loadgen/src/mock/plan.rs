//! One request's draws from the profile: fail or not, time to first token, speed, length — and
//! from them, when each token is due.

use std::time::Duration;

use rand::Rng;

use super::profile::MockProfile;

/// Longest answer the mock writes, whatever the distribution draws: a runaway draw should not
/// make a non-streamed answer eat memory.
pub const MAX_OUTPUT_TOKENS: u32 = 100_000;

/// Why the answer ended, as OpenAI reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    Stop,
    /// Cut short by the request's max_tokens.
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Answer with the profile's error status (after `ttft`) instead of tokens.
    pub fail: bool,
    pub ttft: Duration,
    pub tokens_per_s: f64,
    pub tokens: u32,
    pub finish: Finish,
}

impl Plan {
    pub fn draw<R: Rng + ?Sized>(
        profile: &MockProfile,
        max_tokens: Option<u32>,
        rng: &mut R,
    ) -> Plan {
        let fail = roll(profile.error_rate.0 / 100.0, rng);
        let ttft = profile.ttft.sample(rng);
        let tokens_per_s = profile.tokens_per_s.sample(rng).max(1.0);
        // `as` saturates, so an absurd draw lands on the cap below rather than wrapping.
        let drawn = (profile.output_tokens.sample(rng).round() as u32).clamp(1, MAX_OUTPUT_TOKENS);
        let (tokens, finish) = match max_tokens {
            Some(cap) if drawn > cap => (cap, Finish::Length),
            _ => (drawn, Finish::Stop),
        };
        Plan {
            fail,
            ttft,
            tokens_per_s,
            tokens,
            finish,
        }
    }

    /// When token `i` (from 0) is due, counted from the start of the answer. Computed from the
    /// start each time rather than by adding gaps, so rounding never accumulates into drift.
    pub fn token_due(&self, i: u32) -> Duration {
        self.ttft + Duration::from_secs_f64(f64::from(i) / self.tokens_per_s)
    }

    /// When the whole answer is ready: the last token's due time.
    pub fn complete_after(&self) -> Duration {
        self.token_due(self.tokens.saturating_sub(1))
    }
}

/// True with probability `p`; any `p` (even NaN from a hand-built profile) is safe.
fn roll<R: Rng + ?Sized>(p: f64, rng: &mut R) -> bool {
    if p >= 1.0 {
        true
    } else if p > 0.0 {
        rng.random::<f64>() < p
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::human::Percent;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn profile(yaml: &str) -> MockProfile {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn constant_profile_gives_exact_schedule() {
        let p = profile("ttft: 100ms\ntokens_per_s: 10\noutput_tokens: 5\n");
        let plan = Plan::draw(&p, None, &mut SmallRng::seed_from_u64(1));
        assert_eq!(
            (plan.tokens, plan.finish, plan.fail),
            (5, Finish::Stop, false)
        );
        assert_eq!(plan.token_due(0), Duration::from_millis(100));
        assert_eq!(plan.token_due(3), Duration::from_millis(400));
        assert_eq!(plan.complete_after(), Duration::from_millis(500));
    }

    #[test]
    fn max_tokens_caps_and_says_length() {
        let p = profile("output_tokens: 50\n");
        let mut rng = SmallRng::seed_from_u64(1);
        let plan = Plan::draw(&p, Some(7), &mut rng);
        assert_eq!((plan.tokens, plan.finish), (7, Finish::Length));
        let plan = Plan::draw(&p, Some(50), &mut rng);
        assert_eq!((plan.tokens, plan.finish), (50, Finish::Stop));
    }

    #[test]
    fn draws_are_floored_and_capped() {
        let p = profile("tokens_per_s: 0\noutput_tokens: 0\n");
        let plan = Plan::draw(&p, None, &mut SmallRng::seed_from_u64(1));
        assert_eq!((plan.tokens_per_s, plan.tokens), (1.0, 1));
        let p = profile("output_tokens: 1e30\n");
        let plan = Plan::draw(&p, None, &mut SmallRng::seed_from_u64(1));
        assert_eq!(plan.tokens, MAX_OUTPUT_TOKENS);
    }

    #[test]
    fn error_rate_is_honoured() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut p = profile("error_rate: 100%\n");
        assert!(Plan::draw(&p, None, &mut rng).fail);
        p.error_rate = Percent(25.0);
        let fails = (0..4000)
            .filter(|_| Plan::draw(&p, None, &mut rng).fail)
            .count();
        assert!((800..1200).contains(&fails), "{fails} of 4000");
        p.error_rate = Percent(f64::NAN);
        assert!(!Plan::draw(&p, None, &mut rng).fail);
    }
}

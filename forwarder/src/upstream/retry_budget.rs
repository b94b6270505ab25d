//! A retry budget (Finagle's idea): retries may add at most a share of the request rate, plus a
//! few per second, so when every backend is failing retries cannot multiply the load on them.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RetryConfig;

/// Unspent share is kept up to this many retries, so a quiet hour cannot bank a storm.
const MAX_BALANCE: u64 = 100 * MILLI;
/// The balance counts thousandths of a retry, so shares add up exactly.
const MILLI: u64 = 1000;

#[derive(Debug)]
pub struct RetryBudget {
    share: u64,
    min_per_second: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    balance: u64,
    window: Instant,
    used_in_window: u32,
}

impl RetryBudget {
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            share: (config.budget * MILLI as f64).round() as u64,
            min_per_second: config.min_per_second,
            state: Mutex::new(State {
                balance: 0,
                window: Instant::now(),
                used_in_window: 0,
            }),
        }
    }

    /// Every request earns a share of a retry.
    pub fn deposit(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.balance = (s.balance + self.share).min(MAX_BALANCE);
    }

    /// Takes one retry from the per-second allowance first, then from the earned share.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(s.window) >= Duration::from_secs(1) {
            s.window = now;
            s.used_in_window = 0;
        }
        if s.used_in_window < self.min_per_second {
            s.used_in_window += 1;
            return true;
        }
        if s.balance >= MILLI {
            s.balance -= MILLI;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn minimum_per_second_then_the_earned_share() {
        let budget = RetryBudget::new(&RetryConfig {
            budget: 0.2,
            min_per_second: 2,
            max_attempts: 2,
        });
        let now = Instant::now();
        assert!(budget.try_withdraw(now));
        assert!(budget.try_withdraw(now));
        assert!(!budget.try_withdraw(now), "minimum used, nothing earned");
        for _ in 0..10 {
            budget.deposit();
        }
        assert!(budget.try_withdraw(now));
        assert!(budget.try_withdraw(now));
        assert!(!budget.try_withdraw(now), "10 requests earn 2 retries");
        assert!(
            budget.try_withdraw(now + Duration::from_secs(1)),
            "new second"
        );
    }
}

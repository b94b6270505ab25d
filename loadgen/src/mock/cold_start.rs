//! A fresh instance's cold start: the model loads on the first completion request, and every
//! request that arrives meanwhile waits for it, as on a model server that loads weights lazily.
//! This is the long tail that a gateway's warm-up request takes out of the users' first seconds.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct ColdStart {
    load: Duration,
    /// When the load that the first request started is over.
    loaded_at: OnceLock<Instant>,
}

impl ColdStart {
    pub fn new(load: Duration) -> ColdStart {
        ColdStart {
            load,
            loaded_at: OnceLock::new(),
        }
    }

    /// Waits until the model is loaded, starting the load if this is the first request. The
    /// load's end is fixed when it starts, so a first caller that leaves does not restart it.
    pub async fn ready(&self) {
        if self.load.is_zero() {
            return;
        }
        let loaded_at = *self.loaded_at.get_or_init(|| Instant::now() + self.load);
        if Instant::now() < loaded_at {
            tokio::time::sleep_until(loaded_at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_request_starts_the_load_and_everyone_waits_for_its_end() {
        let cold = ColdStart::new(Duration::from_secs(3));
        let start = Instant::now();
        cold.ready().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        // Loaded: later requests pay nothing.
        let later = Instant::now();
        cold.ready().await;
        assert_eq!(later.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_arriving_mid_load_waits_only_for_the_rest() {
        let cold = std::sync::Arc::new(ColdStart::new(Duration::from_secs(3)));
        let first = tokio::spawn({
            let cold = cold.clone();
            async move { cold.ready().await }
        });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second = Instant::now();
        cold.ready().await;
        assert_eq!(second.elapsed(), Duration::from_secs(2));
        first.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn no_cold_start_costs_nothing() {
        let cold = ColdStart::default();
        let start = Instant::now();
        cold.ready().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

//! The way to the backends: each backend's state, the pooled client that reaches them, and the
//! guards that decide whether to try one (health probes, circuit breaker, retry budget, load).

pub mod backend;
pub mod client;

pub mod breaker;
pub mod failure_rate;
pub mod health;
pub mod load;
pub mod retry_budget;

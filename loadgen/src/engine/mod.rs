//! The load engine: virtual users that send requests, wait for whole answers, think, and again
//! (the closed model), their number following the scenario's stages.
//!
//! A controller task publishes the wanted user count; users with an index above it park. When
//! the stages end the run drains: no new requests, in-flight ones may finish within the
//! graceful stop, and any still open then are counted `interrupted`. Nothing is lost.

pub mod client;
pub mod request;
pub mod sse;
mod users;

pub use users::{Phase, run_closed};

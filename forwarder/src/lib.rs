//! forwarder: an OpenAI-compatible LLM message forwarder ("AI gateway").
//!
//! Callers send `/v1/*` requests; the forwarder admits them (bounded concurrency, bounded wait
//! queue), picks a healthy backend round-robin, forwards over a pooled HTTP/1.1 client and
//! streams the answer back frame by frame.

// Startup and wiring.
pub mod cli;
pub mod config;
pub mod log;
pub mod server;

// One request's path, in order.
pub mod admission;
pub mod balance;
pub mod body;
pub mod pipeline;
pub mod router;
pub mod upstream;

// Shared pieces.
pub mod backend;
pub mod error_body;
pub mod headers;
pub mod health;
pub mod metrics;

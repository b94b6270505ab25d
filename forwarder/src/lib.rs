//! forwarder: an OpenAI-compatible LLM message forwarder ("AI gateway").
//!
//! Callers send `/v1/*` requests; the forwarder checks their key, reads and checks the body,
//! answers from its cache when it may, admits them (bounded concurrency, bounded wait queue),
//! routes them (consistent hash by user id with bounded loads, else power of two choices),
//! skips backends whose circuit breaker is open, forwards over a pooled HTTP/1.1 client,
//! retries within a budget before any byte reached the client, and streams the answer back
//! frame by frame.

// Startup and wiring.
pub mod cli;
pub mod config;
pub mod fd_limit;
pub mod log;
pub mod server;
pub mod warmup;

// One request's path, in order.
pub mod admission;
pub mod attempt;
pub mod auth;
pub mod body;
pub mod breaker;
pub mod cache;
pub mod compression;
pub mod failure_rate;
pub mod pipeline;
pub mod request;
pub mod retry_budget;
pub mod router;
pub mod routing;
pub mod upstream;
pub mod ws;

// Shared pieces.
pub mod backend;
pub mod error_body;
pub mod headers;
pub mod health;
pub mod load;
pub mod metrics;

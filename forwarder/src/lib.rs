//! forwarder: an OpenAI-compatible LLM message forwarder ("AI gateway").
//!
//! The modules follow one request, top to bottom; each imports only those below it.
//!
//! 1. [`server`]: listen, accept within limits, serve connections, warm up, shut down.
//! 2. [`front`]: the routes (`/healthz`, `/readyz`, `/metrics`, `/v1/*`) and WebSocket sessions.
//! 3. [`pipeline`]: one `/v1/*` request — check the key, read and check the body, answer from
//!    the cache when it may, admit (bounded concurrency and wait queue), route (consistent hash
//!    by user id with bounded loads, else power of two choices), attempt (retries within a
//!    budget before any byte reached the client), and stream the answer back frame by frame.
//! 4. [`upstream`]: the backends — pooled clients, health, circuit breakers, retry budget, load.
//! 5. [`config`]: the file, its values and the gateway policies, merged with overrides.
//! 6. [`metrics`], [`headers`], [`log`]: shared by all of the above.
//!
//! [`cli`] is the binary's edge: flags turned into a config path and overrides.
#![forbid(unsafe_code)]

pub mod cli;

pub mod server;

pub mod front;

pub mod pipeline;

pub mod upstream;

pub mod config;

pub mod headers;
pub mod log;
pub mod metrics;

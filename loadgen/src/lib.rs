//! loadgen: a load-testing and chaos CLI for LLM gateways.
//!
//! Data flows one way: a scenario file is parsed and validated into a plan ([`scenario`]); the
//! local stack it declares (mock LLM backends, the forwarder) is started as child processes
//! ([`stack`]); the engine drives virtual users against the target ([`engine`]); every outcome is
//! recorded into per-second HDR intervals ([`stats`]) that feed the progress display ([`ui`]) and
//! the report writers ([`report`]); at the end the summary is judged against the budgets
//! ([`report::budget`]) and the exit code says how it went ([`exit`]). Afterwards [`compare`]
//! judges one run's report against another's (a release against its baseline). While the load
//! runs, [`chaos`] injects the scenario's scheduled faults into the stack and measures their
//! effect.
//!
//! The mock LLM server ([`mock`]) is a product feature in its own right: `loadgen mock` serves an
//! OpenAI-compatible API with a realistic latency and token profile.

pub mod chaos;
pub mod compare;
pub mod engine;
pub mod exit;
pub mod mock;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stack;
pub mod stats;
pub mod ui;

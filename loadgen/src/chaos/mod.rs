//! Chaos: scheduled fault injection into the local stack or running chaos proxies, and what the
//! faults did.
//!
//! A scenario's `faults:` list ([`spec`]) resolves into [`Fault`]s ([`fault`]) that the
//! [`timeline`] applies while the load runs: process faults signal and restart stack children;
//! HTTP faults are switched on in the mock backends through their `/_chaos` control
//! ([`control`]); network faults are set on the fault [`proxy`] loadgen puts between the
//! forwarder and each backend when a scenario has any, or on a `loadgen chaos-proxy` the
//! scenario names (through its control API). [`figures`] turns the journal of what
//! happened into timeseries markers, `faults.csv` and the resilience rows of summary.csv.
//! [`standalone`] is `loadgen chaos-proxy`: the proxy on its own, with an HTTP control API.

mod control;
pub mod fault;
pub mod figures;
pub mod proxy;
pub mod spec;
pub mod standalone;
pub mod timeline;

pub use fault::{Fault, FaultKind, ProcessAction, Target};

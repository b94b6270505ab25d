//! The front: what a client connection's requests are dispatched to.
//!
//! [`state`] is the shared state every route reads; [`routes`] dispatches a request by path;
//! [`ws`] serves WebSocket sessions whose messages go through the same pipeline.

pub mod state;

pub mod routes;
pub mod ws;

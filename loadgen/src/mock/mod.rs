//! The mock LLM server.

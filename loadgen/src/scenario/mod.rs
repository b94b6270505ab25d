//! Scenario files: the YAML schema, its validation, and the human scalars and distributions in it.

pub mod distribution;
pub mod human;

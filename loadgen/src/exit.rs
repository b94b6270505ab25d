//! Exit codes of `loadgen run` (and `validate`), as documented in the README.

/// Every budget was met.
pub const OK: i32 = 0;
/// The run completed but at least one budget was missed.
pub const BUDGET_FAILED: i32 = 1;
/// Bad input: usage, scenario, or configuration.
pub const BAD_INPUT: i32 = 2;
/// The run itself failed: the stack did not start, the target was unreachable, an internal error.
pub const RUN_FAILED: i32 = 3;

//! Stderr logging that can never panic (a closed stderr must not take the forwarder down).

use std::fmt;
use std::io::Write;

/// Writes one `forwarder: ...` line to stderr, ignoring write errors.
pub fn line(args: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "forwarder: {args}");
}

/// `log!("...", args)`: one line on stderr; used for startup and errors only, never per request.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::log::line(format_args!($($arg)*))
    };
}

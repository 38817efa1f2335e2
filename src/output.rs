//! What the command line writes as a command's result.

use std::io::Write;

use anyhow::Context;

/// Writes `line` and a newline to standard output, or says why it could not. `println!` panics
/// when nobody reads the output (a closed pipe): the panic would skip stopping the private
/// PostgreSQL, and end a command that had done its work without saying what it did.
pub fn say(line: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .context("writing the result to standard output")
}

/// [`say`] with `format!`'s arguments.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::say(format_args!($($arg)*))
    };
}

//! Running a program to completion, and quoting what it (or the server's log) said in errors.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Output};

use crate::error::LocalPgError;

/// How much of postgres.log an error quotes.
const LOG_TAIL_LINES: usize = 20;

/// Run a command to completion, capturing what it prints.
pub(crate) fn run(mut cmd: Command) -> Result<Output, LocalPgError> {
    cmd.output().map_err(|source| LocalPgError::Spawn {
        command: describe(&cmd),
        source,
    })
}

pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// stdout and stderr, trimmed to their last lines.
pub(crate) fn combined_output(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail = last_lines(&text, 2 * LOG_TAIL_LINES);
    if tail.is_empty() {
        "no output".to_owned()
    } else {
        tail
    }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// The log from byte `offset` on (at most its last 64 KiB).
pub(crate) fn read_log_from(path: &Path, offset: u64) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = offset.max(len.saturating_sub(64 * 1024)).min(len);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub(crate) fn log_tail(path: &Path) -> String {
    match read_log_from(path, 0) {
        Ok(text) if text.trim().is_empty() => "(the log is empty)".to_owned(),
        Ok(text) => last_lines(&text, LOG_TAIL_LINES),
        Err(e) => format!("(could not read the log: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
    }
}

//! Logging set-up.

use tracing_subscriber::EnvFilter;

/// Installs a `tracing` subscriber writing to stderr; `RUST_LOG` overrides the default filter.
/// Idempotent, so tests may call it from every test.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal: a log file or collector gets plain text
        // (and every span's fields are formatted once per span, so this is on the hot path).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

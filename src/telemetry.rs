//! Logging set-up.

use tracing_subscriber::EnvFilter;

/// Targets held at `info` whatever `RUST_LOG` asks: `webauthn-rs` logs the attested credential
/// (its id and public key) at debug and the ceremony state (the challenge) at trace, which the
/// service seals at rest (decision 109).
pub const CAPPED_TARGETS: &[&str] = &["webauthn_rs_core=info", "webauthn_rs=info"];

/// `filter` with [`CAPPED_TARGETS`] held at their level.
pub fn capped(mut filter: EnvFilter) -> EnvFilter {
    for directive in CAPPED_TARGETS {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs a `tracing` subscriber writing to stderr; `RUST_LOG` overrides the default filter.
/// Idempotent, so tests may call it from every test.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(capped(filter))
        // Colours only for a person at a terminal: a log file or collector gets plain text
        // (and every span's fields are formatted once per span, so this is on the hot path).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

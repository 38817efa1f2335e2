//! The capture of everything the services of this test process log.

use std::sync::OnceLock;

use tracing_subscriber::Layer;

/// Everything the services of this test process logged, at debug level: tests scan it for
/// secrets. (With `TEST_LOG` set it is also printed.)
static LOGS: OnceLock<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn install_log_capture() {
    LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let capture = Capture(buffer.clone());
        let captured = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || capture.clone())
            // The service's own cap on what a library may log, as in production.
            .with_filter(twofold::telemetry::capped(
                tracing_subscriber::EnvFilter::new(
                    "debug,hyper=info,hyper_util=info,h2=info,reqwest=info",
                ),
            ));
        let printed = std::env::var_os("TEST_LOG").map(|_| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
        });
        let _ = tracing_subscriber::registry()
            .with(captured)
            .with(printed)
            .try_init();
        buffer
    });
}

/// The log lines captured so far in this test process.
pub fn captured_logs() -> String {
    LOGS.get()
        .and_then(|b| {
            b.lock()
                .ok()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
        })
        .unwrap_or_default()
}

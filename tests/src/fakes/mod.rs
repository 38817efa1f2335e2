//! In-process stand-ins for the outside world that the service delivers codes to, each
//! capturing what it received so a test can read the code from it:
//!
//! - [`SmtpCapture`]: a real SMTP server (`mailin-embedded`) on a free loopback port;
//! - [`FakeTwilio`]: an axum server speaking Twilio's Messages API, answering from a script;
//! - [`FakeWebhook`]: an axum server receiving the signed SMS webhook and checking signatures.
//!
//! They dedupe nothing: tests assert exactly what arrived. Each runs on its own thread (the
//! HTTP ones with their own Tokio runtime), so they work from sync and async tests alike and
//! keep answering while a test blocks.

mod mail;
mod smtp;
mod twilio;
mod webhook;

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::Router;

pub use mail::{decode_quoted_printable, extract_code, ReceivedMail};
pub use smtp::SmtpCapture;
pub use twilio::{FakeTwilio, TwilioRequest};
pub use webhook::{FakeWebhook, WebhookRequest};

/// How a notification id starts (`n-…`; challenge ids are plain base32): the fakes list
/// security notices apart from codes, so tests that count codes are not thrown off by them.
pub const NOTICE_ID_PREFIX: &str = "n-";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `read` until it returns at least `n` items, at most `timeout`; panics with `what` and
/// what did arrive otherwise.
async fn poll_for<T: Clone + std::fmt::Debug>(
    what: &str,
    n: usize,
    timeout: Duration,
    read: impl Fn() -> Vec<T>,
) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let items = read();
        if items.len() >= n {
            return items;
        }
        if Instant::now() >= deadline {
            panic!(
                "waited {timeout:?} for {n} {what}, got {}: {items:#?}",
                items.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An axum server on a free loopback port, on its own thread and runtime; stopped on drop.
struct HttpServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HttpServer {
    fn start(name: &str, app: Router) -> HttpServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a fake's port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("fake's address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("{name}-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the fake server");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .expect("starting a fake server thread");
        HttpServer {
            addr,
            stop: Some(stop),
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn headers_of(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

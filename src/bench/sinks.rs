//! Local message sinks for the delivery measurement: a real SMTP server (`mailin-embedded`) and
//! an HTTP server speaking Twilio's Messages API, both on the loopback. They record what arrives
//! (keyed by the challenge the service put in each message), so the benchmark can check that
//! every code was delivered exactly once and read codes back as a user would.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Form, Json, Router};

/// One message as a sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The recipient (email address or E.164 number).
    pub to: String,
    /// What identifies the challenge: the Message-ID (email) or the idempotency token (SMS).
    pub key: String,
    /// The text the user reads.
    pub body: String,
}

/// Messages received so far, shared with the server threads, and whether the provider is
/// "down" (`twofold chaos` refuses every message for a while: 451 by SMTP, 503 by HTTP) or
/// "hanging" (it answers nothing until the hang ends, then refuses what it held, as when the
/// network drops the packets).
#[derive(Clone, Default)]
pub struct Inbox(
    Arc<Mutex<Vec<Received>>>,
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::atomic::AtomicBool>,
);

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Vec<Received>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses (`true`) or accepts again every message from now on.
    pub fn set_down(&self, down: bool) {
        self.1.store(down, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_down(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Answers nothing (`true`) from now on, or answers again.
    pub fn set_hanging(&self, hanging: bool) {
        self.2.store(hanging, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_hanging(&self) -> bool {
        self.2.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn push(&self, r: Received) {
        self.lock().push(r);
    }

    /// How many messages arrived.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Every message so far, in arrival order.
    pub fn messages(&self) -> Vec<Received> {
        self.lock().clone()
    }

    /// The latest code sent to `to`: SMS texts start with it ("123456 is your Acme sign-in
    /// code..."), in every language; otherwise the first run of `digits` digits after the word
    /// "code" ("Your Acme sign-in code is: 123456").
    pub fn latest_code(&self, to: &str, digits: usize) -> Option<String> {
        self.lock().iter().rev().find(|r| r.to == to).and_then(|r| {
            if r.body.starts_with(|c: char| c.is_ascii_digit()) {
                return first_digits(&r.body, digits);
            }
            let after = r
                .body
                .find("code")
                .map_or(r.body.as_str(), |i| &r.body[i..]);
            first_digits(after, digits)
        })
    }
}

/// The first run of exactly `digits` ASCII digits in `text`.
pub fn first_digits(text: &str, digits: usize) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == digits {
                return Some(text[start..i].to_owned());
            }
        } else {
            i += 1;
        }
    }
    None
}

#[derive(Clone)]
struct MailHandler {
    inbox: Inbox,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for MailHandler {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        if self.inbox.is_hanging() {
            while self.inbox.is_hanging() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            return mailin_embedded::response::INTERNAL_ERROR;
        }
        if self.inbox.is_down() {
            return mailin_embedded::response::INTERNAL_ERROR;
        }
        self.to = to.to_vec();
        self.data.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let raw = String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned();
        let key = raw
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("message-id")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default();
        // The text part comes first; its code is what the user types.
        let body = raw
            .split_once("\r\n\r\n")
            .map_or(raw.as_str(), |(_, b)| b)
            .to_owned();
        for to in std::mem::take(&mut self.to) {
            self.inbox.push(Received {
                to,
                key: key.clone(),
                body: body.clone(),
            });
        }
        mailin_embedded::response::OK
    }
}

/// A plain SMTP server on the loopback.
pub struct SmtpSink {
    addr: SocketAddr,
    /// What it received.
    pub inbox: Inbox,
}

impl SmtpSink {
    /// Starts the server on a free port (threads of its own).
    pub fn start() -> anyhow::Result<Self> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the SMTP sink")?;
        let addr = listener.local_addr()?;
        let inbox = Inbox::default();
        let mut server = mailin_embedded::Server::new(MailHandler {
            inbox: inbox.clone(),
            to: Vec::new(),
            data: Vec::new(),
        });
        server
            .with_name("sink.bench.twofold")
            // A thread per open connection, and the worker has up to 32 sends in flight: with
            // 4 threads, sends queued on the sink and the bench measured the sink.
            .with_num_threads(64)
            .with_tcp_listener(listener);
        std::thread::Builder::new()
            .name("bench-smtp-sink".into())
            .spawn(move || {
                if let Err(e) = server.serve() {
                    eprintln!("SMTP sink stopped: {e}");
                }
            })?;
        Ok(Self { addr, inbox })
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }
}

/// An HTTP server that accepts Twilio Messages API requests (any account, any credentials).
pub struct SmsSink {
    addr: SocketAddr,
    /// What it received.
    pub inbox: Inbox,
}

#[derive(serde::Deserialize)]
struct TwilioForm {
    #[serde(rename = "To")]
    to: String,
    #[serde(rename = "Body")]
    body: String,
}

async fn twilio_message(
    State(inbox): State<Inbox>,
    headers: HeaderMap,
    Form(form): Form<TwilioForm>,
) -> (StatusCode, Json<serde_json::Value>) {
    let key = headers
        .get("I-Twilio-Idempotency-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if inbox.is_hanging() {
        while inbox.is_hanging() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "message": "the chaos run's hang is over" })),
        );
    }
    if inbox.is_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "message": "down for the chaos run" })),
        );
    }
    let sid = format!("SM{:032}", inbox.len());
    inbox.push(Received {
        to: form.to,
        key,
        body: form.body,
    });
    (
        StatusCode::CREATED,
        Json(serde_json::json!({ "sid": sid, "status": "queued" })),
    )
}

impl SmsSink {
    /// Starts the server on a free port, on a runtime thread of its own.
    pub fn start() -> anyhow::Result<Self> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the SMS sink")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let inbox = Inbox::default();
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(twilio_message),
            )
            .with_state(inbox.clone());
        std::thread::Builder::new()
            .name("bench-sms-sink".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    eprintln!("SMS sink: no runtime");
                    return;
                };
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => {
                            let _ = axum::serve(l, app).await;
                        }
                        Err(e) => eprintln!("SMS sink stopped: {e}"),
                    }
                });
            })?;
        Ok(Self { addr, inbox })
    }

    /// `http://127.0.0.1:PORT`, for `TWOFOLD_TWILIO_API_BASE`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_as_whole_runs_of_digits() {
        assert_eq!(
            first_digits("Your code is 123456. Valid 10 min", 6).as_deref(),
            Some("123456")
        );
        assert_eq!(
            first_digits("2026 code 12345678", 8).as_deref(),
            Some("12345678")
        );
        assert_eq!(first_digits("1234567", 6), None);
    }
}

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

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

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

// ---------------------------------------------------------------------------------------------
// SMTP

/// One message the SMTP capture server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The raw message (headers and body, as sent after `DATA`, dot-unstuffed).
    pub data: String,
}

impl ReceivedMail {
    /// The value of the first header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_of(split_message(&self.data).0, name)
    }

    /// The decoded `text/plain` part (or the body of a single-part plain message).
    pub fn text(&self) -> Option<String> {
        text_parts(&self.data)
            .into_iter()
            .find(|(ty, _)| ty.starts_with("text/plain"))
            .map(|(_, body)| body)
    }

    /// The decoded `text/html` part.
    pub fn html(&self) -> Option<String> {
        text_parts(&self.data)
            .into_iter()
            .find(|(ty, _)| ty.starts_with("text/html"))
            .map(|(_, body)| body)
    }
}

/// How the capture server answers `RCPT TO`.
#[derive(Debug, Clone, Copy)]
enum RcptAnswer {
    Accept,
    /// Refuse with this code; the reply text quotes the address, as real servers do.
    Refuse(u16),
}

#[derive(Clone)]
struct CaptureHandler {
    store: Arc<Mutex<Vec<ReceivedMail>>>,
    rcpt: RcptAnswer,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for CaptureHandler {
    fn rcpt(&mut self, to: &str) -> mailin_embedded::Response {
        match self.rcpt {
            RcptAnswer::Accept => mailin_embedded::response::OK,
            RcptAnswer::Refuse(code) => mailin_embedded::Response::custom(
                code,
                format!("<{to}>: Recipient address rejected"),
            ),
        }
    }

    fn data_start(
        &mut self,
        _domain: &str,
        from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let mail = ReceivedMail {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
        };
        lock(&self.store).push(mail);
        mailin_embedded::response::OK
    }
}

/// A real SMTP server on `127.0.0.1` that keeps every message it receives. Plain SMTP, no
/// authentication: point `TWOFOLD_SMTP_URL` at [`SmtpCapture::url`].
pub struct SmtpCapture {
    addr: SocketAddr,
    store: Arc<Mutex<Vec<ReceivedMail>>>,
}

impl SmtpCapture {
    /// Starts a server that accepts every message.
    pub fn start() -> SmtpCapture {
        Self::start_with(RcptAnswer::Accept)
    }

    /// Starts a server that refuses every recipient with `code` (e.g. 550 for a permanent,
    /// 450 for a temporary failure), quoting the address in its reply as real servers do.
    pub fn start_refusing(code: u16) -> SmtpCapture {
        Self::start_with(RcptAnswer::Refuse(code))
    }

    fn start_with(rcpt: RcptAnswer) -> SmtpCapture {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("binding the SMTP capture port");
        let addr = listener.local_addr().expect("SMTP capture address");
        let store = Arc::new(Mutex::new(Vec::new()));
        let handler = CaptureHandler {
            store: store.clone(),
            rcpt,
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = mailin_embedded::Server::new(handler);
        server
            .with_name("capture.twofold.test")
            .with_num_threads(4)
            .with_tcp_listener(listener);
        std::thread::Builder::new()
            .name(format!("smtp-capture-{}", addr.port()))
            .spawn(move || {
                if let Err(e) = server.serve() {
                    eprintln!("SMTP capture server stopped: {e}");
                }
            })
            .expect("starting the SMTP capture thread");
        SmtpCapture { addr, store }
    }

    /// `smtp://127.0.0.1:PORT`, for `TWOFOLD_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.store).clone()
    }

    /// Waits until at least `n` messages arrived (panics after `timeout`); returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        poll_for("mails", n, timeout, || self.messages()).await
    }
}

/// The first standalone run of exactly `digits` ASCII digits (not touching another letter or
/// digit) in `text`. `text` may be a raw mail: then its headers are skipped and its text parts
/// are decoded (quoted-printable, base64) first, plain text before HTML.
pub fn extract_code(text: &str, digits: usize) -> Option<String> {
    if looks_like_mail(text) {
        let parts = text_parts(text);
        let mut ordered: Vec<&(String, String)> = parts
            .iter()
            .filter(|(ty, _)| ty.starts_with("text/plain"))
            .collect();
        ordered.extend(parts.iter().filter(|(ty, _)| !ty.starts_with("text/plain")));
        return ordered
            .into_iter()
            .find_map(|(_, body)| find_digits(body, digits));
    }
    find_digits(text, digits)
}

fn find_digits(text: &str, digits: usize) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let before = start.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i).copied();
            let touches = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
            if i - start == digits && !touches(before) && !touches(after) {
                return Some(chars[start..i].iter().collect());
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Whether `text` starts with an RFC 5322 header block.
fn looks_like_mail(text: &str) -> bool {
    let first = text.lines().next().unwrap_or("");
    let (name, _) = match first.split_once(':') {
        Some(pair) => pair,
        None => return false,
    };
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && (text.contains("\r\n\r\n") || text.contains("\n\n"))
}

/// Headers and body of a message or a MIME part.
fn split_message(text: &str) -> (&str, &str) {
    for sep in ["\r\n\r\n", "\n\n"] {
        if let Some(i) = text.find(sep) {
            return (&text[..i], &text[i + sep.len()..]);
        }
    }
    (text, "")
}

fn header_of(headers: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in headers.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(v) = found.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case(name) {
                found = Some(v.trim().to_owned());
            }
        }
    }
    found
}

/// The `boundary` parameter of a multipart Content-Type.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Every text part of a message as (lower-case content type, decoded text), in order.
fn text_parts(raw: &str) -> Vec<(String, String)> {
    let (headers, body) = split_message(raw);
    let content_type = header_of(headers, "Content-Type")
        .unwrap_or_else(|| "text/plain".to_owned())
        .to_ascii_lowercase();
    let original_type = header_of(headers, "Content-Type").unwrap_or_default();
    if content_type.starts_with("multipart/") {
        let Some(b) = boundary(&original_type) else {
            return Vec::new();
        };
        let delimiter = format!("--{b}");
        return body
            .split(delimiter.as_str())
            .skip(1)
            .take_while(|part| !part.starts_with("--"))
            .flat_map(|part| text_parts(part.trim_start_matches(['\r', '\n'])))
            .collect();
    }
    if !content_type.starts_with("text/") {
        return Vec::new();
    }
    let encoding = header_of(headers, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        }
        _ => body.to_owned(),
    };
    vec![(content_type, decoded)]
}

/// RFC 2045 quoted-printable: `=XX` escapes and `=` soft line breaks.
pub fn decode_quoted_printable(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if bytes[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// HTTP servers

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

// ---------------------------------------------------------------------------------------------
// Twilio

/// One request the fake Twilio received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioRequest {
    /// The account SID in the path.
    pub account_sid: String,
    /// The basic-auth user and password, when present and decodable.
    pub basic_auth: Option<(String, String)>,
    /// `I-Twilio-Idempotency-Token`.
    pub idempotency_token: Option<String>,
    /// Form field `To`.
    pub to: String,
    /// Form field `From`.
    pub from: String,
    /// Form field `Body`.
    pub body: String,
    /// Every header, as received.
    pub headers: Vec<(String, String)>,
    /// The status the fake answered with.
    pub status: u16,
    /// The `sid` it returned (on 201).
    pub sid: Option<String>,
}

struct TwilioState {
    sid: String,
    token: String,
    script: VecDeque<u16>,
    requests: Vec<TwilioRequest>,
    /// While set, each request waits here until the barrier's count of requests are waiting.
    hold: Option<Arc<tokio::sync::Barrier>>,
}

/// An in-process Twilio Messages API: `POST /2010-04-01/Accounts/{sid}/Messages.json`. It
/// checks basic auth (401 otherwise), answers each authorised request with the next status of
/// its script (then 201) in Twilio's JSON shapes, and records every request.
pub struct FakeTwilio {
    server: HttpServer,
    state: Arc<Mutex<TwilioState>>,
}

impl FakeTwilio {
    /// Starts with the credentials [`crate::TWILIO_SID`] / [`crate::TWILIO_TOKEN`] and `script`
    /// (e.g. `[500, 201]`; after the script, 201).
    pub fn start(script: Vec<u16>) -> FakeTwilio {
        Self::start_with_credentials(crate::TWILIO_SID, crate::TWILIO_TOKEN, script)
    }

    /// Starts with the given account credentials.
    pub fn start_with_credentials(sid: &str, token: &str, script: Vec<u16>) -> FakeTwilio {
        let state = Arc::new(Mutex::new(TwilioState {
            sid: sid.to_owned(),
            token: token.to_owned(),
            script: script.into(),
            requests: Vec::new(),
            hold: None,
        }));
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(twilio_messages),
            )
            .with_state(state.clone());
        FakeTwilio {
            server: HttpServer::start("fake-twilio", app),
            state,
        }
    }

    /// `http://127.0.0.1:PORT`, for `TWOFOLD_TWILIO_API_BASE`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// From now on, answers nothing until `n` requests are waiting at once, then answers them
    /// all (and so on, `n` at a time): a sender that sends one message at a time never gets
    /// an answer.
    pub fn answer_only_in_groups_of(&self, n: usize) {
        lock(&self.state).hold = Some(Arc::new(tokio::sync::Barrier::new(n)));
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<TwilioRequest> {
        lock(&self.state).requests.clone()
    }

    /// The requests answered 201: the messages "sent".
    pub fn delivered(&self) -> Vec<TwilioRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == 201)
            .collect()
    }

    /// Waits until at least `n` messages were delivered (panics after `timeout`).
    pub async fn wait_for_delivered(&self, n: usize, timeout: Duration) -> Vec<TwilioRequest> {
        poll_for("delivered SMS", n, timeout, || self.delivered()).await
    }

    /// Waits until at least `n` requests arrived, whatever their answer (panics after
    /// `timeout`).
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<TwilioRequest> {
        poll_for("Twilio requests", n, timeout, || self.requests()).await
    }
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = header_value(headers, "authorization")?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

async fn twilio_messages(
    State(state): State<Arc<Mutex<TwilioState>>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: Vec<(String, String)> = serde_urlencoded_pairs(&body);
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let auth = basic_auth(&headers);
    let hold = lock(&state).hold.clone();
    if let Some(barrier) = hold {
        barrier.wait().await;
    }
    let mut state = lock(&state);
    let authorised = sid == state.sid
        && auth
            .as_ref()
            .is_some_and(|(u, p)| *u == state.sid && *p == state.token);
    let status = if !authorised {
        401
    } else {
        state.script.pop_front().unwrap_or(201)
    };
    let n = state.requests.len();
    let message_sid = (status == 201 || status == 200).then(|| format!("SM{n:032x}"));
    state.requests.push(TwilioRequest {
        account_sid: sid.clone(),
        basic_auth: auth,
        idempotency_token: header_value(&headers, "i-twilio-idempotency-token"),
        to: field("To"),
        from: field("From"),
        body: field("Body"),
        headers: headers_of(&headers),
        status,
        sid: message_sid.clone(),
    });
    drop(state);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let answer = match message_sid {
        Some(message_sid) => json!({
            "sid": message_sid,
            "account_sid": sid,
            "to": field("To"),
            "from": field("From"),
            "body": field("Body"),
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "error_code": null,
            "error_message": null,
        }),
        None => {
            let (code, message) = match status {
                401 => (20003, "Authenticate".to_owned()),
                400 => (
                    21211,
                    format!(
                        "The 'To' number {} is not a valid phone number.",
                        field("To")
                    ),
                ),
                429 => (20429, "Too Many Requests".to_owned()),
                _ => (20500, "Internal Server Error".to_owned()),
            };
            json!({
                "code": code,
                "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status,
            })
        }
    };
    (code, axum::Json(answer)).into_response()
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn serde_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Webhook

/// One request the fake webhook received.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRequest {
    /// `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// `X-Twofold-Timestamp`.
    pub timestamp: Option<String>,
    /// `X-Twofold-Signature`.
    pub signature: Option<String>,
    /// Whether the signature is the HMAC-SHA256 of `timestamp + "." + raw body` under the
    /// fake's secret (computed here independently of the sender's code).
    pub signature_valid: bool,
    /// The raw body.
    pub raw: Vec<u8>,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: Value,
    /// Every header, as received.
    pub headers: Vec<(String, String)>,
    /// The status the fake answered with.
    pub status: u16,
}

struct WebhookState {
    secret: Vec<u8>,
    script: VecDeque<u16>,
    requests: Vec<WebhookRequest>,
}

/// An in-process receiver of the SMS webhook: records every request, checks its signature, and
/// answers with the next status of its script (then 200, with `{"id": "wh_N"}`).
pub struct FakeWebhook {
    server: HttpServer,
    state: Arc<Mutex<WebhookState>>,
}

impl FakeWebhook {
    /// Starts a receiver that verifies signatures under `secret` and accepts everything.
    pub fn start(secret: &str) -> FakeWebhook {
        Self::start_scripted(secret, Vec::new())
    }

    /// Starts a receiver answering with `script` first (e.g. `[503]`), then 200.
    pub fn start_scripted(secret: &str, script: Vec<u16>) -> FakeWebhook {
        let state = Arc::new(Mutex::new(WebhookState {
            secret: secret.as_bytes().to_vec(),
            script: script.into(),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/sms", post(webhook_receive))
            .with_state(state.clone());
        FakeWebhook {
            server: HttpServer::start("fake-webhook", app),
            state,
        }
    }

    /// `http://127.0.0.1:PORT/sms`, for `TWOFOLD_SMS_WEBHOOK_URL`.
    pub fn url(&self) -> String {
        format!("{}/sms", self.server.base_url())
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<WebhookRequest> {
        lock(&self.state).requests.clone()
    }

    /// Waits until at least `n` requests arrived (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<WebhookRequest> {
        poll_for("webhook requests", n, timeout, || self.requests()).await
    }
}

async fn webhook_receive(
    State(state): State<Arc<Mutex<WebhookState>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let timestamp = header_value(&headers, "x-twofold-timestamp");
    let signature = header_value(&headers, "x-twofold-signature");
    let mut state = lock(&state);
    let signature_valid = match (&timestamp, &signature) {
        (Some(ts), Some(sig)) => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&state.secret)
                .expect("HMAC takes any key length");
            mac.update(ts.as_bytes());
            mac.update(b".");
            mac.update(&body);
            let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            *sig == expected
        }
        _ => false,
    };
    let status = state.script.pop_front().unwrap_or(200);
    let n = state.requests.len();
    state.requests.push(WebhookRequest {
        idempotency_key: header_value(&headers, "idempotency-key"),
        timestamp,
        signature,
        signature_valid,
        raw: body.to_vec(),
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        headers: headers_of(&headers),
        status,
    });
    drop(state);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let answer = if code.is_success() {
        json!({ "id": format!("wh_{n}") })
    } else {
        json!({ "message": format!("refused with {status}") })
    };
    (code, axum::Json(answer)).into_response()
}

//! The fake Twilio Messages API.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use serde_json::json;

use super::{header_value, headers_of, lock, poll_for, HttpServer};

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
    /// Form field `From` (empty when not sent).
    pub from: String,
    /// Form field `MessagingServiceSid`, when sent.
    pub messaging_service_sid: Option<String>,
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

    /// Every request of a code received so far, oldest first (security notices apart: see
    /// [`FakeTwilio::notices`]).
    pub fn requests(&self) -> Vec<TwilioRequest> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| !r.is_notice())
            .cloned()
            .collect()
    }

    /// The security notices delivered (answered 201) so far, oldest first.
    pub fn notices(&self) -> Vec<TwilioRequest> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.is_notice() && r.status == 201)
            .cloned()
            .collect()
    }

    /// Waits until at least `n` notices were delivered (panics after `timeout`).
    pub async fn wait_for_notices(&self, n: usize, timeout: Duration) -> Vec<TwilioRequest> {
        poll_for("delivered notices", n, timeout, || self.notices()).await
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

impl TwilioRequest {
    /// Whether this is a security notice (its idempotency key is a notification id).
    pub fn is_notice(&self) -> bool {
        self.idempotency_token
            .as_deref()
            .is_some_and(|t| t.starts_with(crate::fakes::NOTICE_ID_PREFIX))
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
    let service = form
        .iter()
        .find(|(k, _)| k == "MessagingServiceSid")
        .map(|(_, v)| v.clone());
    // Like Twilio (error 21603): a message needs a sender, a From or a Messaging Service.
    let no_sender = field("From").is_empty() && service.is_none();
    let status = if !authorised {
        401
    } else if no_sender {
        400
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
        messaging_service_sid: service,
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
                400 if no_sender => (21603, "A 'From' phone number is required.".to_owned()),
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

//! The fake receiver of the signed SMS webhook.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{header_value, headers_of, lock, poll_for, HttpServer};

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

    /// Every request of a code received so far, oldest first (security notices apart).
    pub fn requests(&self) -> Vec<WebhookRequest> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| !r.is_notice())
            .cloned()
            .collect()
    }

    /// The security notices received so far, oldest first.
    pub fn notices(&self) -> Vec<WebhookRequest> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.is_notice())
            .cloned()
            .collect()
    }

    /// Waits until at least `n` requests arrived (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<WebhookRequest> {
        poll_for("webhook requests", n, timeout, || self.requests()).await
    }
}

impl WebhookRequest {
    /// Whether this is a security notice (its idempotency key is a notification id).
    pub fn is_notice(&self) -> bool {
        self.idempotency_key
            .as_deref()
            .is_some_and(|k| k.starts_with(super::NOTICE_ID_PREFIX))
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

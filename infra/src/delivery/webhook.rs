//! SMS codes through a generic JSON webhook, signed with HMAC-SHA256.
//!
//! `POST {TWOFOLD_SMS_WEBHOOK_URL}` with `{"challengeId", "to", "body", "channel": "SMS"}` and
//! the headers
//! - `Idempotency-Key: <challenge id>`: the same for every send of one challenge;
//! - `X-Twofold-Timestamp: <unix seconds>`;
//! - `X-Twofold-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
//!
//! A receiver recomputes the signature over the raw body with [`signature`] (or checks it with
//! [`verify`]) and rejects stale timestamps. 2xx is accepted (the receipt is the JSON `id`, if
//! any); 408, 429, 5xx, timeouts and connection failures are retryable; other statuses are
//! permanent.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use reqwest::Url;
use sha2::Sha256;
use twofold_services::ports::{CodeSender, DeliveryReceipt, OutgoingCode, SendError};
use zeroize::Zeroizing;

use super::{
    http_client, redact, render, secrets_of, status_error, transport_error, BuildError,
    WebhookSettings,
};

mod notice;

/// The provider name used in error messages.
const PROVIDER: &str = "the SMS webhook";

/// Header carrying the challenge id.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Header carrying the unix time the signature covers.
pub const TIMESTAMP_HEADER: &str = "X-Twofold-Timestamp";
/// Header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Twofold-Signature";

/// The signature header value for `body` sent at `timestamp` (unix seconds):
/// `sha256=` and the hex HMAC-SHA256 under `secret` of `"{timestamp}.{body}"`. Public so
/// receivers (and tests) compute exactly what the sender does.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Whether `header` is the valid signature of `body` at `timestamp`, compared in constant time.
/// Freshness of `timestamp` is the receiver's to check.
pub fn verify(secret: &[u8], timestamp: u64, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(bytes) = hex::decode(hex_sig) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&bytes).is_ok()
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Sends SMS codes to one webhook.
pub struct WebhookSender {
    client: reqwest::Client,
    url: Url,
    secret: Zeroizing<String>,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSender")
    }
}

/// The JSON we post.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    challenge_id: &'a str,
    to: &'a str,
    body: &'a str,
    channel: &'a str,
}

/// The part of the receiver's answer we read.
#[derive(serde::Deserialize)]
struct Answer {
    id: Option<serde_json::Value>,
    message: Option<String>,
    error: Option<serde_json::Value>,
}

impl WebhookSender {
    /// A sender for the webhook of `settings`; every call is bounded by `settings.timeout`.
    pub fn new(settings: &WebhookSettings) -> Result<Self, BuildError> {
        Self::with_client(settings, http_client("the SMS webhook", settings.timeout)?)
    }

    /// A sender for the webhook of `settings` over `client` (a tenant's own webhook: a client
    /// that refuses private addresses).
    pub fn with_client(
        settings: &WebhookSettings,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            client,
            url: settings.url.clone(),
            secret: settings.secret.clone(),
        })
    }
}

impl WebhookSender {
    /// Posts one signed payload (a code's or a notice's) with `idempotency` as its
    /// `Idempotency-Key`; `secrets` are removed from the receipt id and from any refusal.
    async fn post(
        &self,
        idempotency: &str,
        payload: &(impl serde::Serialize + Sync),
        secrets: &[&str],
    ) -> Result<DeliveryReceipt, SendError> {
        let body =
            Zeroizing::new(serde_json::to_vec(payload).map_err(|_| {
                SendError::Permanent("cannot encode the webhook payload".to_owned())
            })?);
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signed = signature(self.secret.as_bytes(), timestamp, &body);
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .header(IDEMPOTENCY_HEADER, idempotency)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signed)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, &e))?;
        let status = response.status();
        let answer: Option<Answer> = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if status.is_success() {
            let id = answer.and_then(|a| a.id).and_then(|id| match id {
                serde_json::Value::String(s) if !s.is_empty() => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            return Ok(DeliveryReceipt {
                provider_message_id: id.map(|id| redact(&id, secrets)),
            });
        }
        let detail = answer
            .and_then(|a| {
                a.message.or(a.error.map(|e| match e {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                }))
            })
            .unwrap_or_default();
        Err(status_error(PROVIDER, status, &redact(&detail, secrets)))
    }
}

#[async_trait]
impl CodeSender for WebhookSender {
    async fn send(&self, message: &OutgoingCode) -> Result<DeliveryReceipt, SendError> {
        let text = Zeroizing::new(render::sms(message));
        let payload = Payload {
            challenge_id: &message.challenge_id,
            to: message.destination.as_str(),
            body: text.as_str(),
            channel: message.channel.as_str(),
        };
        self.post(&message.challenge_id, &payload, &secrets_of(message))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_bind_timestamp_body_and_secret() {
        let sig = signature(b"secret-key", 1_700_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), "sha256=".len() + 64);
        assert!(verify(b"secret-key", 1_700_000_000, b"{\"a\":1}", &sig));
        assert!(!verify(b"secret-key", 1_700_000_001, b"{\"a\":1}", &sig));
        assert!(!verify(b"secret-key", 1_700_000_000, b"{\"a\":2}", &sig));
        assert!(!verify(b"other-key", 1_700_000_000, b"{\"a\":1}", &sig));
        assert!(!verify(
            b"secret-key",
            1_700_000_000,
            b"{\"a\":1}",
            "sha256=zz"
        ));
        // RFC 4231 test case 2 key/data, framed as "{timestamp}.{body}" is our own format, so
        // check against an independent computation instead.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        m.update(b"0.what do ya want for nothing?");
        assert_eq!(
            signature(b"Jefe", 0, b"what do ya want for nothing?"),
            format!("sha256={}", hex::encode(m.finalize().into_bytes()))
        );
    }
}

//! SMS codes through a Twilio-compatible Messages API.
//!
//! `POST {api_base}/2010-04-01/Accounts/{account_sid}/Messages.json`, form-encoded `To`, `From`
//! and `Body`, HTTP basic auth (account SID, auth token), and the challenge id as
//! `I-Twilio-Idempotency-Token`, so a resend of one challenge is recognised by the provider.
//! 200/201 is accepted (the receipt is the JSON `sid`); 408, 429, 5xx, timeouts and connection
//! failures are retryable; every other status is permanent, with Twilio's JSON `message`
//! (redacted: it can quote the number) and never anything we sent.

use async_trait::async_trait;
use reqwest::Url;
use twofold_services::ports::{CodeSender, DeliveryReceipt, OutgoingCode, SendError};
use zeroize::Zeroizing;

use super::{
    http_client, redact, render, secrets_of, status_error, transport_error, BuildError,
    TwilioSettings,
};

mod notice;

/// The provider name used in error messages.
const PROVIDER: &str = "the SMS provider (Twilio)";

/// Sends SMS codes through one Twilio account.
pub struct TwilioSender {
    client: reqwest::Client,
    endpoint: Url,
    account_sid: String,
    auth_token: Zeroizing<String>,
    from: String,
}

impl std::fmt::Debug for TwilioSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSender")
            .field("endpoint", &self.endpoint.as_str())
            .field("from", &self.from)
            .finish()
    }
}

/// The part of Twilio's answers we read.
#[derive(serde::Deserialize)]
struct TwilioAnswer {
    sid: Option<String>,
    code: Option<serde_json::Value>,
    message: Option<String>,
}

impl TwilioSender {
    /// A sender for the account of `settings`; every call is bounded by `settings.timeout`.
    pub fn new(settings: &TwilioSettings) -> Result<Self, BuildError> {
        let mut endpoint = settings.api_base.clone();
        endpoint
            .path_segments_mut()
            .map_err(|()| crate::config::ConfigError::Malformed {
                var: "TWOFOLD_TWILIO_API_BASE",
                expected: "an http(s) base URL such as https://api.twilio.com",
            })?
            .pop_if_empty()
            .extend([
                "2010-04-01",
                "Accounts",
                settings.account_sid.as_str(),
                "Messages.json",
            ]);
        Ok(Self {
            client: http_client("Twilio", settings.timeout)?,
            endpoint,
            account_sid: settings.account_sid.clone(),
            auth_token: settings.auth_token.clone(),
            from: settings.from.clone(),
        })
    }

    /// The Messages endpoint this sender posts to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }
}

#[async_trait]
impl CodeSender for TwilioSender {
    async fn send(&self, message: &OutgoingCode) -> Result<DeliveryReceipt, SendError> {
        let body = Zeroizing::new(render::sms(message));
        let response = self
            .client
            .post(self.endpoint.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.as_str()))
            .header("I-Twilio-Idempotency-Token", message.challenge_id.as_str())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("To", message.destination.as_str()),
                ("From", self.from.as_str()),
                ("Body", body.as_str()),
            ])
            .send()
            .await
            .map_err(|e| transport_error(PROVIDER, &e))?;
        let status = response.status();
        // The answer is read in full even on success: the sid is the receipt. A body that
        // cannot be read after a 2xx still means the message was accepted (no retry, which
        // could send it twice).
        let answer: Option<TwilioAnswer> = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if status.is_success() {
            return Ok(DeliveryReceipt {
                provider_message_id: answer.and_then(|a| a.sid),
            });
        }
        let detail = answer
            .map(|a| {
                let code = a
                    .code
                    .map(|c| match c {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .map(|c| format!("code {c}: "))
                    .unwrap_or_default();
                format!("{code}{}", a.message.unwrap_or_default())
            })
            .unwrap_or_default();
        let secrets = secrets_of(message);
        Err(status_error(
            PROVIDER,
            status,
            &redact(detail.trim_end_matches(": "), &secrets),
        ))
    }
}

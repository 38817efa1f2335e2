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
    messaging_service_sid: Option<String>,
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
        Self::with_client(settings, http_client("Twilio", settings.timeout)?)
    }

    /// A sender for the account of `settings` over `client` (a tenant's own account: a client
    /// that refuses private addresses).
    pub fn with_client(
        settings: &TwilioSettings,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
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
            client,
            endpoint,
            account_sid: settings.account_sid.clone(),
            auth_token: settings.auth_token.clone(),
            from: settings.from.clone(),
            messaging_service_sid: settings.messaging_service_sid.clone(),
        })
    }

    /// The form fields: `To` and `Body`, and `From` and/or `MessagingServiceSid`.
    fn form<'a>(&'a self, to: &'a str, body: &'a str) -> Vec<(&'static str, &'a str)> {
        let mut form = vec![("To", to)];
        if !self.from.is_empty() {
            form.push(("From", self.from.as_str()));
        }
        if let Some(service) = &self.messaging_service_sid {
            form.push(("MessagingServiceSid", service.as_str()));
        }
        form.push(("Body", body));
        form
    }

    /// The Messages endpoint this sender posts to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }
}

impl TwilioSender {
    /// Posts one message (a code's or a notice's) with `idempotency` as Twilio's idempotency
    /// token; `secrets` are removed from any refusal Twilio gives.
    pub(super) async fn post(
        &self,
        idempotency: &str,
        to: &str,
        body: &str,
        secrets: &[&str],
    ) -> Result<DeliveryReceipt, SendError> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.as_str()))
            .header("I-Twilio-Idempotency-Token", idempotency)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&self.form(to, body))
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
        Err(status_error(
            PROVIDER,
            status,
            &redact(detail.trim_end_matches(": "), secrets),
        ))
    }
}

#[async_trait]
impl CodeSender for TwilioSender {
    async fn send(&self, message: &OutgoingCode) -> Result<DeliveryReceipt, SendError> {
        let body = Zeroizing::new(render::sms(message));
        self.post(
            &message.challenge_id,
            message.destination.as_str(),
            body.as_str(),
            &secrets_of(message),
        )
        .await
    }
}

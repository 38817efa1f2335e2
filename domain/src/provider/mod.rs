//! A tenant's own delivery providers: its SMTP server, Twilio account or SMS webhook, and the
//! name its messages carry. The request is validated here ([`validate`]); what passes splits in
//! two: [`ProviderSettings`], with the credentials, which the application seals under the
//! tenant's data key, and [`DeliveryFacts`], the non-secret facts shown to administrators and
//! auditors and recorded in clear.

pub mod address;
mod validate;

use serde::{Deserialize, Serialize};

pub use address::{check_address, AddressRefusal};
pub use validate::{validate, SettingsError};

/// The operator's rule for tenant-supplied provider addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProviderRules {
    /// `TWOFOLD_ALLOW_PRIVATE_PROVIDER_URLS=true` (development and tests): loopback and
    /// private addresses, plain SMTP and plain HTTP are allowed.
    pub allow_private: bool,
}

/// What an administrator asks for, unvalidated. Its `Debug` hides the credentials.
#[derive(Clone, Default)]
pub struct DeliverySettingsRequest {
    /// The name messages carry instead of the tenant's name.
    pub sender_name: Option<String>,
    /// Own SMTP server; `None`: the service's.
    pub email: Option<EmailRequest>,
    /// Own SMS provider; `None`: the service's.
    pub sms: Option<SmsRequest>,
}

/// Own SMTP server, as asked.
#[derive(Clone)]
pub struct EmailRequest {
    /// `smtps://user:pass@host[:465]` or `smtp://user:pass@host[:587]?tls=required`.
    pub smtp_url: String,
    /// The From address.
    pub from: String,
    /// The From display name.
    pub from_name: Option<String>,
}

/// Own SMS provider, as asked: exactly one of the two.
#[derive(Clone, Default)]
pub struct SmsRequest {
    pub twilio: Option<TwilioRequest>,
    pub webhook: Option<WebhookRequest>,
}

/// Own Twilio account, as asked.
#[derive(Clone)]
pub struct TwilioRequest {
    pub account_sid: String,
    pub auth_token: String,
    /// A phone number in E.164 or an alphanumeric sender id.
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// Default `https://api.twilio.com`.
    pub api_base: Option<String>,
}

/// Own signed webhook, as asked.
#[derive(Clone)]
pub struct WebhookRequest {
    pub url: String,
    pub secret: String,
}

impl std::fmt::Debug for DeliverySettingsRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliverySettingsRequest(<redacted>)")
    }
}

/// Twilio's own API, the default `apiBase`.
pub const TWILIO_API_BASE: &str = "https://api.twilio.com";

/// Validated settings with their credentials: sealed as a whole, never shown or logged. Its
/// `Debug` hides everything.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderSettings {
    pub sender_name: Option<String>,
    pub email: Option<SmtpProvider>,
    pub sms: Option<SmsProvider>,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderSettings(<redacted>)")
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte.
    Tls,
    /// `smtp://...?tls=required`: STARTTLS, refused if the server does not offer it.
    StartTls,
    /// `smtp://` without TLS: only with the development allowance.
    Plain,
}

impl SmtpSecurity {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::Tls => "TLS",
            SmtpSecurity::StartTls => "STARTTLS",
            SmtpSecurity::Plain => "PLAIN",
        }
    }
}

/// A validated SMTP server.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SmtpProvider {
    /// Lowercase host name, or an IP literal without brackets.
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// Percent-decoded user and password, when the URL has them.
    pub username: Option<String>,
    pub password: Option<String>,
    /// The From address.
    pub from: String,
    pub from_name: Option<String>,
}

/// A validated SMS provider.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SmsProvider {
    /// A Twilio-compatible Messages API.
    Twilio {
        account_sid: String,
        auth_token: String,
        from: Option<String>,
        messaging_service_sid: Option<String>,
        /// Normalised, without a trailing slash.
        api_base: String,
    },
    /// A JSON webhook signed with HMAC-SHA256.
    Webhook { url: String, secret: String },
}

/// What may be shown of a tenant's settings: no credential, the Twilio account SID masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryFacts {
    pub sender_name: Option<String>,
    pub email: Option<EmailFacts>,
    pub sms: Option<SmsFacts>,
}

/// The shown facts of an SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailFacts {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub from: String,
    pub from_name: Option<String>,
}

/// The shown facts of an SMS provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SmsFacts {
    /// Twilio: the account SID masked (`AC…1a2b`).
    #[serde(rename_all = "camelCase")]
    Twilio {
        account_sid: String,
        from: Option<String>,
        messaging_service_sid: Option<String>,
        api_base_host: String,
    },
    /// The webhook's host (its path and query may hold a token).
    Webhook { host: String },
}

/// `AC…1a2b`: the first two and the last four characters.
pub fn mask_sid(sid: &str) -> String {
    let chars: Vec<char> = sid.chars().collect();
    if chars.len() <= 8 {
        return "…".to_owned();
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// The host of a URL these settings hold (validated, so it parses).
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
        .unwrap_or_default()
}

impl ProviderSettings {
    /// What may be shown of these settings.
    pub fn facts(&self) -> DeliveryFacts {
        DeliveryFacts {
            sender_name: self.sender_name.clone(),
            email: self.email.as_ref().map(|e| EmailFacts {
                host: e.host.clone(),
                port: e.port,
                security: e.security,
                from: e.from.clone(),
                from_name: e.from_name.clone(),
            }),
            sms: self.sms.as_ref().map(|s| match s {
                SmsProvider::Twilio {
                    account_sid,
                    from,
                    messaging_service_sid,
                    api_base,
                    ..
                } => SmsFacts::Twilio {
                    account_sid: mask_sid(account_sid),
                    from: from.clone(),
                    messaging_service_sid: messaging_service_sid.clone(),
                    api_base_host: host_of(api_base),
                },
                SmsProvider::Webhook { url, .. } => SmsFacts::Webhook { host: host_of(url) },
            }),
        }
    }

    /// Every host these settings connect to (names and IP literals), with the field that named
    /// it, for the address check.
    pub fn hosts(&self) -> Vec<(&'static str, String)> {
        let mut hosts = Vec::new();
        if let Some(e) = &self.email {
            hosts.push(("email.smtpUrl", e.host.clone()));
        }
        match &self.sms {
            Some(SmsProvider::Twilio { api_base, .. }) => {
                hosts.push(("sms.twilio.apiBase", host_of(api_base)))
            }
            Some(SmsProvider::Webhook { url, .. }) => hosts.push(("sms.webhook.url", host_of(url))),
            None => {}
        }
        hosts
    }
}

#[cfg(test)]
mod tests;

//! A tenant's own delivery providers: the input of `setDeliverySettings`, the masked read-back
//! and the answer of `testDelivery`. No credential is ever an output field.

use async_graphql::{Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use twofold_domain::provider::{
    DeliverySettingsRequest, EmailRequest, SmsFacts, SmsRequest, SmtpSecurity, TwilioRequest,
    WebhookRequest,
};
use twofold_domain::tenant::TenantDelivery;
use twofold_services::delivery_settings::TestOutcome;

/// A tenant's own providers. Fields left null use the service's provider.
#[derive(InputObject)]
pub struct DeliverySettingsInput {
    /// The name messages carry instead of the tenant's name (1 to 64 characters).
    sender_name: Option<String>,
    /// Own SMTP server; null: the service's.
    email: Option<EmailSettingsInput>,
    /// Own SMS provider; null: the service's.
    sms: Option<SmsSettingsInput>,
}

/// Own SMTP server.
#[derive(InputObject)]
pub struct EmailSettingsInput {
    /// `smtps://user:password@host[:465]` (TLS) or
    /// `smtp://user:password@host[:587]?tls=required` (STARTTLS); credentials percent-encoded.
    smtp_url: String,
    /// The From address.
    from: String,
    /// The From display name.
    from_name: Option<String>,
}

/// Own SMS provider: exactly one of the two.
#[derive(InputObject)]
pub struct SmsSettingsInput {
    twilio: Option<TwilioSettingsInput>,
    webhook: Option<WebhookSettingsInput>,
}

/// Own Twilio account.
#[derive(InputObject)]
pub struct TwilioSettingsInput {
    /// `AC` and 32 letters or digits.
    account_sid: String,
    auth_token: String,
    /// A number in E.164 or an alphanumeric sender id; this or `messagingServiceSid`.
    from: Option<String>,
    /// `MG` and 32 letters or digits.
    messaging_service_sid: Option<String>,
    /// Default `https://api.twilio.com`.
    api_base: Option<String>,
}

/// Own signed webhook.
#[derive(InputObject)]
pub struct WebhookSettingsInput {
    /// An `https://` URL.
    url: String,
    /// The HMAC-SHA256 key of `X-Twofold-Signature`, 16 to 256 characters.
    secret: String,
}

impl From<DeliverySettingsInput> for DeliverySettingsRequest {
    fn from(i: DeliverySettingsInput) -> Self {
        Self {
            sender_name: i.sender_name,
            email: i.email.map(|e| EmailRequest {
                smtp_url: e.smtp_url,
                from: e.from,
                from_name: e.from_name,
            }),
            sms: i.sms.map(|s| SmsRequest {
                twilio: s.twilio.map(|t| TwilioRequest {
                    account_sid: t.account_sid,
                    auth_token: t.auth_token,
                    from: t.from,
                    messaging_service_sid: t.messaging_service_sid,
                    api_base: t.api_base,
                }),
                webhook: s.webhook.map(|w| WebhookRequest {
                    url: w.url,
                    secret: w.secret,
                }),
            }),
        }
    }
}

/// How a tenant's SMTP connection is protected.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(
    name = "SmtpSecurity",
    remote = "twofold_domain::provider::SmtpSecurity"
)]
pub enum SmtpSecurityGql {
    /// `smtps://`: TLS from the first byte.
    Tls,
    /// STARTTLS, required.
    StartTls,
    /// No TLS (development allowance only).
    Plain,
}

/// A tenant's own providers, masked: no credential, the Twilio account SID shortened.
pub struct DeliverySettings(pub TenantDelivery);

#[Object]
impl DeliverySettings {
    async fn sender_name(&self) -> Option<&str> {
        self.0.facts.sender_name.as_deref()
    }
    /// Own SMTP server; null: the service's.
    async fn email(&self) -> Option<EmailDeliverySettings> {
        self.0.facts.email.as_ref().map(|e| EmailDeliverySettings {
            smtp_host: e.host.clone(),
            smtp_port: i32::from(e.port),
            security: match e.security {
                SmtpSecurity::Tls => SmtpSecurityGql::Tls,
                SmtpSecurity::StartTls => SmtpSecurityGql::StartTls,
                SmtpSecurity::Plain => SmtpSecurityGql::Plain,
            },
            from: e.from.clone(),
            from_name: e.from_name.clone(),
        })
    }
    /// Own SMS provider; null: the service's.
    async fn sms(&self) -> Option<SmsDeliverySettings> {
        self.0.facts.sms.as_ref().map(|s| match s {
            SmsFacts::Twilio {
                account_sid,
                from,
                messaging_service_sid,
                api_base_host,
            } => SmsDeliverySettings {
                provider: "TWILIO",
                twilio: Some(TwilioDeliverySettings {
                    account_sid: account_sid.clone(),
                    from: from.clone(),
                    messaging_service_sid: messaging_service_sid.clone(),
                    api_base_host: api_base_host.clone(),
                }),
                webhook_host: None,
            },
            SmsFacts::Webhook { host } => SmsDeliverySettings {
                provider: "WEBHOOK",
                twilio: None,
                webhook_host: Some(host.clone()),
            },
        })
    }
    /// Counts the changes (clearing included).
    async fn version(&self) -> i32 {
        i32::try_from(self.0.version).unwrap_or(i32::MAX)
    }
    /// When these settings were set.
    async fn changed_at(&self) -> DateTime<Utc> {
        self.0.changed_at
    }
}

/// A tenant's SMTP server (its credentials are never shown).
#[derive(SimpleObject)]
pub struct EmailDeliverySettings {
    smtp_host: String,
    smtp_port: i32,
    security: SmtpSecurityGql,
    from: String,
    from_name: Option<String>,
}

/// A tenant's SMS provider (its credentials are never shown).
#[derive(SimpleObject)]
pub struct SmsDeliverySettings {
    /// `TWILIO` or `WEBHOOK`.
    provider: &'static str,
    twilio: Option<TwilioDeliverySettings>,
    /// The webhook's host (its path and query may hold a token: not shown).
    webhook_host: Option<String>,
}

/// A tenant's Twilio account (its auth token is never shown).
#[derive(SimpleObject)]
pub struct TwilioDeliverySettings {
    /// Masked: `AC…1a2b`.
    account_sid: String,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    api_base_host: String,
}

/// What the provider answered to a test message.
#[derive(SimpleObject)]
pub struct TestDeliveryResult {
    /// Whether the provider accepted the message.
    delivered: bool,
    provider_message_id: Option<String>,
    /// Why not, redacted.
    error: Option<String>,
    /// Whether the failure is temporary (false when delivered).
    retryable: bool,
}

impl From<TestOutcome> for TestDeliveryResult {
    fn from(o: TestOutcome) -> Self {
        Self {
            delivered: o.delivered,
            provider_message_id: o.provider_message_id,
            error: o.error,
            retryable: o.retryable,
        }
    }
}

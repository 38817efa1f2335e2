//! Delivery channels of one-time codes: the adapters behind the [`CodeSender`] port.
//!
//! - email over SMTP ([`smtp::SmtpSender`], `lettre`),
//! - SMS through a Twilio-compatible Messages API ([`twilio::TwilioSender`]) or a signed JSON
//!   webhook ([`webhook::WebhookSender`]), both over `reqwest`,
//! - the zero-config development channel that prints codes to the console
//!   ([`console::ConsoleSender`]).
//!
//! Every sender passes the challenge id to the provider as its idempotency key, so a resend
//! after a crash is recognised as the same message, and classifies failures as
//! [`SendError::Retryable`] (timeouts, connection failures, 429, 5xx, SMTP 4xx) or
//! [`SendError::Permanent`] (other 4xx, SMTP 5xx, a refused address). Error messages never
//! contain the code or the destination: provider text is passed through [`redact`] first.
//!
//! What a message says is made by [`render`] (the message catalog, in the user's language);
//! the senders only transport it.
//!
//! [`DeliverySettings`] reads the `TWOFOLD_*` variables and [`Senders::build`] turns them into
//! one sender per channel.

pub mod config;
pub mod console;
pub mod render;
pub mod smtp;
pub mod tenant;
pub mod twilio;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use twofold_services::ports::{CodeSender, OutgoingCode, SendError};

pub use config::{DeliverySettings, SmsSettings, SmtpSettings, TwilioSettings, WebhookSettings};
pub use console::ConsoleSender;
pub use smtp::SmtpSender;
pub use twilio::TwilioSender;
pub use webhook::WebhookSender;

/// How long one provider call may take before it counts as a (retryable) timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The sender of each channel, as the delivery worker needs them.
#[derive(Clone)]
pub struct Senders {
    /// Sends email codes: SMTP when configured, else the console.
    pub email: Arc<dyn CodeSender>,
    /// Sends SMS codes: Twilio or the webhook when configured, else the console.
    pub sms: Arc<dyn CodeSender>,
}

impl std::fmt::Debug for Senders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Senders")
    }
}

/// Why the senders could not be built from valid settings (settings problems are caught earlier,
/// by [`DeliverySettings::from_lookup`]).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting that parsed could still not be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The HTTP client (TLS roots, crypto provider) could not be initialised.
    #[error("cannot initialise the HTTP client for {provider}: {reason}")]
    HttpClient {
        /// Which provider's client.
        provider: &'static str,
        /// Why (never a secret: settings values are not part of it).
        reason: String,
    },
}

impl Senders {
    /// One sender per channel. A channel without a provider gets the console sender, and a
    /// warning is logged (once, here, at start-up) that its codes are printed, not sent.
    pub fn build(settings: &DeliverySettings) -> Result<Senders, BuildError> {
        let email: Arc<dyn CodeSender> = match &settings.email {
            Some(smtp) => Arc::new(SmtpSender::new(smtp)?),
            None => {
                tracing::warn!(
                    "no SMTP server configured (TWOFOLD_SMTP_URL): email codes are printed to \
                     the console, not sent; for development only"
                );
                Arc::new(ConsoleSender::stdout())
            }
        };
        let sms: Arc<dyn CodeSender> = match &settings.sms {
            SmsSettings::Twilio(twilio) => Arc::new(TwilioSender::new(twilio)?),
            SmsSettings::Webhook(webhook) => Arc::new(WebhookSender::new(webhook)?),
            SmsSettings::Log => {
                tracing::warn!(
                    "no SMS provider configured (TWOFOLD_SMS_PROVIDER): SMS codes are printed to \
                     the console, not sent; for development only"
                );
                Arc::new(ConsoleSender::stdout())
            }
        };
        Ok(Senders { email, sms })
    }
}

/// Removes what must never appear in an error or a log from provider text: the given secrets
/// (the code, the destination, its digits without `+`), anything that looks like a phone number
/// (seven or more digits, possibly grouped with spaces, dots, dashes or parentheses, in whatever
/// format the provider echoes it), control characters, and characters past 300. Provider error
/// messages are stored on the aggregate, so this is the last line of defence.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let is_separator = |c: char| matches!(c, ' ' | '-' | '.' | '(' | ')');
    let mut result = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, result: &mut String| {
        let number = run.trim_end_matches(is_separator);
        let tail = &run[number.len()..];
        if number.chars().filter(char::is_ascii_digit).count() >= 7 {
            result.push_str("<redacted>");
        } else {
            result.push_str(number);
        }
        result.push_str(tail);
        run.clear();
    };
    for c in text.chars() {
        let continues = !run.is_empty() && (c.is_ascii_digit() || is_separator(c));
        if continues || (run.is_empty() && (c.is_ascii_digit() || c == '+')) {
            run.push(c);
        } else {
            flush(&mut run, &mut result);
            if c == '+' {
                run.push(c);
            } else {
                result.push(if c.is_control() { ' ' } else { c });
            }
        }
    }
    flush(&mut run, &mut result);
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        result = result.replace(secret, "<redacted>");
    }
    if result.chars().count() > 300 {
        result = result.chars().take(300).collect::<String>() + "…";
    }
    result
}

/// The secrets of a message that [`redact`] removes from provider text.
fn secrets_of(message: &OutgoingCode) -> [&str; 3] {
    [
        message.code.as_str(),
        message.destination.as_str(),
        message.destination.trim_start_matches('+'),
    ]
}

/// Classifies an HTTP status of an SMS provider that did not accept the message: 408, 429 and
/// 5xx are worth retrying, every other status is not.
fn status_error(provider: &str, status: reqwest::StatusCode, detail: &str) -> SendError {
    let text = if detail.is_empty() {
        format!("{provider} answered {}", status.as_u16())
    } else {
        format!("{provider} answered {}: {detail}", status.as_u16())
    };
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        SendError::Retryable(text)
    } else {
        SendError::Permanent(text)
    }
}

/// Classifies a failed HTTP call that got no status. Never uses the error's own text: it names
/// the URL, which may carry a token.
fn transport_error(provider: &str, error: &reqwest::Error) -> SendError {
    if let Some(refused) = tenant::guard::refusal_in(error) {
        return SendError::Permanent(format!("{provider} is not reachable: {refused}"));
    }
    if tenant::guard::busy_in(error) {
        return SendError::Retryable(format!("{provider}: {}", tenant::guard::ResolveError::Busy));
    }
    if error.is_builder() {
        SendError::Permanent(format!("cannot build the request to {provider}"))
    } else if error.is_timeout() {
        SendError::Retryable(format!("{provider} did not answer in time"))
    } else if error.is_connect() {
        SendError::Retryable(format!("cannot connect to {provider}"))
    } else {
        SendError::Retryable(format!("the request to {provider} failed"))
    }
}

/// An HTTP client for a provider: bounded time, no redirects (a redirect of a POST with
/// credentials is never followed), HTTPS through rustls.
fn http_client(provider: &'static str, timeout: Duration) -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("twofold/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BuildError::HttpClient {
            provider,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_domain::channel::{Channel, Purpose};
    use zeroize::Zeroizing;

    fn message(purpose: Purpose) -> OutgoingCode {
        OutgoingCode {
            challenge_id: "ch-1".into(),
            tenant_name: "Acme\r\nBcc: evil@example.com".into(),
            channel: Channel::Sms,
            purpose,
            destination: Zeroizing::new("+995555123456".into()),
            code: Zeroizing::new("123456".into()),
            valid_seconds: 600,
            language: twofold_domain::Language::En,
            web_host: None,
        }
    }

    #[test]
    fn the_sms_is_the_catalog_s_text_in_the_user_s_language() {
        let mut m = message(Purpose::SignIn);
        assert_eq!(
            render::sms(&m),
            "123456 is your Acme  Bcc: evil@example.com sign-in code. Valid for 10 minutes. \
             Do not share it.",
            "control characters of the name are spaces"
        );
        m.tenant_name = "Acme".into();
        m.language = twofold_domain::Language::De;
        m.web_host = Some("login.acme.de".into());
        m.valid_seconds = 599;
        assert_eq!(
            render::sms(&m),
            "123456 ist Ihr Anmeldecode für Acme. 9 Minuten gültig. Geben Sie ihn nicht \
             weiter.\n\n@login.acme.de #123456"
        );
        m.purpose = Purpose::VerifyChannel;
        m.language = twofold_domain::Language::En;
        m.web_host = None;
        m.valid_seconds = 1;
        assert_eq!(
            render::sms(&m),
            "123456 is your Acme verification code. Valid for 1 second. Do not share it."
        );
    }

    #[test]
    fn redact_removes_codes_numbers_and_destinations() {
        let m = message(Purpose::SignIn);
        let r = redact(
            "The 'To' number 995555123456 is invalid (+995 555 12 34 56); body: code 123456; amy@example.com",
            &[&m.code, "amy@example.com"],
        );
        assert!(!r.contains("123456"), "{r}");
        assert!(!r.contains("995555"), "{r}");
        assert!(!r.contains("12 34"), "{r}");
        assert!(
            r.contains("The 'To' number <redacted> is invalid (<redacted>); body"),
            "{r}"
        );
        assert!(!r.contains("amy@"), "{r}");
        // Short numbers (error codes, statuses) survive.
        assert_eq!(redact("error 21211 at 500", &[]), "error 21211 at 500");
        assert!(redact(&"x".repeat(1000), &[]).chars().count() <= 301);
        assert_eq!(redact("a\nb", &[]), "a b");
    }

    #[test]
    fn statuses_are_classified() {
        use reqwest::StatusCode;
        for s in [500, 502, 503, 429, 408] {
            let e = status_error("p", StatusCode::from_u16(s).unwrap(), "");
            assert!(matches!(e, SendError::Retryable(_)), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            let e = status_error("p", StatusCode::from_u16(s).unwrap(), "why");
            assert_eq!(e, SendError::Permanent(format!("p answered {s}: why")));
        }
    }
}

//! SMS through a JSON webhook signed with HMAC-SHA256.

use std::time::Duration;

use reqwest::Url;
use zeroize::Zeroizing;

use super::{http_url, warn_if_clear_text, Vars};
use crate::config::ConfigError;
use crate::delivery::DEFAULT_TIMEOUT;

const WEBHOOK_URL: &str = "TWOFOLD_SMS_WEBHOOK_URL";
const WEBHOOK_SECRET: &str = "TWOFOLD_SMS_WEBHOOK_SECRET";

/// A generic SMS webhook.
#[derive(Clone)]
pub struct WebhookSettings {
    /// Where to POST (may hold a token in its query: never logged).
    pub url: Url,
    /// The HMAC key of `X-Twofold-Signature`.
    pub secret: Zeroizing<String>,
    /// Bound on each call.
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &"<redacted>")
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The webhook, when `TWOFOLD_SMS_PROVIDER=webhook`.
pub(super) fn read(vars: &Vars<'_>) -> Result<WebhookSettings, ConfigError> {
    let raw = Zeroizing::new(vars.required(
        WEBHOOK_URL,
        "the http(s) URL the SMS webhook is POSTed to \
         (required when TWOFOLD_SMS_PROVIDER=webhook)",
    )?);
    let url = http_url(WEBHOOK_URL, &raw)?;
    let secret = Zeroizing::new(vars.required(
        WEBHOOK_SECRET,
        "the HMAC-SHA256 key that signs webhook requests \
         (required when TWOFOLD_SMS_PROVIDER=webhook)",
    )?);
    if secret.len() < 16 {
        return Err(ConfigError::Malformed {
            var: WEBHOOK_SECRET,
            expected: "a secret of at least 16 characters (e.g. `openssl rand -hex 32`)",
        });
    }
    warn_if_clear_text(WEBHOOK_URL, &url);
    Ok(WebhookSettings {
        url,
        secret,
        timeout: DEFAULT_TIMEOUT,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::super::SmsSettings;

    #[test]
    fn webhook_needs_url_and_a_real_secret() {
        let e = parse(&[("TWOFOLD_SMS_PROVIDER", "webhook")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("TWOFOLD_SMS_WEBHOOK_URL is not set"), "{e}");
        let e = parse(&[
            ("TWOFOLD_SMS_PROVIDER", "webhook"),
            (
                "TWOFOLD_SMS_WEBHOOK_URL",
                "https://sms.example/hook?token=abcdef",
            ),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("TWOFOLD_SMS_WEBHOOK_SECRET is not set"), "{e}");
        assert!(!e.contains("abcdef"), "{e}");
        let e = parse(&[
            ("TWOFOLD_SMS_PROVIDER", "webhook"),
            ("TWOFOLD_SMS_WEBHOOK_URL", "https://sms.example/hook"),
            ("TWOFOLD_SMS_WEBHOOK_SECRET", "shortpw"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("TWOFOLD_SMS_WEBHOOK_SECRET is malformed"), "{e}");
        assert!(!e.contains("shortpw"), "{e}");
        let s = parse(&[
            ("TWOFOLD_SMS_PROVIDER", "Webhook"),
            (
                "TWOFOLD_SMS_WEBHOOK_URL",
                "https://sms.example/hook?token=abcdef",
            ),
            ("TWOFOLD_SMS_WEBHOOK_SECRET", "0123456789abcdef0123"),
        ])
        .unwrap();
        let SmsSettings::Webhook(w) = s.sms else {
            panic!("expected a webhook")
        };
        let debug = format!("{w:?}");
        assert!(!debug.contains("abcdef"), "{debug}");
    }
}

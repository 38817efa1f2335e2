//! Delivery settings from the environment: one module per provider, and the console rule.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `TWOFOLD_SMTP_URL` | SMTP server: `smtp://host:port` (plain), `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtp://...?tls=opportunistic`, `smtps://user:pass@host:465` (implicit TLS). Unset: email codes go to the console |
//! | `TWOFOLD_EMAIL_FROM` | the From mailbox, e.g. `Acme <no-reply@acme.example>`; required with `TWOFOLD_SMTP_URL` |
//! | `TWOFOLD_SMS_PROVIDER` | `twilio`, `webhook`, or `log` (default): which SMS channel |
//! | `TWOFOLD_TWILIO_API_BASE` | default `https://api.twilio.com` |
//! | `TWOFOLD_TWILIO_ACCOUNT_SID`, `TWOFOLD_TWILIO_AUTH_TOKEN`, `TWOFOLD_TWILIO_FROM` | required with `twilio` |
//! | `TWOFOLD_SMS_WEBHOOK_URL`, `TWOFOLD_SMS_WEBHOOK_SECRET` | required with `webhook` |
//! | `TWOFOLD_DELIVERY` | `console`: allows printing codes to the console although `DATABASE_URL` is set. Unset: with `DATABASE_URL`, start-up fails unless both channels have a provider |
//!
//! A missing or malformed variable is an error naming the variable and the form it must have;
//! its value is never echoed (URLs carry passwords, tokens are secrets).

mod console;
mod smtp;
mod twilio;
mod webhook;

use reqwest::Url;

use crate::config::ConfigError;

pub use smtp::SmtpSettings;
pub use twilio::{TwilioSettings, TWILIO_DEFAULT_API_BASE};
pub use webhook::WebhookSettings;

const SMS_PROVIDER: &str = "TWOFOLD_SMS_PROVIDER";

/// Which provider delivers each channel, read once at start-up.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Email over SMTP; `None` prints email codes to the console (development).
    pub email: Option<SmtpSettings>,
    /// The SMS provider.
    pub sms: SmsSettings,
}

/// How SMS codes are delivered.
#[derive(Debug, Clone)]
pub enum SmsSettings {
    /// Printed to the console (`TWOFOLD_SMS_PROVIDER=log` or unset): development only.
    Log,
    /// A Twilio-compatible Messages API.
    Twilio(TwilioSettings),
    /// A JSON webhook signed with HMAC-SHA256.
    Webhook(WebhookSettings),
}

impl DeliverySettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (the environment, or a map in tests). Blank values
    /// count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(&get);
        let email = smtp::read(&vars)?;
        let provider = vars.set(SMS_PROVIDER).map(|p| p.to_ascii_lowercase());
        let sms = match provider.as_deref() {
            None | Some("log") => SmsSettings::Log,
            Some("twilio") => SmsSettings::Twilio(twilio::read(&vars)?),
            Some("webhook") => SmsSettings::Webhook(webhook::read(&vars)?),
            Some(_) => {
                return Err(ConfigError::Malformed {
                    var: SMS_PROVIDER,
                    expected: "one of `twilio`, `webhook` or `log`",
                })
            }
        };
        Ok(Self { email, sms })
    }
}

/// The variables as the providers read them.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The trimmed value of `var`, if it is set and not blank.
    fn set(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, var: &'static str, expected: &'static str) -> Result<String, ConfigError> {
        self.set(var).ok_or(ConfigError::Missing { var, expected })
    }
}

/// Parses an http(s) URL, never echoing it.
fn http_url(var: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|_| ConfigError::Malformed {
        var,
        expected: "an http(s) URL",
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::Malformed {
            var,
            expected: "an http(s) URL",
        });
    }
    Ok(url)
}

/// Warns when credentials or codes would travel unencrypted beyond this machine.
fn warn_if_clear_text(var: &'static str, url: &Url) {
    let host = url.host_str().unwrap_or("");
    let local = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let clear = matches!(url.scheme(), "http" | "smtp");
    if clear && !local {
        tracing::warn!(
            var,
            "delivery endpoint is not encrypted: credentials and codes travel in clear text"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(super) fn parse(vars: &[(&str, &str)]) -> Result<DeliverySettings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DeliverySettings::from_lookup(|k| map.get(k).cloned())
    }

    /// A complete Twilio configuration, with `extra` replacing or adding variables.
    pub(super) fn twilio(
        extra: &[(&'static str, &'static str)],
    ) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![
            ("TWOFOLD_SMS_PROVIDER", "twilio"),
            (
                "TWOFOLD_TWILIO_ACCOUNT_SID",
                "AC0123456789abcdef0123456789abcdef",
            ),
            ("TWOFOLD_TWILIO_AUTH_TOKEN", "s3cret-token-value"),
            ("TWOFOLD_TWILIO_FROM", "+15005550006"),
        ];
        for (k, val) in extra {
            v.retain(|(name, _)| name != k);
            v.push((k, val));
        }
        v
    }

    #[test]
    fn nothing_set_means_console_for_both_channels() {
        let s = parse(&[]).unwrap();
        assert!(s.email.is_none());
        assert!(matches!(s.sms, SmsSettings::Log));
        let s = parse(&[("TWOFOLD_SMS_PROVIDER", " LOG "), ("TWOFOLD_SMTP_URL", " ")]).unwrap();
        assert!(s.email.is_none());
        assert!(matches!(s.sms, SmsSettings::Log));
    }

    #[test]
    fn unknown_provider_is_refused_without_echo() {
        let e = parse(&[("TWOFOLD_SMS_PROVIDER", "carrier-pigeon")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("TWOFOLD_SMS_PROVIDER is malformed"), "{e}");
        assert!(e.contains("twilio"), "{e}");
        assert!(!e.contains("carrier-pigeon"), "{e}");
    }

    #[test]
    fn senders_are_built_for_every_configuration() {
        let console = crate::delivery::Senders::build(&parse(&[]).unwrap()).unwrap();
        let _ = format!("{console:?}");
        let mut vars = twilio(&[]);
        vars.push(("TWOFOLD_SMTP_URL", "smtp://127.0.0.1:2525"));
        vars.push(("TWOFOLD_EMAIL_FROM", "no-reply@acme.example"));
        crate::delivery::Senders::build(&parse(&vars).unwrap()).unwrap();
        crate::delivery::Senders::build(
            &parse(&[
                ("TWOFOLD_SMS_PROVIDER", "webhook"),
                ("TWOFOLD_SMS_WEBHOOK_URL", "https://sms.example/hook"),
                ("TWOFOLD_SMS_WEBHOOK_SECRET", "0123456789abcdef0123"),
            ])
            .unwrap(),
        )
        .unwrap();
    }
}

//! Delivery settings from the environment.
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

use std::time::Duration;

use lettre::message::Mailbox;
use reqwest::Url;
use zeroize::Zeroizing;

use crate::config::ConfigError;

use super::DEFAULT_TIMEOUT;

const SMTP_URL: &str = "TWOFOLD_SMTP_URL";
const EMAIL_FROM: &str = "TWOFOLD_EMAIL_FROM";
const SMS_PROVIDER: &str = "TWOFOLD_SMS_PROVIDER";
const TWILIO_API_BASE: &str = "TWOFOLD_TWILIO_API_BASE";
const TWILIO_SID: &str = "TWOFOLD_TWILIO_ACCOUNT_SID";
const TWILIO_TOKEN: &str = "TWOFOLD_TWILIO_AUTH_TOKEN";
const TWILIO_FROM: &str = "TWOFOLD_TWILIO_FROM";
const WEBHOOK_URL: &str = "TWOFOLD_SMS_WEBHOOK_URL";
const WEBHOOK_SECRET: &str = "TWOFOLD_SMS_WEBHOOK_SECRET";
const DELIVERY: &str = "TWOFOLD_DELIVERY";

/// Twilio's production API, the default of `TWOFOLD_TWILIO_API_BASE`.
pub const TWILIO_DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// Which provider delivers each channel, read once at start-up.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Email over SMTP; `None` prints email codes to the console (development).
    pub email: Option<SmtpSettings>,
    /// The SMS provider.
    pub sms: SmsSettings,
}

/// An SMTP server to send email codes through.
#[derive(Clone)]
pub struct SmtpSettings {
    /// The connection URL (may hold credentials: never logged).
    pub url: Zeroizing<String>,
    /// The From mailbox.
    pub from: Mailbox,
    /// Bound on each SMTP operation.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &"<redacted>")
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
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

/// A Twilio-compatible Messages API account.
#[derive(Clone)]
pub struct TwilioSettings {
    /// `https://api.twilio.com`, or a compatible provider's (or a test server's) base URL.
    pub api_base: Url,
    /// The account SID (the basic-auth user and part of the path).
    pub account_sid: String,
    /// The auth token (the basic-auth password).
    pub auth_token: Zeroizing<String>,
    /// The sender: a phone number in E.164 or an alphanumeric sender id.
    pub from: String,
    /// Bound on each API call.
    pub timeout: Duration,
}

impl std::fmt::Debug for TwilioSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSettings")
            .field("api_base", &self.api_base.as_str())
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

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

impl DeliverySettings {
    /// Refuses console delivery (codes printed, not sent) in production, that is with a
    /// configured `DATABASE_URL`, unless `TWOFOLD_DELIVERY=console` asks for it: a production
    /// service that forgot its SMTP or SMS settings would otherwise write every code into its
    /// logs. Zero-config mode (no `DATABASE_URL`) is development and may print.
    pub fn check_console_allowed(
        &self,
        production: bool,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let mode = get(DELIVERY).map(|v| v.trim().to_ascii_lowercase());
        match mode.as_deref() {
            None | Some("") => {}
            Some("console") => return Ok(()),
            Some(_) => {
                return Err(ConfigError::Malformed {
                    var: DELIVERY,
                    expected: "`console`, or unset",
                })
            }
        }
        if !production {
            return Ok(());
        }
        let channels = match (self.email.is_none(), matches!(self.sms, SmsSettings::Log)) {
            (false, false) => return Ok(()),
            (true, true) => "SMTP server or SMS provider",
            (true, false) => "SMTP server",
            (false, true) => "SMS provider",
        };
        Err(ConfigError::ConsoleDelivery { channels })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (the environment, or a map in tests). Blank values
    /// count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |var: &'static str, expected: &'static str| {
            set(var).ok_or(ConfigError::Missing { var, expected })
        };

        let email = match set(SMTP_URL) {
            None => None,
            Some(url) => {
                let url = Zeroizing::new(url);
                check_smtp_url(&url)?;
                let from = required(
                    EMAIL_FROM,
                    "the From address of code emails, e.g. `Acme <no-reply@acme.example>` \
                     (required when TWOFOLD_SMTP_URL is set)",
                )?;
                let from = from
                    .parse::<Mailbox>()
                    .map_err(|_| ConfigError::Malformed {
                        var: EMAIL_FROM,
                        expected: "a mailbox such as `no-reply@acme.example` or \
                               `Acme <no-reply@acme.example>`",
                    })?;
                Some(SmtpSettings {
                    url,
                    from,
                    timeout: DEFAULT_TIMEOUT,
                })
            }
        };

        let provider = set(SMS_PROVIDER).map(|p| p.to_ascii_lowercase());
        let sms = match provider.as_deref() {
            None | Some("log") => SmsSettings::Log,
            Some("twilio") => {
                let api_base = match set(TWILIO_API_BASE) {
                    Some(raw) => http_url(TWILIO_API_BASE, &raw)?,
                    None => {
                        Url::parse(TWILIO_DEFAULT_API_BASE).map_err(|_| ConfigError::Malformed {
                            var: TWILIO_API_BASE,
                            expected: "an http(s) URL",
                        })?
                    }
                };
                if api_base.query().is_some() {
                    return Err(ConfigError::Malformed {
                        var: TWILIO_API_BASE,
                        expected:
                            "an http(s) base URL without a query, e.g. https://api.twilio.com",
                    });
                }
                let account_sid = required(
                    TWILIO_SID,
                    "the Twilio account SID (required when TWOFOLD_SMS_PROVIDER=twilio)",
                )?;
                if !account_sid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(ConfigError::Malformed {
                        var: TWILIO_SID,
                        expected: "an account SID of letters, digits, `-` and `_` (e.g. AC...)",
                    });
                }
                let auth_token = Zeroizing::new(required(
                    TWILIO_TOKEN,
                    "the Twilio auth token (required when TWOFOLD_SMS_PROVIDER=twilio)",
                )?);
                let from = required(
                    TWILIO_FROM,
                    "the sending phone number in E.164, e.g. +15005550006 \
                     (required when TWOFOLD_SMS_PROVIDER=twilio)",
                )?;
                if from.chars().any(char::is_control) {
                    return Err(ConfigError::Malformed {
                        var: TWILIO_FROM,
                        expected: "a phone number in E.164 or an alphanumeric sender id",
                    });
                }
                warn_if_clear_text(TWILIO_API_BASE, &api_base);
                SmsSettings::Twilio(TwilioSettings {
                    api_base,
                    account_sid,
                    auth_token,
                    from,
                    timeout: DEFAULT_TIMEOUT,
                })
            }
            Some("webhook") => {
                let raw = Zeroizing::new(required(
                    WEBHOOK_URL,
                    "the http(s) URL the SMS webhook is POSTed to \
                     (required when TWOFOLD_SMS_PROVIDER=webhook)",
                )?);
                let url = http_url(WEBHOOK_URL, &raw)?;
                let secret = Zeroizing::new(required(
                    WEBHOOK_SECRET,
                    "the HMAC-SHA256 key that signs webhook requests \
                     (required when TWOFOLD_SMS_PROVIDER=webhook)",
                )?);
                if secret.len() < 16 {
                    return Err(ConfigError::Malformed {
                        var: WEBHOOK_SECRET,
                        expected:
                            "a secret of at least 16 characters (e.g. `openssl rand -hex 32`)",
                    });
                }
                warn_if_clear_text(WEBHOOK_URL, &url);
                SmsSettings::Webhook(WebhookSettings {
                    url,
                    secret,
                    timeout: DEFAULT_TIMEOUT,
                })
            }
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

/// Checks an SMTP URL the way `lettre` will read it, without echoing it.
fn check_smtp_url(raw: &str) -> Result<(), ConfigError> {
    const EXPECTED: &str = "an SMTP URL such as smtp://127.0.0.1:2525 (plain), \
                            smtp://user:pass@host:587?tls=required (STARTTLS) or \
                            smtps://user:pass@host:465";
    let malformed = || ConfigError::Malformed {
        var: SMTP_URL,
        expected: EXPECTED,
    };
    let url = Url::parse(raw).map_err(|_| malformed())?;
    if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none() {
        return Err(malformed());
    }
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    if !matches!(
        tls.as_deref(),
        None | Some("required") | Some("opportunistic")
    ) {
        return Err(malformed());
    }
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(raw).map_err(|_| malformed())?;
    if url.scheme() == "smtp" && tls.is_none() && !url.password().unwrap_or("").is_empty() {
        warn_if_clear_text(SMTP_URL, &url);
    }
    Ok(())
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

    fn parse(vars: &[(&str, &str)]) -> Result<DeliverySettings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DeliverySettings::from_lookup(|k| map.get(k).cloned())
    }

    fn twilio(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
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
    fn console_delivery_needs_an_explicit_choice_in_production() {
        let none = parse(&[]).unwrap();
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        // Zero-config (no DATABASE_URL) prints; production refuses, naming what is missing.
        none.check_console_allowed(false, env(&[])).unwrap();
        let refused = none.check_console_allowed(true, env(&[])).unwrap_err();
        assert!(
            refused.to_string().contains("SMTP server or SMS provider"),
            "{refused}"
        );
        assert!(refused.to_string().contains("TWOFOLD_DELIVERY=console"));
        none.check_console_allowed(true, env(&[("TWOFOLD_DELIVERY", "console")]))
            .unwrap();
        assert!(none
            .check_console_allowed(true, env(&[("TWOFOLD_DELIVERY", "yes")]))
            .is_err());
        // One channel configured is not enough.
        let email_only = parse(&[
            ("TWOFOLD_SMTP_URL", "smtps://u:p@mail.example:465"),
            ("TWOFOLD_EMAIL_FROM", "no-reply@acme.example"),
        ])
        .unwrap();
        let refused = email_only
            .check_console_allowed(true, env(&[]))
            .unwrap_err();
        assert!(refused.to_string().contains("no SMS provider"), "{refused}");
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
    fn smtp_needs_a_valid_from_address() {
        let url = "smtp://user:hunter2pass@127.0.0.1:2525";
        let e = parse(&[("TWOFOLD_SMTP_URL", url)]).unwrap_err().to_string();
        assert!(e.contains("TWOFOLD_EMAIL_FROM is not set"), "{e}");
        assert!(!e.contains("hunter2pass"), "{e}");

        let e = parse(&[
            ("TWOFOLD_SMTP_URL", url),
            ("TWOFOLD_EMAIL_FROM", "not an address"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("TWOFOLD_EMAIL_FROM is malformed"), "{e}");
        assert!(!e.contains("not an address"), "{e}");

        let s = parse(&[
            ("TWOFOLD_SMTP_URL", url),
            ("TWOFOLD_EMAIL_FROM", "Acme <no-reply@acme.example>"),
        ])
        .unwrap();
        let smtp = s.email.unwrap();
        assert_eq!(smtp.from.email.to_string(), "no-reply@acme.example");
        assert_eq!(smtp.timeout, Duration::from_secs(10));
        assert!(!format!("{smtp:?}").contains("hunter2pass"));
    }

    #[test]
    fn malformed_smtp_urls_are_named_but_not_echoed() {
        for url in [
            "http://user:hunter2pass@host",
            "smtp://user:hunter2pass@host?tls=sometimes",
            "hunter2pass",
        ] {
            let e = parse(&[
                ("TWOFOLD_SMTP_URL", url),
                ("TWOFOLD_EMAIL_FROM", "no-reply@acme.example"),
            ])
            .unwrap_err()
            .to_string();
            assert!(e.contains("TWOFOLD_SMTP_URL is malformed"), "{url}: {e}");
            assert!(!e.contains("hunter2pass"), "{e}");
        }
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://u:p@smtp.example.com:587?tls=required",
            "smtp://smtp.example.com?tls=opportunistic",
            "smtps://u:p@smtp.example.com",
        ] {
            parse(&[
                ("TWOFOLD_SMTP_URL", url),
                ("TWOFOLD_EMAIL_FROM", "no-reply@acme.example"),
            ])
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        }
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
    fn twilio_needs_every_variable() {
        let s = parse(&twilio(&[])).unwrap();
        let SmsSettings::Twilio(t) = s.sms else {
            panic!("expected Twilio, got {:?}", s.sms)
        };
        assert_eq!(t.api_base.as_str(), "https://api.twilio.com/");
        assert_eq!(t.from, "+15005550006");
        assert!(!format!("{t:?}").contains("s3cret-token-value"));

        for (var, message) in [
            (
                "TWOFOLD_TWILIO_AUTH_TOKEN",
                "TWOFOLD_TWILIO_AUTH_TOKEN is not set",
            ),
            (
                "TWOFOLD_TWILIO_ACCOUNT_SID",
                "TWOFOLD_TWILIO_ACCOUNT_SID is not set",
            ),
            ("TWOFOLD_TWILIO_FROM", "TWOFOLD_TWILIO_FROM is not set"),
        ] {
            let vars: Vec<_> = twilio(&[]).into_iter().filter(|(k, _)| *k != var).collect();
            let e = parse(&vars).unwrap_err().to_string();
            assert!(e.contains(message), "{e}");
            assert!(!e.contains("s3cret-token-value"), "{e}");
        }
        let e = parse(&twilio(&[("TWOFOLD_TWILIO_API_BASE", "ftp://s3cret-host")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("TWOFOLD_TWILIO_API_BASE is malformed"), "{e}");
        assert!(!e.contains("s3cret-host"), "{e}");
        let e = parse(&twilio(&[("TWOFOLD_TWILIO_ACCOUNT_SID", "AC/../x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("TWOFOLD_TWILIO_ACCOUNT_SID is malformed"), "{e}");
        assert!(!e.contains("AC/../x"), "{e}");
    }

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

    #[test]
    fn senders_are_built_for_every_configuration() {
        let console = super::super::Senders::build(&parse(&[]).unwrap()).unwrap();
        let _ = format!("{console:?}");
        let mut vars = twilio(&[]);
        vars.push(("TWOFOLD_SMTP_URL", "smtp://127.0.0.1:2525"));
        vars.push(("TWOFOLD_EMAIL_FROM", "no-reply@acme.example"));
        super::super::Senders::build(&parse(&vars).unwrap()).unwrap();
        super::super::Senders::build(
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

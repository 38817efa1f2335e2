//! SMS through a Twilio-compatible Messages API.

use std::time::Duration;

use reqwest::Url;
use zeroize::Zeroizing;

use super::{http_url, warn_if_clear_text, Vars};
use crate::config::ConfigError;
use crate::delivery::DEFAULT_TIMEOUT;

const TWILIO_API_BASE: &str = "TWOFOLD_TWILIO_API_BASE";
const TWILIO_SID: &str = "TWOFOLD_TWILIO_ACCOUNT_SID";
const TWILIO_TOKEN: &str = "TWOFOLD_TWILIO_AUTH_TOKEN";
const TWILIO_FROM: &str = "TWOFOLD_TWILIO_FROM";

/// Twilio's production API, the default of `TWOFOLD_TWILIO_API_BASE`.
pub const TWILIO_DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// A Twilio-compatible Messages API account.
#[derive(Clone)]
pub struct TwilioSettings {
    /// `https://api.twilio.com`, or a compatible provider's (or a test server's) base URL.
    pub api_base: Url,
    /// The account SID (the basic-auth user and part of the path).
    pub account_sid: String,
    /// The auth token (the basic-auth password).
    pub auth_token: Zeroizing<String>,
    /// The sender: a phone number in E.164 or an alphanumeric sender id; empty when a
    /// Messaging Service chooses it.
    pub from: String,
    /// The Messaging Service (`MG...`) that sends, when one is set (tenants' own accounts).
    pub messaging_service_sid: Option<String>,
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

/// The account, when `TWOFOLD_SMS_PROVIDER=twilio`.
pub(super) fn read(vars: &Vars<'_>) -> Result<TwilioSettings, ConfigError> {
    let api_base = match vars.set(TWILIO_API_BASE) {
        Some(raw) => http_url(TWILIO_API_BASE, &raw)?,
        None => Url::parse(TWILIO_DEFAULT_API_BASE).map_err(|_| ConfigError::Malformed {
            var: TWILIO_API_BASE,
            expected: "an http(s) URL",
        })?,
    };
    if api_base.query().is_some() {
        return Err(ConfigError::Malformed {
            var: TWILIO_API_BASE,
            expected: "an http(s) base URL without a query, e.g. https://api.twilio.com",
        });
    }
    let account_sid = vars.required(
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
    let auth_token = Zeroizing::new(vars.required(
        TWILIO_TOKEN,
        "the Twilio auth token (required when TWOFOLD_SMS_PROVIDER=twilio)",
    )?);
    let from = vars.required(
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
    Ok(TwilioSettings {
        api_base,
        account_sid,
        auth_token,
        from,
        messaging_service_sid: None,
        timeout: DEFAULT_TIMEOUT,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, twilio};
    use super::super::SmsSettings;

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
}

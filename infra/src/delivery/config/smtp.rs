//! Email over SMTP.

use std::time::Duration;

use lettre::message::Mailbox;
use reqwest::Url;
use zeroize::Zeroizing;

use super::{warn_if_clear_text, Vars};
use crate::config::ConfigError;
use crate::delivery::DEFAULT_TIMEOUT;

const SMTP_URL: &str = "TWOFOLD_SMTP_URL";
const EMAIL_FROM: &str = "TWOFOLD_EMAIL_FROM";

/// An SMTP server to send email codes through.
#[derive(Clone)]
pub struct SmtpSettings {
    /// The connection URL (may hold credentials: never logged).
    pub url: Zeroizing<String>,
    /// The From mailbox.
    pub from: Mailbox,
    /// Bound on connecting (a whole send: three times this).
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

/// The SMTP server, if `TWOFOLD_SMTP_URL` names one.
pub(super) fn read(vars: &Vars<'_>) -> Result<Option<SmtpSettings>, ConfigError> {
    let Some(url) = vars.set(SMTP_URL) else {
        return Ok(None);
    };
    let url = Zeroizing::new(url);
    check_smtp_url(&url)?;
    let from = vars.required(
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
    Ok(Some(SmtpSettings {
        url,
        from,
        timeout: DEFAULT_TIMEOUT,
    }))
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

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

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
}

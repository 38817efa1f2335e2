//! Codes printed to the console: fine in development, refused in production unless asked for.

use super::{DeliverySettings, SmsSettings};
use crate::config::ConfigError;

const DELIVERY: &str = "TWOFOLD_DELIVERY";

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
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;

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
}

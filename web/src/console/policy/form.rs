//! The policy form's values: read from the tenant's policy, or from a submitted form, and
//! turned into the same `PolicyChange` the API's `setPolicy` takes (so the rules, and their
//! messages, are the domain's).

use twofold_domain::policy::{Method, Policy, PolicyChange};
use twofold_domain::webauthn::{RelyingPartyChange, UserVerification};
use twofold_graphql::input_check::text::{check, Kind};

/// The methods, in the order the form lists them.
pub(crate) const METHODS: [Method; 5] = [
    Method::Totp,
    Method::Email,
    Method::Sms,
    Method::WebAuthn,
    Method::RecoveryCode,
];

/// The form's fields that hold text or numbers, by their `PolicyInput` names.
pub(crate) const NUMBER_FIELDS: [&str; 8] = [
    "enrollmentGracePeriodDays",
    "trustedDeviceDays",
    "codeDigits",
    "codeTtlSeconds",
    "totpDigits",
    "smsHourlyBudget",
    "emailHourlyBudget",
    "requestsPerSecondPerKey",
];

/// Every field a message may name, longest first (so `webAuthn.rpId` wins over `webAuthn`).
const FIELDS: [&str; 21] = [
    "enrollmentGracePeriodDays",
    "requestsPerSecondPerKey",
    "securityNotifications",
    "ssoBypassesTwoFactor",
    "allowedCallingCodes",
    "emailHourlyBudget",
    "trustedDeviceDays",
    "enforceTwoFactor",
    "smsHourlyBudget",
    "allowedMethods",
    "returnOrigins",
    "codeTtlSeconds",
    "webAuthn.origins",
    "defaultLocale",
    "totpAlgorithm",
    "webAuthn.rpName",
    "webAuthn.rpId",
    "codeDigits",
    "totpDigits",
    "webOrigin",
    "webAuthn",
];

/// What the form shows and sends back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PolicyForm {
    pub(crate) enforce_two_factor: bool,
    pub(crate) methods: Vec<Method>,
    pub(crate) calling_codes: String,
    pub(crate) sso_bypasses_two_factor: bool,
    /// The number fields, in [`NUMBER_FIELDS`] order, as typed.
    pub(crate) numbers: Vec<String>,
    pub(crate) totp_algorithm: String,
    pub(crate) rp_id: String,
    pub(crate) rp_name: String,
    /// One origin per line.
    pub(crate) origins: String,
    pub(crate) user_verification: String,
    pub(crate) default_locale: String,
    pub(crate) web_origin: String,
    pub(crate) security_notifications: bool,
    /// The hosted pages' return origins, one per line.
    pub(crate) return_origins: String,
}

impl PolicyForm {
    pub(crate) fn of(policy: &Policy) -> Self {
        let rp = policy.web_authn.as_ref();
        Self {
            enforce_two_factor: policy.enforce_two_factor,
            methods: policy.allowed_methods.iter().copied().collect(),
            calling_codes: policy
                .allowed_calling_codes
                .iter()
                .map(|c| format!("+{}", c.value()))
                .collect::<Vec<_>>()
                .join(", "),
            sso_bypasses_two_factor: policy.sso_bypasses_two_factor,
            numbers: vec![
                policy.enrollment_grace_period_days.to_string(),
                policy.trusted_device_days.to_string(),
                policy.code_digits.to_string(),
                policy.code_ttl_seconds.to_string(),
                policy.totp_digits.to_string(),
                policy.sms_hourly_budget.to_string(),
                policy.email_hourly_budget.to_string(),
                policy.requests_per_second_per_key.unwrap_or(0).to_string(),
            ],
            totp_algorithm: policy.totp_algorithm.as_str().to_owned(),
            rp_id: rp.map(|r| r.rp_id.clone()).unwrap_or_default(),
            rp_name: rp.map(|r| r.rp_name.clone()).unwrap_or_default(),
            origins: rp.map(|r| r.origins.join("\n")).unwrap_or_default(),
            user_verification: match rp.map(|r| r.user_verification) {
                Some(UserVerification::Required) => "REQUIRED".into(),
                _ => "PREFERRED".into(),
            },
            default_locale: policy
                .default_locale
                .as_ref()
                .map(|l| l.as_str().to_owned())
                .unwrap_or_default(),
            web_origin: policy
                .web_origin
                .as_ref()
                .map(|o| o.as_str().to_owned())
                .unwrap_or_default(),
            security_notifications: policy.security_notifications,
            return_origins: policy
                .return_origins
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The submitted form (`pairs` as the browser sent them). An unchecked box is absent.
    pub(crate) fn submitted(pairs: &[(String, String)]) -> Self {
        let one = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let ticked = |name: &str| pairs.iter().any(|(k, v)| k == name && v == "true");
        Self {
            enforce_two_factor: ticked("enforceTwoFactor"),
            methods: METHODS
                .into_iter()
                .filter(|m| {
                    pairs
                        .iter()
                        .any(|(k, v)| k == "allowedMethods" && v == m.as_str())
                })
                .collect(),
            calling_codes: one("allowedCallingCodes"),
            sso_bypasses_two_factor: ticked("ssoBypassesTwoFactor"),
            numbers: NUMBER_FIELDS.iter().map(|f| one(f)).collect(),
            totp_algorithm: one("totpAlgorithm"),
            rp_id: one("webAuthn.rpId"),
            rp_name: one("webAuthn.rpName"),
            origins: one("webAuthn.origins"),
            user_verification: one("webAuthn.userVerification"),
            default_locale: one("defaultLocale"),
            web_origin: one("webOrigin"),
            security_notifications: ticked("securityNotifications"),
            return_origins: one("returnOrigins"),
        }
    }

    /// The number typed into field `name`.
    pub(crate) fn number(&self, name: &str) -> &str {
        NUMBER_FIELDS
            .iter()
            .position(|f| *f == name)
            .and_then(|i| self.numbers.get(i))
            .map_or("", String::as_str)
    }

    pub(crate) fn allows(&self, method: &Method) -> bool {
        self.methods.contains(method)
    }

    /// The change the form asks for, or the message (naming its field) of the first value that
    /// is not even of the right kind. Every field is sent: a change to the current values
    /// records nothing.
    pub(crate) fn change(&self) -> Result<PolicyChange, String> {
        let texts = [
            ("allowedCallingCodes", &self.calling_codes),
            ("totpAlgorithm", &self.totp_algorithm),
            ("webAuthn.rpId", &self.rp_id),
            ("webAuthn.rpName", &self.rp_name),
            ("webAuthn.origins", &self.origins),
            ("defaultLocale", &self.default_locale),
            ("webOrigin", &self.web_origin),
            ("returnOrigins", &self.return_origins),
        ];
        for (name, value) in texts {
            // Line breaks separate origins; every other control character is refused.
            for part in value.split(['\n', '\r']) {
                check(name, part, Kind::Text)?;
            }
        }
        let mut numbers = Vec::with_capacity(NUMBER_FIELDS.len());
        for (name, raw) in NUMBER_FIELDS.iter().zip(&self.numbers) {
            let n = raw
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("{name} must be a whole number"))?;
            numbers.push(n);
        }
        let web_authn = (!self.rp_id.trim().is_empty()).then(|| RelyingPartyChange {
            rp_id: self.rp_id.trim().to_owned(),
            rp_name: self.rp_name.trim().to_owned(),
            origins: lines(&self.origins),
            user_verification: Some(if self.user_verification == "REQUIRED" {
                UserVerification::Required
            } else {
                UserVerification::Preferred
            }),
        });
        Ok(PolicyChange {
            enforce_two_factor: Some(self.enforce_two_factor),
            enrollment_grace_period_days: Some(numbers[0]),
            allowed_methods: Some(self.methods.clone()),
            allowed_calling_codes: Some(
                self.calling_codes
                    .split([',', ' ', '\n'])
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            sso_bypasses_two_factor: Some(self.sso_bypasses_two_factor),
            trusted_device_days: Some(numbers[1]),
            code_digits: Some(numbers[2]),
            code_ttl_seconds: Some(numbers[3]),
            totp_digits: Some(numbers[4]),
            totp_algorithm: Some(self.totp_algorithm.trim().to_owned()),
            sms_hourly_budget: Some(numbers[5]),
            email_hourly_budget: Some(numbers[6]),
            requests_per_second_per_key: Some(numbers[7]),
            web_authn,
            default_locale: Some(self.default_locale.trim().to_owned()),
            web_origin: Some(self.web_origin.trim().to_owned()),
            security_notifications: Some(self.security_notifications),
            return_origins: Some(lines(&self.return_origins)),
        })
    }
}

/// The non-empty lines of a text area, trimmed.
fn lines(text: &str) -> Vec<String> {
    // `\r` alone separates too: the text check splits on it, and a URL parser would drop it.
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The form field a validation message is about, so it is shown beside that field.
pub(crate) fn field_of(message: &str) -> Option<&'static str> {
    let stripped = message.trim_start_matches('`');
    FIELDS
        .iter()
        .find(|f| {
            stripped.starts_with(**f)
                && !stripped[f.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
        })
        .copied()
        .or_else(|| {
            FIELDS.iter().copied().find(|f| {
                message
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                    .any(|word| word == *f)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_placed_beside_the_field_it_names() {
        assert_eq!(
            field_of("enrollmentGracePeriodDays must be between 0 and 365 (got 999)"),
            Some("enrollmentGracePeriodDays")
        );
        assert_eq!(
            field_of("`webOrigin` must be at most 1000 characters"),
            Some("webOrigin")
        );
        assert_eq!(
            field_of("webAuthn.rpId: not a domain"),
            Some("webAuthn.rpId")
        );
        assert_eq!(
            field_of("allowedMethods may include WEBAUTHN only with webAuthn set"),
            Some("allowedMethods")
        );
        assert_eq!(field_of("something else entirely"), None);
    }

    #[test]
    fn the_current_policy_read_back_is_no_change() {
        let policy = Policy::default();
        let form = PolicyForm::of(&policy);
        let change = form.change().unwrap();
        assert_eq!(policy.apply(&change).unwrap(), policy);
    }

    #[test]
    fn a_submitted_form_reads_boxes_lists_and_numbers() {
        let pairs: Vec<(String, String)> = [
            ("enforceTwoFactor", "true"),
            ("allowedMethods", "TOTP"),
            ("allowedMethods", "SMS"),
            ("allowedCallingCodes", "+995, +1"),
            ("enrollmentGracePeriodDays", "14"),
            ("webAuthn.origins", "https://a.example\r\nhttps://b.example"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let form = PolicyForm::submitted(&pairs);
        assert!(form.enforce_two_factor && !form.security_notifications);
        assert_eq!(form.methods, vec![Method::Totp, Method::Sms]);
        assert_eq!(form.number("enrollmentGracePeriodDays"), "14");
        // Other numbers are empty: not a number, named.
        assert_eq!(
            form.change().unwrap_err(),
            "trustedDeviceDays must be a whole number"
        );
        let bad = PolicyForm {
            web_origin: "https://x.example\u{202e}".into(),
            ..PolicyForm::of(&Policy::default())
        };
        assert!(bad.change().unwrap_err().contains("webOrigin"));
    }
}

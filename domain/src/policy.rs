//! A tenant's 2FA policy: how strict second factors are, and the security parameters of codes.
//!
//! Defaults follow RFC 6238 (TOTP), NIST SP 800-63B and OWASP ASVS; an admin may change them only
//! within the bounds below, so no policy can make the product unsafe (e.g. 4-digit codes or
//! codes that live for a day).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::calling_codes::{CallingCode, CallingCodeError};
use crate::hosted::ReturnOrigin;
use crate::locale::{Locale, LocaleError};
use crate::web_origin::WebOrigin;
use crate::webauthn::{RelyingParty, RelyingPartyChange};

/// A way to satisfy the second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Method {
    /// Authenticator app (RFC 6238).
    Totp,
    /// One-time code by email.
    Email,
    /// One-time code by SMS.
    Sms,
    /// Single-use recovery code.
    RecoveryCode,
    /// A passkey or security key (WebAuthn), with the tenant's relying party.
    #[serde(rename = "WEBAUTHN")]
    WebAuthn,
}

impl Method {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "TOTP",
            Method::Email => "EMAIL",
            Method::Sms => "SMS",
            Method::RecoveryCode => "RECOVERY_CODE",
            Method::WebAuthn => "WEBAUTHN",
        }
    }

    /// The method of an API name.
    pub fn parse(raw: &str) -> Option<Method> {
        [
            Method::Totp,
            Method::Email,
            Method::Sms,
            Method::RecoveryCode,
            Method::WebAuthn,
        ]
        .into_iter()
        .find(|m| m.as_str() == raw)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HMAC algorithm of TOTP codes. SHA1 is what every authenticator app supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TotpAlgorithm {
    /// HMAC-SHA1, the RFC 6238 default.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl TotpAlgorithm {
    /// The name used in `otpauth://` URIs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TotpAlgorithm::Sha1 => "SHA1",
            TotpAlgorithm::Sha256 => "SHA256",
            TotpAlgorithm::Sha512 => "SHA512",
        }
    }
}

/// Why a policy change was refused; each message names the field and its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A number outside its bounds.
    #[error("{field} must be between {min} and {max} (got {got})")]
    OutOfRange {
        /// Which field (API name).
        field: &'static str,
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
        /// What was given.
        got: i64,
    },
    /// TOTP digits other than 6 or 8 are not supported by authenticator apps.
    #[error("totpDigits must be 6 or 8 (got {0})")]
    TotpDigits(i64),
    /// Unknown TOTP algorithm name.
    #[error("totpAlgorithm must be one of SHA1, SHA256, SHA512 (got '{0}')")]
    TotpAlgorithm(String),
    /// No method that can stand alone as a second factor.
    #[error("allowedMethods must include at least one of TOTP, EMAIL, SMS or WEBAUTHN")]
    NoPrimaryMethod,
    /// A calling code that is not assigned.
    #[error("allowedCallingCodes: {0}")]
    CallingCode(#[from] CallingCodeError),
    /// A relying party that is not valid; the message names the field.
    #[error("{0}")]
    WebAuthn(String),
    /// WEBAUTHN allowed without a relying party to run its ceremonies.
    #[error("allowedMethods may include WEBAUTHN only with webAuthn (rpId, rpName, origins) set")]
    WebAuthnNotConfigured,
    /// A default locale that is malformed or of a language without texts.
    #[error("{0}")]
    Locale(#[from] LocaleError),
    /// A web origin that is not an https origin with a short domain name.
    #[error("{0}")]
    WebOrigin(String),
    /// A return origin of the hosted pages that is not one; the message names the field.
    #[error("{0}")]
    ReturnOrigin(String),
    /// Too many calling codes to be a deliberate allow-list.
    #[error("allowedCallingCodes may list at most {max} codes")]
    TooManyCallingCodes {
        /// The limit.
        max: usize,
    },
}

/// The tenant's current 2FA policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Every user must have 2FA (after the grace period).
    pub enforce_two_factor: bool,
    /// How long users without 2FA may still sign in after enforcement starts.
    pub enrollment_grace_period_days: u16,
    /// Methods users may enroll and verify with.
    pub allowed_methods: BTreeSet<Method>,
    /// Calling codes phones may use; empty means any.
    pub allowed_calling_codes: BTreeSet<CallingCode>,
    /// Sign-ins through the tenant's SSO skip the second factor.
    pub sso_bypasses_two_factor: bool,
    /// Lifetime of "remember this device"; 0 turns trusted devices off.
    pub trusted_device_days: u16,
    /// Digits of email/SMS codes.
    pub code_digits: u8,
    /// Lifetime of email/SMS codes.
    pub code_ttl_seconds: u32,
    /// Digits of TOTP codes.
    pub totp_digits: u8,
    /// HMAC algorithm of TOTP codes.
    pub totp_algorithm: TotpAlgorithm,
    /// Most SMS codes the tenant may send per hour (a cap on SMS-pumping fraud).
    #[serde(default = "default_sms_budget")]
    pub sms_hourly_budget: u32,
    /// Most email codes the tenant may send per hour (a cap on mail bombing through us).
    #[serde(default = "default_email_budget")]
    pub email_hourly_budget: u32,
    /// Requests per second each API key of the tenant may make (a token bucket holding two
    /// seconds' worth); `None`: the service's default. The operator bounds it.
    #[serde(default)]
    pub requests_per_second_per_key: Option<u32>,
    /// The relying party of passkeys and security keys; `None` until the admin sets one.
    #[serde(default)]
    pub web_authn: Option<RelyingParty>,
    /// The language of users who chose none (BCP 47 tag of a supported language); `None`:
    /// English.
    #[serde(default, deserialize_with = "crate::locale::lenient")]
    pub default_locale: Option<Locale>,
    /// The site users sign in on: SMS codes end with its autofill line (`@host #123456`).
    #[serde(default, deserialize_with = "crate::web_origin::lenient")]
    pub web_origin: Option<WebOrigin>,
    /// Where the hosted pages may send users back (`returnUrl` must be on one of them); none:
    /// the hosted pages cannot be used.
    #[serde(default, deserialize_with = "crate::hosted::lenient")]
    pub return_origins: Vec<ReturnOrigin>,
    /// Users are told of changes to their 2FA (a factor added, replaced or removed, 2FA off or
    /// reset, a recovery code used, a device trusted, a lockout) at their verified address.
    #[serde(default = "default_security_notifications")]
    pub security_notifications: bool,
}

/// On unless the tenant turns them off, as every major service does: policies stored before
/// the field existed get them too.
fn default_security_notifications() -> bool {
    true
}

fn default_sms_budget() -> u32 {
    1_000
}

/// Mail costs far less than SMS, but a flood of it still gets the sender's domain blocklisted.
fn default_email_budget() -> u32 {
    10_000
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            enforce_two_factor: false,
            enrollment_grace_period_days: 7,
            allowed_methods: [
                Method::Totp,
                Method::Email,
                Method::Sms,
                Method::RecoveryCode,
            ]
            .into_iter()
            .collect(),
            allowed_calling_codes: BTreeSet::new(),
            sso_bypasses_two_factor: false,
            trusted_device_days: 30,
            code_digits: 6,
            code_ttl_seconds: 600,
            totp_digits: 6,
            totp_algorithm: TotpAlgorithm::Sha1,
            sms_hourly_budget: default_sms_budget(),
            email_hourly_budget: default_email_budget(),
            requests_per_second_per_key: None,
            web_authn: None,
            default_locale: None,
            web_origin: None,
            return_origins: Vec::new(),
            security_notifications: true,
        }
    }
}

/// Bounds of the numeric policy fields: (API name, min, max).
pub mod bounds {
    /// Grace period, days.
    pub const GRACE_DAYS: (&str, i64, i64) = ("enrollmentGracePeriodDays", 0, 365);
    /// Trusted-device lifetime, days (0 = trusted devices off).
    pub const TRUSTED_DEVICE_DAYS: (&str, i64, i64) = ("trustedDeviceDays", 0, 365);
    /// Email/SMS code digits.
    pub const CODE_DIGITS: (&str, i64, i64) = ("codeDigits", 6, 8);
    /// Email/SMS code lifetime, seconds.
    pub const CODE_TTL_SECONDS: (&str, i64, i64) = ("codeTtlSeconds", 60, 3600);
    /// SMS codes per hour per tenant.
    pub const SMS_HOURLY_BUDGET: (&str, i64, i64) = ("smsHourlyBudget", 0, 100_000);
    /// Email codes per hour per tenant.
    pub const EMAIL_HOURLY_BUDGET: (&str, i64, i64) = ("emailHourlyBudget", 0, 1_000_000);
    /// Requests per second per API key (0: back to the service's default). The operator's own
    /// bounds, narrower, are checked by the API.
    pub const REQUESTS_PER_SECOND_PER_KEY: (&str, i64, i64) =
        ("requestsPerSecondPerKey", 0, 1_000_000);
    /// Most calling codes in an allow-list.
    pub const MAX_CALLING_CODES: usize = 50;
}

/// A requested change; `None` keeps the current value. Values are raw caller input, checked by
/// [`Policy::apply`], so the whole change is accepted or refused at once.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PolicyChange {
    /// See [`Policy::enforce_two_factor`].
    pub enforce_two_factor: Option<bool>,
    /// See [`Policy::enrollment_grace_period_days`].
    pub enrollment_grace_period_days: Option<i64>,
    /// See [`Policy::allowed_methods`].
    pub allowed_methods: Option<Vec<Method>>,
    /// See [`Policy::allowed_calling_codes`].
    pub allowed_calling_codes: Option<Vec<String>>,
    /// See [`Policy::sso_bypasses_two_factor`].
    pub sso_bypasses_two_factor: Option<bool>,
    /// See [`Policy::trusted_device_days`].
    pub trusted_device_days: Option<i64>,
    /// See [`Policy::code_digits`].
    pub code_digits: Option<i64>,
    /// See [`Policy::code_ttl_seconds`].
    pub code_ttl_seconds: Option<i64>,
    /// See [`Policy::totp_digits`].
    pub totp_digits: Option<i64>,
    /// See [`Policy::totp_algorithm`].
    pub totp_algorithm: Option<String>,
    /// See [`Policy::sms_hourly_budget`].
    #[serde(default)]
    pub sms_hourly_budget: Option<i64>,
    /// See [`Policy::email_hourly_budget`].
    #[serde(default)]
    pub email_hourly_budget: Option<i64>,
    /// See [`Policy::requests_per_second_per_key`]; 0 returns to the service's default.
    #[serde(default)]
    pub requests_per_second_per_key: Option<i64>,
    /// See [`Policy::web_authn`].
    #[serde(default)]
    pub web_authn: Option<RelyingPartyChange>,
    /// See [`Policy::default_locale`]; an empty string removes it.
    #[serde(default)]
    pub default_locale: Option<String>,
    /// See [`Policy::web_origin`]; an empty string removes it.
    #[serde(default)]
    pub web_origin: Option<String>,
    /// See [`Policy::return_origins`]; replaces the list (`[]` empties it).
    #[serde(default)]
    pub return_origins: Option<Vec<String>>,
    /// See [`Policy::security_notifications`].
    #[serde(default)]
    pub security_notifications: Option<bool>,
}

fn in_range((field, min, max): (&'static str, i64, i64), got: i64) -> Result<i64, PolicyError> {
    if (min..=max).contains(&got) {
        Ok(got)
    } else {
        Err(PolicyError::OutOfRange {
            field,
            min,
            max,
            got,
        })
    }
}

impl Policy {
    /// The policy that results from `change`, or the first reason it is refused.
    pub fn apply(&self, change: &PolicyChange) -> Result<Policy, PolicyError> {
        let mut next = self.clone();
        if let Some(v) = change.enforce_two_factor {
            next.enforce_two_factor = v;
        }
        if let Some(v) = change.enrollment_grace_period_days {
            next.enrollment_grace_period_days = narrow(in_range(bounds::GRACE_DAYS, v)?);
        }
        if let Some(methods) = &change.allowed_methods {
            let set: BTreeSet<Method> = methods.iter().copied().collect();
            if !set.iter().any(|m| {
                matches!(
                    m,
                    Method::Totp | Method::Email | Method::Sms | Method::WebAuthn
                )
            }) {
                return Err(PolicyError::NoPrimaryMethod);
            }
            next.allowed_methods = set;
        }
        if let Some(codes) = &change.allowed_calling_codes {
            if codes.len() > bounds::MAX_CALLING_CODES {
                return Err(PolicyError::TooManyCallingCodes {
                    max: bounds::MAX_CALLING_CODES,
                });
            }
            next.allowed_calling_codes = codes
                .iter()
                .map(|c| CallingCode::parse(c))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = change.security_notifications {
            next.security_notifications = v;
        }
        if let Some(v) = change.sso_bypasses_two_factor {
            next.sso_bypasses_two_factor = v;
        }
        if let Some(v) = change.trusted_device_days {
            next.trusted_device_days = narrow(in_range(bounds::TRUSTED_DEVICE_DAYS, v)?);
        }
        if let Some(v) = change.code_digits {
            next.code_digits = narrow(in_range(bounds::CODE_DIGITS, v)?);
        }
        if let Some(v) = change.code_ttl_seconds {
            next.code_ttl_seconds = narrow(in_range(bounds::CODE_TTL_SECONDS, v)?);
        }
        if let Some(v) = change.totp_digits {
            if v != 6 && v != 8 {
                return Err(PolicyError::TotpDigits(v));
            }
            next.totp_digits = narrow(v);
        }
        if let Some(v) = change.sms_hourly_budget {
            next.sms_hourly_budget = narrow(in_range(bounds::SMS_HOURLY_BUDGET, v)?);
        }
        if let Some(v) = change.email_hourly_budget {
            next.email_hourly_budget = narrow(in_range(bounds::EMAIL_HOURLY_BUDGET, v)?);
        }
        if let Some(v) = change.requests_per_second_per_key {
            let v: u32 = narrow(in_range(bounds::REQUESTS_PER_SECOND_PER_KEY, v)?);
            next.requests_per_second_per_key = (v > 0).then_some(v);
        }
        if let Some(name) = &change.totp_algorithm {
            next.totp_algorithm = match name.trim().to_ascii_uppercase().as_str() {
                "SHA1" | "SHA-1" => TotpAlgorithm::Sha1,
                "SHA256" | "SHA-256" => TotpAlgorithm::Sha256,
                "SHA512" | "SHA-512" => TotpAlgorithm::Sha512,
                _ => return Err(PolicyError::TotpAlgorithm(name.chars().take(16).collect())),
            };
        }
        if let Some(rp) = &change.web_authn {
            next.web_authn = Some(RelyingParty::parse(rp)?);
        }
        if let Some(raw) = &change.default_locale {
            next.default_locale = if raw.trim().is_empty() {
                None
            } else {
                Some(Locale::parse_field("defaultLocale", raw)?)
            };
        }
        if let Some(raw) = &change.web_origin {
            next.web_origin = if raw.trim().is_empty() {
                None
            } else {
                Some(WebOrigin::parse(raw)?)
            };
        }
        if let Some(raw) = &change.return_origins {
            next.return_origins = crate::hosted::parse_origins(raw)?;
        }
        if next.allows(Method::WebAuthn) && next.web_authn.is_none() {
            return Err(PolicyError::WebAuthnNotConfigured);
        }
        Ok(next)
    }

    /// Whether users of this tenant may use `method`.
    pub fn allows(&self, method: Method) -> bool {
        self.allowed_methods.contains(&method)
    }
}

/// Converts a value already checked against small bounds into a narrower integer type.
fn narrow<T: TryFrom<i64> + Default>(v: i64) -> T {
    T::try_from(v).unwrap_or_default()
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;

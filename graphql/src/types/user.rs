//! A user's 2FA: factors, enrollment, codes, challenges and the sign-in decision.

use async_graphql::{Enum, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::MethodGql;

/// Delivery channels.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Channel", remote = "twofold_domain::channel::Channel")]
pub enum ChannelGql {
    /// Email.
    Email,
    /// SMS.
    Sms,
}

/// A remembered device.
#[derive(SimpleObject)]
pub struct TrustedDevice {
    id: ID,
    label: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// One end user's 2FA status.
pub struct UserTwoFactor(pub twofold_services::users::UserStatus);

#[Object]
impl UserTwoFactor {
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.as_str().to_owned())
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    async fn methods(&self) -> Vec<MethodGql> {
        self.0.methods.iter().map(|m| (*m).into()).collect()
    }
    async fn totp_pending(&self) -> bool {
        self.0.totp_pending
    }
    /// Masked, e.g. j***@example.com
    async fn email(&self) -> Option<&str> {
        self.0.email.as_ref().map(|(m, _)| m.as_str())
    }
    async fn email_verified(&self) -> bool {
        self.0.email.as_ref().is_some_and(|(_, v)| *v)
    }
    /// Masked, e.g. +995 *** ** 12 34
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_ref().map(|(m, _)| m.as_str())
    }
    async fn phone_verified(&self) -> bool {
        self.0.phone.as_ref().is_some_and(|(_, v)| *v)
    }
    async fn preferred_channel(&self) -> Option<ChannelGql> {
        self.0.preferred_channel.map(Into::into)
    }
    /// The language the user chose (BCP 47 tag, as given to addEmail, addPhone or sendCode,
    /// in canonical case); null: the tenant's defaultLocale, else English.
    async fn locale(&self) -> Option<&str> {
        self.0.locale.as_deref()
    }
    async fn recovery_codes_remaining(&self) -> i32 {
        i32::try_from(self.0.recovery_codes_remaining).unwrap_or(i32::MAX)
    }
    async fn locked_until(&self) -> Option<DateTime<Utc>> {
        self.0.locked_until
    }
    async fn trusted_devices(&self) -> Vec<TrustedDevice> {
        self.0
            .trusted_devices
            .iter()
            .map(|d| TrustedDevice {
                id: ID(d.id.clone()),
                label: d.label.clone(),
                created_at: d.created_at,
                expires_at: d.expires_at,
            })
            .collect()
    }
    async fn last_verified_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_verified_at
    }
    /// Registered passkeys and security keys, oldest first.
    async fn web_authn_credentials(&self) -> Vec<super::WebAuthnCredential> {
        self.0.webauthn_credentials.iter().map(Into::into).collect()
    }
    /// The latest one-time codes sent (newest first), with where their delivery stands.
    async fn recent_challenges(&self) -> Vec<Challenge> {
        self.0
            .recent_challenges
            .iter()
            .cloned()
            .map(Challenge::from)
            .collect()
    }
}

/// What an authenticator app needs, shown once. (Its QR codes are drawn only when selected.)
pub struct TotpEnrollment(twofold_services::users::TotpEnrollment);

/// What an authenticator app needs, shown once.
#[Object]
impl TotpEnrollment {
    /// Base32, for manual entry.
    async fn secret(&self) -> &str {
        &self.0.provisioning.secret_base32
    }

    async fn otpauth_uri(&self) -> &str {
        &self.0.provisioning.uri
    }

    /// data:image/png;base64,...
    #[graphql(complexity = 50)]
    async fn qr_png(&self) -> async_graphql::Result<String> {
        self.0
            .pictures
            .png()
            .map_err(|e| crate::error::ApiError(e).into())
    }

    #[graphql(complexity = 50)]
    async fn qr_svg(&self) -> async_graphql::Result<String> {
        self.0
            .pictures
            .svg()
            .map_err(|e| crate::error::ApiError(e).into())
    }

    async fn algorithm(&self) -> &str {
        self.0.params.algorithm.as_str()
    }

    async fn digits(&self) -> i32 {
        i32::from(self.0.params.digits)
    }

    async fn period(&self) -> i32 {
        i32::try_from(self.0.params.period).unwrap_or(i32::MAX)
    }
}

impl From<twofold_services::users::TotpEnrollment> for TotpEnrollment {
    fn from(e: twofold_services::users::TotpEnrollment) -> Self {
        Self(e)
    }
}

/// Recovery codes, shown once.
#[derive(SimpleObject)]
pub struct RecoveryCodes {
    codes: Vec<String>,
}

impl From<twofold_services::users::RecoveryCodes> for RecoveryCodes {
    fn from(c: twofold_services::users::RecoveryCodes) -> Self {
        Self { codes: c.0 }
    }
}

/// A successful second-factor check.
#[derive(SimpleObject)]
pub struct Verification {
    method: MethodGql,
    /// Set when trustDevice was true: present it as signInRequirement(deviceToken:) later.
    device_token: Option<String>,
    recovery_codes_remaining: i32,
}

impl From<twofold_services::users::Verified> for Verification {
    fn from(v: twofold_services::users::Verified) -> Self {
        Self {
            method: v.method.into(),
            device_token: v.device_token.map(|t| t.to_string()),
            recovery_codes_remaining: i32::try_from(v.recovery_codes_remaining).unwrap_or(i32::MAX),
        }
    }
}

/// Why a code was sent.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Purpose", remote = "twofold_domain::channel::Purpose")]
pub enum PurposeGql {
    /// A second factor at sign-in.
    SignIn,
    /// Proving a new email address or phone number.
    VerifyChannel,
}

/// A one-time code on its way.
#[derive(SimpleObject)]
pub struct Challenge {
    id: ID,
    channel: ChannelGql,
    purpose: PurposeGql,
    /// Masked destination
    sent_to: String,
    expires_at: DateTime<Utc>,
    /// Where the message is: PENDING, DELIVERED or FAILED (delivery happens after the request).
    delivery: DeliveryGql,
}

/// Delivery state of a one-time code.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Delivery", remote = "twofold_domain::user::DeliveryState")]
pub enum DeliveryGql {
    /// Not yet accepted by the provider.
    Pending,
    /// Accepted by the provider.
    Delivered,
    /// Given up after retries, or refused.
    Failed,
}

impl From<twofold_services::users::ChallengeView> for Challenge {
    fn from(c: twofold_services::users::ChallengeView) -> Self {
        Self {
            id: ID(c.id),
            channel: c.channel.into(),
            purpose: c.purpose.into(),
            sent_to: c.sent_to,
            expires_at: c.expires_at,
            delivery: c.delivery.into(),
        }
    }
}

/// Whether a sign-in needs a second factor, and why.
pub struct SignInRequirement(pub twofold_domain::user::SignInDecision);

#[Object]
impl SignInRequirement {
    async fn required(&self) -> bool {
        self.0.required
    }
    async fn methods(&self) -> Vec<MethodGql> {
        self.0.methods.iter().map(|m| (*m).into()).collect()
    }
    /// One of: NOT_ENROLLED, ENROLLED, POLICY_ENFORCED, GRACE_PERIOD, TRUSTED_DEVICE, SSO_BYPASS, LOCKED_OUT, ENROLLMENT_REQUIRED
    async fn reason(&self) -> &'static str {
        self.0.reason.as_str()
    }
    async fn locked_until(&self) -> Option<DateTime<Utc>> {
        self.0.locked_until
    }
    /// When 2FA is enforced and the user has none: the end of their grace period.
    async fn grace_ends_at(&self) -> Option<DateTime<Utc>> {
        self.0.grace_ends_at
    }
    /// The trusted device that was recognised (its id, as in `UserTwoFactor.trustedDevices`).
    async fn trusted_device_id(&self) -> Option<ID> {
        self.0.trusted_device.clone().map(ID)
    }
}

/// What `eraseUser` did. The history keeps the user's events, masked as before; what was
/// sealed in them (contact details, TOTP secret, WebAuthn material) no longer opens.
#[derive(SimpleObject)]
pub struct UserErasure {
    user_id: ID,
    /// When `UserErased` was recorded.
    erased_at: DateTime<Utc>,
    /// Data keys destroyed: 1 when the user had anything sealed, 0 when nothing was left
    /// (erasing again after an erasure that failed half-way finishes it).
    keys_destroyed: i32,
    /// Whether no stored copy can open anything of the user any more, backups included. False
    /// when the data keys live with the events (no separate key database on another server:
    /// a backup taken before the erasure still holds the key, until it is gone), and while the
    /// tenant still has its data key from before per-user keys (what was sealed before then
    /// opens until the operator runs `twofold keys reseal`, which completes those erasures).
    complete: bool,
}

impl From<twofold_services::users::Erasure> for UserErasure {
    fn from(e: twofold_services::users::Erasure) -> Self {
        Self {
            user_id: ID(e.user_id.as_str().to_owned()),
            erased_at: e.erased_at,
            keys_destroyed: i32::try_from(e.keys_destroyed).unwrap_or(i32::MAX),
            complete: e.complete,
        }
    }
}

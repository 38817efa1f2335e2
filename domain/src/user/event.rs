//! What happened to a user's 2FA account. The contract with the event store and auditors:
//! fields may be added with serde defaults, never renamed. No event holds a secret in clear:
//! TOTP secrets are sealed, recovery codes are keyed hashes, codes are never recorded.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::notify::NotificationKind;
use super::sign_in::SignInReason;
use crate::channel::{Channel, Purpose};
use crate::secrets::SealedSecret;
use crate::tenant::KeyedHash;
use crate::{ApiKeyId, DeviceLabel, Method, Reason, TotpAlgorithm};

/// Why a trusted device stopped being trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceRevocation {
    /// The user (through the tenant's app) revoked it.
    Revoked,
    /// The user turned 2FA off.
    TwoFactorDisabled,
    /// An admin reset the user's 2FA.
    TwoFactorReset,
    /// New recovery codes were generated (a sign the old factors may be compromised).
    RecoveryCodesRegenerated,
    /// The user trusted more devices than are kept; the oldest went.
    LimitReached,
    /// A factor was replaced (a new TOTP, address or number confirmed in its place).
    FactorReplaced,
    /// An admin erased the user.
    UserErased,
    /// A factor was removed.
    FactorRemoved,
}

/// Events of the user aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    /// A TOTP secret was generated; it is active only after confirmation.
    TotpEnrollmentStarted {
        /// The secret, sealed.
        secret: SealedSecret,
        /// HMAC algorithm.
        algorithm: TotpAlgorithm,
        /// Code digits.
        digits: u8,
        /// Time step, seconds.
        period: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The pending TOTP was confirmed and is now a factor.
    TotpEnabled {
        /// The time step of the confirming code (never accepted again).
        step: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A new set of recovery codes replaced any old one.
    RecoveryCodesGenerated {
        /// Keyed hashes of the codes.
        hashes: Vec<KeyedHash>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A second factor was verified.
    CodeVerified {
        /// Which method.
        method: Method,
        /// For TOTP, the accepted time step.
        totp_step: Option<u64>,
        /// For EMAIL and SMS, the challenge whose code was used (now spent).
        #[serde(default)]
        challenge_id: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A recovery code was used (and is now spent).
    RecoveryCodeUsed {
        /// Which code of the set (its position, not the code).
        index: u32,
        /// Codes left.
        remaining: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// A wrong code.
    VerificationFailed {
        /// Which method was tried.
        method: Method,
        /// For EMAIL and SMS, the challenge tried (five wrong codes end it).
        #[serde(default)]
        challenge_id: Option<String>,
        /// Consecutive failures so far, across methods.
        consecutive_failures: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// Too many failures: no verification is checked until `until`.
    UserLockedOut {
        /// End of the lockout.
        until: DateTime<Utc>,
        /// Which lockout this is since the last success (drives the backoff).
        lockout: u32,
        /// Whether only an admin can end it.
        admin_required: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// An admin ended a lockout (and reset the failure count).
    LockoutCleared {
        /// The admin's key.
        by: ApiKeyId,
        /// Why.
        reason: Reason,
        /// When.
        at: DateTime<Utc>,
    },
    /// An email address was registered (unverified until its code is confirmed).
    EmailFactorAdded {
        /// The address, sealed.
        email: SealedSecret,
        /// The address masked for display (`j***@example.com`).
        masked: String,
        /// The user's verified address keeps working until this one is confirmed. Events
        /// recorded before this field existed replaced the address at once (`false`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replacing: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A phone number was registered (unverified until its code is confirmed).
    PhoneFactorAdded {
        /// The E.164 number, sealed.
        phone: SealedSecret,
        /// Its country calling code.
        calling_code: String,
        /// Its ISO region, when known.
        region: Option<String>,
        /// The number masked for display (`+995 *** ** 12 34`).
        masked: String,
        /// The user's verified number keeps working until this one is confirmed (see
        /// `EmailFactorAdded::replacing`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replacing: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A one-time code was issued; the delivery worker sends it. The code itself is derived
    /// from the challenge id under a server key and never recorded.
    CodeSent {
        challenge_id: String,
        /// Email or SMS.
        channel: Channel,
        /// Sign-in or channel verification.
        purpose: Purpose,
        /// Code length.
        digits: u8,
        /// End of validity.
        expires_at: DateTime<Utc>,
        /// Masked destination.
        sent_to: String,
        /// The caller's idempotency key, if any.
        idempotency_key: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The provider accepted the message.
    CodeDelivered {
        challenge_id: String,
        provider_message_id: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The message could not be delivered (after retries, or refused outright).
    CodeDeliveryFailed {
        challenge_id: String,
        /// The provider's error (never the code or destination).
        error: String,
        /// Attempts made.
        attempts: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// A registered email address or phone number was proven with its code.
    ChannelVerified {
        /// Which channel.
        channel: Channel,
        /// The challenge used.
        challenge_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user chose where sign-in codes go by default.
    PreferredChannelChosen {
        channel: Channel,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user's language changed (the `locale` of addEmail, addPhone or sendCode): codes and
    /// notices are written in it from now on. A BCP 47 tag in canonical case.
    LocaleChanged {
        locale: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user turned 2FA off, proving a current factor.
    TwoFactorDisabled {
        /// The factor used as proof.
        method: Method,
        /// When.
        at: DateTime<Utc>,
    },
    /// One factor was removed (`removeFactor`); the others stay.
    FactorRemoved {
        /// TOTP, EMAIL or SMS.
        method: Method,
        /// When.
        at: DateTime<Utc>,
    },
    /// "Remember this device": sign-ins presenting the device's token skip the second factor
    /// until `expires_at`. Only the token's keyed hash is recorded.
    DeviceTrusted {
        /// Public id (listed in the user's status, used to revoke).
        device_id: String,
        /// Keyed hash of the token (removed from audit output).
        token_hash: KeyedHash,
        /// What the user calls the device.
        #[serde(default)]
        label: Option<DeviceLabel>,
        /// End of trust (the tenant's `trustedDeviceDays` after `at`).
        expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A trusted device is no longer trusted.
    DeviceTrustRevoked {
        /// Which device.
        device_id: String,
        /// Why.
        reason: DeviceRevocation,
        /// What the admin who revoked it wrote (the console asks for it); `None` for the
        /// API's `revokeTrustedDevice` and every automatic revocation, and in events recorded
        /// before it existed.
        #[serde(default)]
        explanation: Option<Reason>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The tenant's app asked whether a sign-in needs a second factor; the answer and its
    /// reason, so an auditor can see why any sign-in did or did not need 2FA.
    SignInEvaluated {
        /// A second factor (or enrollment) was required.
        required: bool,
        /// Why.
        reason: SignInReason,
        /// Methods offered.
        methods: Vec<Method>,
        /// The trusted device recognised, if any.
        #[serde(default)]
        trusted_device: Option<String>,
        /// A device token was presented and refused (unknown, expired or revoked).
        #[serde(default)]
        device_token_rejected: bool,
        /// The sign-in came through the tenant's SSO.
        sso_login: bool,
        /// End of the lockout, for LOCKED_OUT.
        #[serde(default)]
        locked_until: Option<DateTime<Utc>>,
        /// End of the grace period, when enforced and not enrolled.
        #[serde(default)]
        grace_ends_at: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A passkey or security key registration began; the browser answers within `expires_at`.
    WebAuthnRegistrationStarted {
        challenge_id: String,
        /// The WebAuthn library's ceremony state, sealed (never shown to auditors).
        state: SealedSecret,
        /// End of validity.
        expires_at: DateTime<Utc>,
        /// Started on an account with a factor, with its proof.
        proven: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A passkey or security key was verified and is now a factor.
    WebAuthnCredentialRegistered {
        /// Our id for it.
        credential_id: String,
        /// The authenticator's credential id (base64url; shortened for auditors).
        credential_ref: String,
        /// What the user calls it.
        label: Option<DeviceLabel>,
        /// The credential with its public key, sealed (never shown to auditors).
        credential: SealedSecret,
        /// The signature counter at registration.
        counter: u32,
        /// The registration ceremony (now spent).
        challenge_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A sign-in ceremony began; the browser answers within `expires_at`.
    WebAuthnAuthenticationStarted {
        challenge_id: String,
        /// The WebAuthn library's ceremony state, sealed.
        state: SealedSecret,
        /// End of validity.
        expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A credential signed a sign-in or a proof (recorded beside `CodeVerified`).
    WebAuthnCredentialUsed {
        credential_id: String,
        /// The signature counter the authenticator presented (now the stored one).
        counter: u32,
        /// The ceremony answered.
        challenge_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A signature counter did not go up: the credential may have been cloned. The assertion
    /// was refused (a `VerificationFailed` follows).
    WebAuthnCounterRegressed {
        credential_id: String,
        /// The counter stored.
        stored: u32,
        /// The counter presented.
        presented: u32,
        /// The ceremony answered (now spent).
        challenge_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// One passkey or security key was removed (`removeFactor` with its id).
    WebAuthnCredentialRemoved {
        credential_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// An admin removed every factor, recovery code and trusted device.
    TwoFactorReset {
        /// The admin's key.
        by: ApiKeyId,
        /// Why.
        reason: Reason,
        /// When.
        at: DateTime<Utc>,
    },
    /// An admin erased the user: every factor, contact, code, device and notice went, and the
    /// user's data keys were destroyed after this was recorded, so whatever was sealed for the
    /// user (in this log, its snapshots, the outbox or a backup) no longer opens. Later events
    /// are a new start under a new key.
    UserErased {
        /// The admin's key.
        by: ApiKeyId,
        /// Why.
        reason: Reason,
        /// When.
        at: DateTime<Utc>,
    },
    /// What the state held sealed was sealed again under another key (`twofold keys reseal`):
    /// the same values, new seals, in the places named.
    SecretsResealed {
        seals: Vec<(super::SealSlot, SealedSecret)>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A security notice is to be sent (decided with the change it tells of, in the same
    /// commit); the delivery worker sends it and records the outcome.
    NotificationQueued {
        notification_id: String,
        /// What it tells the user.
        kind: NotificationKind,
        /// Email or SMS.
        channel: Channel,
        /// The address or number it goes to, sealed for the user (the change may have removed
        /// it from the state; never shown to auditors).
        destination: SealedSecret,
        /// That destination, masked for display.
        sent_to: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The provider accepted a security notice.
    NotificationDelivered {
        notification_id: String,
        provider_message_id: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A security notice could not be delivered (after retries, refused outright, or its
    /// destination can no longer be opened).
    NotificationDeliveryFailed {
        notification_id: String,
        /// Why (never the destination).
        error: String,
        /// Attempts made.
        attempts: u32,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::TotpEnrollmentStarted { .. } => "TotpEnrollmentStarted",
            UserEvent::TotpEnabled { .. } => "TotpEnabled",
            UserEvent::RecoveryCodesGenerated { .. } => "RecoveryCodesGenerated",
            UserEvent::CodeVerified { .. } => "CodeVerified",
            UserEvent::RecoveryCodeUsed { .. } => "RecoveryCodeUsed",
            UserEvent::VerificationFailed { .. } => "VerificationFailed",
            UserEvent::UserLockedOut { .. } => "UserLockedOut",
            UserEvent::LockoutCleared { .. } => "LockoutCleared",
            UserEvent::TwoFactorDisabled { .. } => "TwoFactorDisabled",
            UserEvent::FactorRemoved { .. } => "FactorRemoved",
            UserEvent::EmailFactorAdded { .. } => "EmailFactorAdded",
            UserEvent::PhoneFactorAdded { .. } => "PhoneFactorAdded",
            UserEvent::CodeSent { .. } => "CodeSent",
            UserEvent::CodeDelivered { .. } => "CodeDelivered",
            UserEvent::CodeDeliveryFailed { .. } => "CodeDeliveryFailed",
            UserEvent::ChannelVerified { .. } => "ChannelVerified",
            UserEvent::PreferredChannelChosen { .. } => "PreferredChannelChosen",
            UserEvent::LocaleChanged { .. } => "LocaleChanged",
            UserEvent::TwoFactorReset { .. } => "TwoFactorReset",
            UserEvent::UserErased { .. } => "UserErased",
            UserEvent::SecretsResealed { .. } => "SecretsResealed",
            UserEvent::DeviceTrusted { .. } => "DeviceTrusted",
            UserEvent::DeviceTrustRevoked { .. } => "DeviceTrustRevoked",
            UserEvent::SignInEvaluated { .. } => "SignInEvaluated",
            UserEvent::WebAuthnRegistrationStarted { .. } => "WebAuthnRegistrationStarted",
            UserEvent::WebAuthnCredentialRegistered { .. } => "WebAuthnCredentialRegistered",
            UserEvent::WebAuthnAuthenticationStarted { .. } => "WebAuthnAuthenticationStarted",
            UserEvent::WebAuthnCredentialUsed { .. } => "WebAuthnCredentialUsed",
            UserEvent::WebAuthnCounterRegressed { .. } => "WebAuthnCounterRegressed",
            UserEvent::WebAuthnCredentialRemoved { .. } => "WebAuthnCredentialRemoved",
            UserEvent::NotificationQueued { .. } => "NotificationQueued",
            UserEvent::NotificationDelivered { .. } => "NotificationDelivered",
            UserEvent::NotificationDeliveryFailed { .. } => "NotificationDeliveryFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl UserEvent {
    /// When the event happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            UserEvent::TotpEnrollmentStarted { at, .. }
            | UserEvent::TotpEnabled { at, .. }
            | UserEvent::RecoveryCodesGenerated { at, .. }
            | UserEvent::CodeVerified { at, .. }
            | UserEvent::RecoveryCodeUsed { at, .. }
            | UserEvent::VerificationFailed { at, .. }
            | UserEvent::UserLockedOut { at, .. }
            | UserEvent::LockoutCleared { at, .. }
            | UserEvent::TwoFactorDisabled { at, .. }
            | UserEvent::FactorRemoved { at, .. }
            | UserEvent::TwoFactorReset { at, .. }
            | UserEvent::UserErased { at, .. }
            | UserEvent::SecretsResealed { at, .. }
            | UserEvent::EmailFactorAdded { at, .. }
            | UserEvent::PhoneFactorAdded { at, .. }
            | UserEvent::CodeSent { at, .. }
            | UserEvent::CodeDelivered { at, .. }
            | UserEvent::CodeDeliveryFailed { at, .. }
            | UserEvent::ChannelVerified { at, .. }
            | UserEvent::PreferredChannelChosen { at, .. }
            | UserEvent::LocaleChanged { at, .. }
            | UserEvent::DeviceTrusted { at, .. }
            | UserEvent::DeviceTrustRevoked { at, .. }
            | UserEvent::SignInEvaluated { at, .. }
            | UserEvent::WebAuthnRegistrationStarted { at, .. }
            | UserEvent::WebAuthnCredentialRegistered { at, .. }
            | UserEvent::WebAuthnAuthenticationStarted { at, .. }
            | UserEvent::WebAuthnCredentialUsed { at, .. }
            | UserEvent::WebAuthnCounterRegressed { at, .. }
            | UserEvent::WebAuthnCredentialRemoved { at, .. }
            | UserEvent::NotificationQueued { at, .. }
            | UserEvent::NotificationDelivered { at, .. }
            | UserEvent::NotificationDeliveryFailed { at, .. } => *at,
        }
    }
}

//! What may be asked of a user's 2FA account. Secrets, hashes and times are decided before the
//! command (the domain has no clock or randomness).

use chrono::{DateTime, Utc};

use super::sign_in::SignInAttempt;
use crate::channel::Channel;
use crate::locale::Locale;
use crate::secrets::{SealedSecret, TotpParams};
use crate::tenant::KeyedHash;
use crate::{ApiKeyId, DeviceLabel, Method, Reason, TenantId, UserId};

/// Which user (the aggregate does not know its own id; services need it to bind seals and
/// hashes to the user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub tenant: TenantId,
    /// The tenant's id for the user.
    pub user: UserId,
}

impl UserRef {
    /// The aggregate id, `{tenant}/user/{user}`.
    pub fn aggregate_id(&self) -> String {
        self.tenant.user_aggregate_id(&self.user)
    }
}

/// A current factor presented at sign-in or to authorise a sensitive change. The code never
/// appears in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Proof {
    pub method: Method,
    /// The code as typed.
    pub code: String,
    /// For EMAIL and SMS: the challenge the code was sent with.
    pub challenge_id: Option<String>,
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proof")
            .field("method", &self.method)
            .field("code", &"<redacted>")
            .field("challenge_id", &self.challenge_id)
            .finish()
    }
}

/// A challenge the service is about to issue: its id and limits are decided before the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChallenge {
    /// Random id (also the provider's idempotency key).
    pub id: String,
    /// Code length (tenant policy).
    pub digits: u8,
    /// End of validity (now + the tenant's code TTL).
    pub expires_at: DateTime<Utc>,
    /// The caller's idempotency key: a retried request gets the same challenge.
    pub idempotency_key: Option<String>,
}

/// A WebAuthn ceremony the service is about to start: its id, end and the library's state are
/// decided (and the state sealed) before the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebAuthnChallenge {
    /// Random id (`WebAuthnChallenge.challengeId`).
    pub id: String,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// The ceremony state, sealed.
    pub state: SealedSecret,
}

/// A device to trust if the verification it comes with succeeds. The token itself was shown
/// to no one yet; only its keyed hash enters the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTrustedDevice {
    /// Random public id.
    pub id: String,
    /// Keyed hash of the random token.
    pub token_hash: KeyedHash,
    /// What the user calls the device.
    pub label: Option<DeviceLabel>,
    /// How long it stays trusted (the tenant's `trustedDeviceDays`, at least 1).
    pub lifetime_days: u16,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Accepted by the provider.
    Delivered { provider_message_id: Option<String> },
    /// Given up.
    Failed {
        /// Why (no code, no destination).
        error: String,
        /// Attempts made.
        attempts: u32,
    },
}

/// A command on one user's 2FA account.
#[derive(Debug, Clone, PartialEq)]
pub struct UserCommand {
    /// Which user.
    pub user: UserRef,
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub action: UserAction,
    /// Whether (and with which id) the change may queue security notices.
    pub notifications: super::Notifications,
}

/// The actions.
#[derive(Debug, Clone, PartialEq)]
pub enum UserAction {
    /// Start (or restart) TOTP enrollment with a new sealed secret.
    StartTotpEnrollment {
        /// The sealed secret.
        secret: SealedSecret,
        /// Algorithm, digits, period (from the tenant policy).
        params: TotpParams,
    },
    /// Confirm the pending TOTP with a code from the app; the new recovery codes are issued
    /// with it.
    ConfirmTotp {
        code: String,
        /// A current factor: required when the user already has one (replacing TOTP).
        proof: Option<Proof>,
        /// Keyed hashes of the ten new recovery codes.
        recovery_codes: Vec<KeyedHash>,
    },
    /// A sign-in check.
    Verify {
        /// The factor used.
        proof: Proof,
        /// A device to trust if the check passes.
        trust: Option<NewTrustedDevice>,
    },
    /// Decide (and record) whether a sign-in needs a second factor.
    EvaluateSignIn {
        /// What the sign-in presents, and the policy.
        attempt: SignInAttempt,
    },
    /// Stop trusting a device.
    RevokeTrustedDevice {
        /// Which device.
        device_id: String,
        /// Why, when an admin says (kept in the event).
        explanation: Option<Reason>,
    },
    /// Replace the recovery codes, proving a current factor.
    RegenerateRecoveryCodes {
        /// The current factor.
        proof: Proof,
        /// Keyed hashes of the ten new codes.
        recovery_codes: Vec<KeyedHash>,
    },
    /// Turn 2FA off, proving a current factor.
    Disable {
        /// The current factor.
        proof: Proof,
        /// Whether the tenant's policy enforces 2FA right now.
        policy_enforced: bool,
    },
    /// Register an email address and send it a verification code.
    AddEmail {
        /// A current factor: required when the user already has one.
        proof: Option<Proof>,
        /// The address, sealed.
        email: SealedSecret,
        /// The address, masked.
        masked: String,
        /// The verification challenge.
        challenge: NewChallenge,
        /// The user's language, if the request gives one.
        locale: Option<Locale>,
    },
    /// Register a phone number and send it a verification code.
    AddPhone {
        /// A current factor: required when the user already has one.
        proof: Option<Proof>,
        /// The E.164 number, sealed.
        phone: SealedSecret,
        calling_code: String,
        region: Option<String>,
        /// The number, masked.
        masked: String,
        /// The verification challenge.
        challenge: NewChallenge,
        /// The user's language, if the request gives one.
        locale: Option<Locale>,
    },
    /// Prove a registered address or number with its code.
    ConfirmChannel {
        /// The challenge sent by AddEmail/AddPhone.
        challenge_id: String,
        code: String,
        /// New recovery codes, issued if this enables 2FA.
        recovery_codes: Vec<KeyedHash>,
        /// A current factor: required when the user already has one.
        proof: Option<Proof>,
    },
    /// Check the proof of a change that will not happen (a send cap is full), so the answer
    /// depends on the proof before the cap: a wrong proof is a recorded failure, a right one
    /// records nothing (it authorised nothing, and stays usable).
    CheckProof {
        /// The current factor.
        proof: Proof,
    },
    /// Remove one factor (TOTP, the email address or the phone number), proving a current one.
    RemoveFactor {
        /// TOTP, EMAIL or SMS.
        method: Method,
        /// The current factor.
        proof: Proof,
        /// Whether the tenant's policy enforces 2FA right now.
        policy_enforced: bool,
    },
    /// Choose the default channel for sign-in codes.
    ChoosePreferredChannel {
        /// The channel (must be verified).
        channel: Channel,
    },
    /// Send a sign-in code by `channel` (or the preferred one).
    SendCode {
        /// The channel; the preferred one when `None`.
        channel: Option<Channel>,
        /// The challenge to issue unless an existing one is reused.
        challenge: NewChallenge,
        /// The user's language, if the request gives one.
        locale: Option<Locale>,
    },
    /// Record how the delivery of a challenge ended (the delivery worker).
    RecordDelivery {
        challenge_id: String,
        outcome: DeliveryOutcome,
    },
    /// Record how the delivery of a security notice ended (the delivery worker).
    RecordNotification {
        notification_id: String,
        outcome: DeliveryOutcome,
    },
    /// Start registering a passkey or security key.
    StartWebAuthnRegistration {
        /// A current factor: required when the user already has one.
        proof: Option<Proof>,
        /// The ceremony.
        challenge: NewWebAuthnChallenge,
    },
    /// Check the browser's new credential against the registration ceremony and keep it.
    FinishWebAuthnRegistration {
        /// The registration ceremony.
        challenge_id: String,
        /// The browser's `PublicKeyCredential` as JSON.
        credential: String,
        /// Our id for the new credential (random).
        credential_id: String,
        /// What the user calls it.
        label: Option<DeviceLabel>,
        /// New recovery codes, issued if this is the account's first factor.
        recovery_codes: Vec<KeyedHash>,
    },
    /// Start a sign-in ceremony; the assertion comes back through `Verify`.
    StartWebAuthnAuthentication {
        /// The ceremony.
        challenge: NewWebAuthnChallenge,
    },
    /// Remove one passkey or security key, proving a current factor.
    RemoveWebAuthnCredential {
        /// Our id for it.
        credential_id: String,
        /// The current factor.
        proof: Proof,
        /// Whether the tenant's policy enforces 2FA right now.
        policy_enforced: bool,
    },
    /// End a lockout early (admin).
    ClearLockout {
        /// The admin's key.
        by: ApiKeyId,
        /// Why.
        reason: Reason,
    },
    /// Remove every factor, recovery code and trusted device (admin).
    Reset {
        /// The admin's key.
        by: ApiKeyId,
        /// Why.
        reason: Reason,
    },
    /// Record new seals of what the state holds (operator, `twofold keys reseal`).
    Reseal { seals: Vec<super::Resealed> },
    /// Erase the user (admin, a data-protection request): everything `Reset` removes, and the
    /// contact details and language too. The service destroys the user's data keys after this
    /// is recorded, so every seal ever made for the user stops opening.
    Erase {
        /// The admin's key.
        by: ApiKeyId,
        /// Why (the request's reference, say).
        reason: Reason,
    },
}

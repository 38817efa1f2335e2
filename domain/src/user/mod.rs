//! The user 2FA aggregate (`{tenant_id}/user/{user_id}`): one end user's factors, recovery codes,
//! failure count and lockout. Every sign-in check is decided here, so replay protection and
//! throttling hold across concurrent requests: two requests that decide on the same state race
//! to append the same sequence number, and the loser re-decides on the winner's state.

mod activity;
mod admin;
mod aggregate;
mod apply;
mod channels;
mod command;
mod devices;
mod error;
mod event;
mod factors;
mod lockout;
mod notify;
mod reseal;
mod sign_in;
mod state;
mod totp;
mod verify;
mod webauthn;
mod webauthn_state;

#[cfg(test)]
mod activity_tests;
#[cfg(test)]
mod admin_tests;
#[cfg(test)]
mod channels_tests;
#[cfg(test)]
mod devices_tests;
#[cfg(test)]
mod factors_tests;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod locale_tests;
#[cfg(test)]
mod lockout_tests;
#[cfg(test)]
mod notify_tests;
#[cfg(test)]
mod proof_tests;
#[cfg(test)]
mod sign_in_tests;
#[cfg(test)]
mod state_tests;
#[cfg(test)]
mod totp_tests;
#[cfg(test)]
mod verify_tests;
#[cfg(test)]
mod webauthn_fixtures;
#[cfg(test)]
mod webauthn_sign_in_tests;
#[cfg(test)]
mod webauthn_tests;

pub use activity::{
    completes_sign_in, grace_cohort, is_failed_code, is_passing_code, GraceCohort, LockoutChange,
};
pub use command::{
    DeliveryOutcome, NewChallenge, NewTrustedDevice, NewWebAuthnChallenge, Proof, UserAction,
    UserCommand, UserRef,
};
pub use error::UserError;
pub use event::{DeviceRevocation, UserEvent};
pub use lockout::{lockout_duration, Lockout, FAILURES_PER_LOCKOUT, MAX_FAILURES_WITHOUT_ADMIN};
pub use notify::{notice_mask, NotificationKind, Notifications, QueuedNotification};
pub use reseal::{Resealed, SealSlot};
pub use sign_in::{grace_ends_at, SignInAttempt, SignInDecision, SignInPolicy, SignInReason};
pub use state::{
    Challenge, ContactFactor, DeliveryState, RecoverySlot, TotpFactor, TrustedDevice, User,
};
pub use webauthn_state::{
    WebAuthnChallenge, WebAuthnCredential, WebAuthnPurpose, MAX_WEBAUTHN_CREDENTIALS,
    WEBAUTHN_CHALLENGE_SECONDS,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::secrets::{SealedSecret, TotpParams};
use crate::tenant::KeyedHash;

/// Wrong codes that end a challenge (NIST SP 800-63B; Twilio Verify uses five too).
pub const ATTEMPTS_PER_CHALLENGE: u32 = 5;

/// A new challenge within this window returns the open one instead of sending again.
pub const RESEND_WINDOW_SECONDS: i64 = 30;

/// Codes sent to one destination per [`SEND_WINDOW_MINUTES`] at most (SMS pumping defence).
pub const SENDS_PER_WINDOW: usize = 5;

/// The window of [`SENDS_PER_WINDOW`].
pub const SEND_WINDOW_MINUTES: i64 = 10;

/// Trusted devices kept per user; trusting one more revokes the oldest.
pub const MAX_TRUSTED_DEVICES: usize = 20;

/// Number of recovery codes in a set (NIST SP 800-63B rev 4 look-up secrets).
pub const RECOVERY_CODES: usize = 10;

/// What the aggregate calls back into to check codes (its cqrs-es `Services`): checking a code
/// against a sealed secret and hashing a recovery code both need keys the domain must not hold.
#[async_trait]
pub trait CodeChecker: Send + Sync {
    /// The time step within ±1 step of `at` whose TOTP code under `secret` equals `code`.
    async fn totp_step(
        &self,
        user: &UserRef,
        secret: &SealedSecret,
        params: &TotpParams,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<u64>, ServicesError>;

    /// The keyed hash of a normalized recovery code of this user.
    fn recovery_code_hash(&self, user: &UserRef, normalized_code: &str) -> KeyedHash;

    /// Whether `code` is the one-time code of challenge `challenge_id` (derived from it under a
    /// server key, so no code is ever stored), compared in constant time.
    fn challenge_code_matches(
        &self,
        user: &UserRef,
        challenge_id: &str,
        digits: u8,
        code: &str,
    ) -> bool;

    /// Checks the browser's answer to a registration ceremony (`state`, sealed) and returns
    /// the new credential, sealed for this user; `None` when the answer does not verify (wrong
    /// challenge, origin or rpId, malformed). Checkers without WebAuthn refuse it as a failure
    /// of the services.
    async fn webauthn_registration(
        &self,
        _user: &UserRef,
        _state: &SealedSecret,
        _credential: &str,
    ) -> Result<Option<RegisteredCredential>, ServicesError> {
        Err(ServicesError("WebAuthn is not available".into()))
    }

    /// Checks an assertion against a sign-in ceremony (`state`, sealed, which lists the user's
    /// credentials as they were when it started) and returns the credential that signed it and
    /// the counter it presented; `None` when it does not verify. The counter is not judged
    /// here: the aggregate compares it with the one it stores now.
    async fn webauthn_assertion(
        &self,
        _user: &UserRef,
        _state: &SealedSecret,
        _assertion: &str,
    ) -> Result<Option<Assertion>, ServicesError> {
        Err(ServicesError("WebAuthn is not available".into()))
    }
}

/// A credential the browser registered, as the checker verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredCredential {
    /// The authenticator's credential id, base64url.
    pub credential_ref: String,
    /// The credential (public key and flags), sealed for the user.
    pub sealed: SealedSecret,
    /// Its signature counter.
    pub counter: u32,
}

/// A verified assertion: which credential signed, with which counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// The authenticator's credential id, base64url.
    pub credential_ref: String,
    /// The signature counter presented (0: the authenticator keeps none).
    pub counter: u32,
}

/// A failure of the services (e.g. the data key could not be read). Never shown to callers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("user services failed: {0}")]
pub struct ServicesError(pub String);

/// Recovery codes are typed by people from a printout: case, spaces and dashes do not matter.
pub fn normalize_recovery_code(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_ignore_case_spaces_and_dashes() {
        assert_eq!(
            normalize_recovery_code("ABCD-efgh ijkl-MNOP"),
            "abcdefghijklmnop"
        );
        assert_eq!(normalize_recovery_code(" a-b "), "ab");
    }
}

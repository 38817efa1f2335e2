//! Why a user command is refused outright.

use super::{Lockout, ServicesError, MAX_WEBAUTHN_CREDENTIALS, RECOVERY_CODES};
use crate::Method;

/// Why a user command was refused outright (nothing recorded). A wrong code is not an error:
/// it is recorded as `VerificationFailed` and reported from the events.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UserError {
    /// Too many failures; no code is checked until the lockout ends.
    #[error("{0}")]
    LockedOut(Lockout),
    /// The user has no active second factor.
    #[error("the user has no active second factor")]
    NotEnrolled,
    /// The user has 2FA, but not with this method.
    #[error("{0} is not enabled for this user")]
    MethodNotEnrolled(Method),
    /// Confirm without a pending enrollment.
    #[error("there is no TOTP enrollment to confirm: call startTotpEnrollment first")]
    NoPendingEnrollment,
    /// Disable while the tenant enforces 2FA.
    #[error("the organisation requires two-factor authentication: it cannot be turned off")]
    PolicyEnforced,
    /// An admin action on a user the tenant has never enrolled.
    #[error("this user has no two-factor history")]
    UnknownUser,
    /// A proof method this command cannot take.
    #[error("{0} cannot be used here yet")]
    UnsupportedProof(Method),
    /// The command carried a malformed recovery code set (a programming error).
    #[error("a recovery code set must have {RECOVERY_CODES} codes")]
    BadRecoverySet,
    /// The services failed.
    #[error(transparent)]
    Services(#[from] ServicesError),
    /// The challenge can no longer be answered (expired, used, or too many wrong codes).
    #[error("{0}")]
    CodeExpired(&'static str),
    /// Too many codes sent to this destination recently.
    #[error("too many codes were sent to this destination: try again in {retry_after_seconds} s")]
    RateLimited {
        /// Seconds until another code may be sent.
        retry_after_seconds: i64,
    },
    /// No such challenge for this user (or it belongs to a replaced address or number).
    #[error("no such challenge for this user")]
    ChallengeNotFound,
    /// EMAIL and SMS codes are answered with the challenge they were sent with.
    #[error("challengeId is required for EMAIL, SMS and WEBAUTHN")]
    ChallengeRequired,
    /// Adding, replacing or removing a factor on an enabled account needs a current factor in
    /// the same call.
    #[error(
        "the user already has two-factor authentication: pass `proof` with a current factor \
         (a TOTP code, a recovery code, or an email/SMS sign-in code with its challengeId) to \
         add, replace or remove one"
    )]
    ProofRequired,
    /// `removeFactor(method: RECOVERY_CODE)`.
    #[error(
        "recovery codes are not removed on their own: they go with the last factor, and \
         regenerateRecoveryCodes replaces them"
    )]
    RecoveryCodesNotAFactor,
    /// sendCode without a channel and without a preferred one.
    #[error("the user has no preferred channel: pass a channel")]
    NoPreferredChannel,
    /// Registering one more passkey or security key than a user may have.
    #[error("a user may register at most {MAX_WEBAUTHN_CREDENTIALS} passkeys or security keys: remove one first")]
    TooManyCredentials,
    /// No such passkey or security key for this user.
    #[error("no such passkey or security key for this user")]
    CredentialNotFound,
    /// The browser's new credential did not verify against the registration ceremony.
    #[error(
        "the credential does not answer this registration (wrong challenge, origin or rpId, or \
         malformed): start a new registration"
    )]
    CredentialRefused,
    /// The authenticator is already registered for this user.
    #[error("this authenticator is already registered for this user")]
    CredentialAlreadyRegistered,
    /// No such trusted device for this user (never trusted, expired or already revoked).
    #[error("no such trusted device for this user")]
    DeviceNotFound,
}

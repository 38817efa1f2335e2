//! What happened to a user's 2FA account. The contract with the event store and auditors:
//! fields may be added with serde defaults, never renamed. No event holds a secret in clear:
//! TOTP secrets are sealed, recovery codes are keyed hashes, codes are never recorded.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::secrets::SealedSecret;
use crate::tenant::KeyedHash;
use crate::{ApiKeyId, Method, Reason, TotpAlgorithm};

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
        /// Account label in the app.
        label: String,
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
    /// The user turned 2FA off, proving a current factor.
    TwoFactorDisabled {
        /// The factor used as proof.
        method: Method,
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
            UserEvent::TwoFactorReset { .. } => "TwoFactorReset",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

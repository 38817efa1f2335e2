//! How the user aggregate's refusals and recorded failures become API errors.

use chrono::{DateTime, Utc};
use twofold_domain::user::{Lockout, UserError, UserEvent, FAILURES_PER_LOCKOUT};

use crate::ServiceError;

/// Maps the aggregate's refusals to API errors.
impl From<UserError> for ServiceError {
    fn from(e: UserError) -> Self {
        let message = e.to_string();
        match e {
            UserError::LockedOut(lockout) => lockout.into(),
            UserError::NotEnrolled | UserError::MethodNotEnrolled(_) | UserError::UnknownUser => {
                ServiceError::NotFound(message)
            }
            UserError::NoPendingEnrollment => ServiceError::Conflict(message),
            UserError::PolicyEnforced | UserError::ProofRequired => {
                ServiceError::PolicyViolation(message)
            }
            UserError::UnsupportedProof(_)
            | UserError::ChallengeRequired
            | UserError::RecoveryCodesNotAFactor
            | UserError::CredentialRefused => ServiceError::InvalidInput(message),
            UserError::TooManyCredentials => ServiceError::PolicyViolation(message),
            UserError::CredentialAlreadyRegistered => ServiceError::Conflict(message),
            UserError::CredentialNotFound => ServiceError::NotFound(message),
            UserError::ChallengeNotFound
            | UserError::NoPreferredChannel
            | UserError::DeviceNotFound => ServiceError::NotFound(message),
            UserError::CodeExpired(_) => ServiceError::CodeExpired(message),
            UserError::RateLimited {
                retry_after_seconds,
            } => ServiceError::RateLimited {
                message,
                retry_after_seconds,
            },
            UserError::BadRecoverySet | UserError::Services(_) => {
                ServiceError::Internal(Box::new(e))
            }
        }
    }
}

/// A verification's outcome, read from the events it recorded.
pub(super) fn outcome(events: &[UserEvent], now: DateTime<Utc>) -> Result<(), ServiceError> {
    for event in events.iter().rev() {
        match event {
            UserEvent::UserLockedOut {
                until,
                admin_required,
                ..
            } => return Err(Lockout::new(*until, *admin_required, now).into()),
            UserEvent::VerificationFailed {
                consecutive_failures,
                ..
            } => {
                return Err(ServiceError::InvalidCode {
                    remaining_attempts: FAILURES_PER_LOCKOUT
                        - consecutive_failures % FAILURES_PER_LOCKOUT,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

//! How the user aggregate's refusals and recorded failures become API errors.

use chrono::{DateTime, Utc};
use twofold_domain::user::{UserError, UserEvent, FAILURES_PER_LOCKOUT};

use crate::ServiceError;

/// Maps the aggregate's refusals to API errors.
impl From<UserError> for ServiceError {
    fn from(e: UserError) -> Self {
        let message = e.to_string();
        match e {
            UserError::LockedOut {
                until,
                admin_required,
            } => locked_out(until, admin_required, Utc::now()),
            UserError::NotEnrolled | UserError::MethodNotEnrolled(_) | UserError::UnknownUser => {
                ServiceError::NotFound(message)
            }
            UserError::NoPendingEnrollment => ServiceError::Conflict(message),
            UserError::PolicyEnforced | UserError::ProofRequired => {
                ServiceError::PolicyViolation(message)
            }
            UserError::UnsupportedProof(_)
            | UserError::ChallengeRequired
            | UserError::RecoveryCodesNotAFactor => ServiceError::InvalidInput(message),
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

pub(super) fn locked_out(
    until: DateTime<Utc>,
    admin_required: bool,
    now: DateTime<Utc>,
) -> ServiceError {
    let message = if admin_required {
        "too many failed attempts: the account is locked until an administrator unlocks it"
            .to_owned()
    } else {
        format!(
            "too many failed attempts: try again after {}",
            until.to_rfc3339()
        )
    };
    ServiceError::LockedOut {
        message,
        retry_after_seconds: (until - now).num_seconds().max(1),
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
            } => return Err(locked_out(*until, *admin_required, now)),
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

//! The errors every use-case returns, each with one code from the API's fixed set.

use cqrs_es::AggregateError;
use twofold_domain::tenant::TenantError;
use twofold_domain::user::Lockout;

/// The stable error codes of the public API (`extensions.code`). Clients switch on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No credentials, or credentials that are not valid.
    Unauthenticated,
    /// Valid credentials without the right to do this.
    Forbidden,
    /// The request itself is malformed or out of bounds.
    InvalidInput,
    /// A wrong one-time code.
    InvalidCode,
    /// A code whose time is up.
    CodeExpired,
    /// Too many failures: the user must wait or ask an admin.
    LockedOut,
    /// Too many requests.
    RateLimited,
    /// The tenant's policy forbids this.
    PolicyViolation,
    /// The request conflicts with the current state.
    Conflict,
    /// No such thing (in this tenant).
    NotFound,
    /// Our fault; details are in the server log under the request id.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order the contract lists them.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::InvalidInput,
        ErrorCode::InvalidCode,
        ErrorCode::CodeExpired,
        ErrorCode::LockedOut,
        ErrorCode::RateLimited,
        ErrorCode::PolicyViolation,
        ErrorCode::Conflict,
        ErrorCode::NotFound,
        ErrorCode::Internal,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::InvalidCode => "INVALID_CODE",
            ErrorCode::CodeExpired => "CODE_EXPIRED",
            ErrorCode::LockedOut => "LOCKED_OUT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::PolicyViolation => "POLICY_VIOLATION",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

/// A storage or infrastructure failure behind a port. Never shown to callers.
#[derive(Debug, thiserror::Error)]
#[error("storage failure: {0}")]
pub struct StoreError(#[source] pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl StoreError {
    /// Wraps any error from an adapter.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(e))
    }
}

/// Why a use-case failed. Every message except `Internal`'s is written for the caller and holds
/// no secret; `Internal` keeps its cause for the server log only.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// See [`ErrorCode::Unauthenticated`].
    #[error("{0}")]
    Unauthenticated(String),
    /// See [`ErrorCode::Forbidden`].
    #[error("{0}")]
    Forbidden(String),
    /// See [`ErrorCode::InvalidInput`].
    #[error("{0}")]
    InvalidInput(String),
    /// See [`ErrorCode::NotFound`].
    #[error("{0}")]
    NotFound(String),
    /// See [`ErrorCode::Conflict`].
    #[error("{0}")]
    Conflict(String),
    /// See [`ErrorCode::PolicyViolation`].
    #[error("{0}")]
    PolicyViolation(String),
    /// See [`ErrorCode::InvalidCode`]: a wrong code, already recorded as a failure.
    #[error("the code is not valid")]
    InvalidCode {
        /// Wrong codes left before the user is locked out.
        remaining_attempts: u32,
    },
    /// See [`ErrorCode::CodeExpired`].
    #[error("{0}")]
    CodeExpired(String),
    /// See [`ErrorCode::RateLimited`].
    #[error("{message}")]
    RateLimited {
        /// What to tell the caller.
        message: String,
        /// Seconds until a retry may succeed.
        retry_after_seconds: i64,
    },
    /// See [`ErrorCode::LockedOut`].
    #[error("{message}")]
    LockedOut {
        /// What to tell the caller.
        message: String,
        /// Seconds until the lockout ends.
        retry_after_seconds: i64,
    },
    /// See [`ErrorCode::Internal`].
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Recognises, in one error of a chain, a failure to reach the database. Only the adapters
/// know their driver's errors; `twofold_infra::pg::connect` registers its test.
type UnavailableTest = fn(&(dyn std::error::Error + 'static)) -> bool;

static UNAVAILABLE: std::sync::OnceLock<UnavailableTest> = std::sync::OnceLock::new();

/// Registers how a database outage is recognised (the first registration stays).
pub fn recognise_unavailable(test: UnavailableTest) {
    let _ = UNAVAILABLE.set(test);
}

static REFUSED: std::sync::OnceLock<UnavailableTest> = std::sync::OnceLock::new();

/// Registers how a statement the database refused without writing anything, for a reason
/// that is not the caller's (a lock it could not take in time), is recognised.
pub fn recognise_refused(test: UnavailableTest) {
    let _ = REFUSED.set(test);
}

impl ServiceError {
    /// Whether this internal error is the database being unreachable (down, restarting, a
    /// connection cut, the pool unable to connect in time): the caller may retry, and the
    /// service recovers by itself once the database is back.
    pub fn is_unavailable(&self) -> bool {
        self.internal_cause_is(UNAVAILABLE.get())
    }

    /// Whether this internal error is a statement the database refused, so that whatever the
    /// command was doing wrote nothing (a lock not taken in time): unlike a lost connection,
    /// its outcome is known. The error itself, as the events writer reports a refusal, not a
    /// cause further down: a step after the commit (the read model's check) may fail the same
    /// way once the events are written.
    pub fn wrote_nothing(&self) -> bool {
        let (ServiceError::Internal(e), Some(test)) = (self, REFUSED.get()) else {
            return false;
        };
        test(e.as_ref())
    }

    fn internal_cause_is(&self, test: Option<&UnavailableTest>) -> bool {
        let (ServiceError::Internal(e), Some(test)) = (self, test) else {
            return false;
        };
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        while let Some(e) = next {
            if test(e) {
                return true;
            }
            next = e.source();
        }
        false
    }

    /// The API code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ServiceError::Forbidden(_) => ErrorCode::Forbidden,
            ServiceError::InvalidInput(_) => ErrorCode::InvalidInput,
            ServiceError::NotFound(_) => ErrorCode::NotFound,
            ServiceError::Conflict(_) => ErrorCode::Conflict,
            ServiceError::PolicyViolation(_) => ErrorCode::PolicyViolation,
            ServiceError::InvalidCode { .. } => ErrorCode::InvalidCode,
            ServiceError::LockedOut { .. } => ErrorCode::LockedOut,
            ServiceError::CodeExpired(_) => ErrorCode::CodeExpired,
            ServiceError::RateLimited { .. } => ErrorCode::RateLimited,
            ServiceError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Shorthand for input errors from parsers whose messages are caller-safe.
    pub fn invalid(e: impl std::fmt::Display) -> Self {
        ServiceError::InvalidInput(e.to_string())
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Internal(Box::new(e))
    }
}

/// The domain words the lockout and counts the wait; this only carries it.
impl From<Lockout> for ServiceError {
    fn from(lockout: Lockout) -> Self {
        ServiceError::LockedOut {
            message: lockout.to_string(),
            retry_after_seconds: lockout.retry_after_seconds,
        }
    }
}

impl From<TenantError> for ServiceError {
    fn from(e: TenantError) -> Self {
        let message = e.to_string();
        match e {
            // An erased tenant is gone, as far as anyone calling is concerned.
            TenantError::NotFound | TenantError::KeyNotFound(_) | TenantError::Erased => {
                ServiceError::NotFound(message)
            }
            TenantError::Policy(_) => ServiceError::InvalidInput(message),
            // Decision 9: a revoked key gets the message every failed credential gets.
            TenantError::KeyRevoked(_) => crate::auth::unauthenticated(),
            TenantError::NoConsoleRole(_) => ServiceError::Forbidden(message),
            TenantError::AlreadyRegistered
            | TenantError::DuplicateKeyId(_)
            | TenantError::LastAdminKey
            | TenantError::TooManyKeys => ServiceError::Conflict(message),
        }
    }
}

/// Maps the framework's error for any aggregate whose own errors map to [`ServiceError`].
pub fn from_aggregate_error<E>(e: AggregateError<E>) -> ServiceError
where
    E: std::error::Error + Into<ServiceError>,
{
    match e {
        AggregateError::UserError(e) => e.into(),
        AggregateError::AggregateConflict => ServiceError::Conflict(
            "the resource was changed by another request at the same time; retry".into(),
        ),
        AggregateError::DatabaseConnectionError(e)
        | AggregateError::DeserializationError(e)
        | AggregateError::UnexpectedError(e) => ServiceError::Internal(e),
    }
}

/// Checks a page size (`first`) against its bounds: the same rule and message for every
/// paginated query.
pub(crate) fn page_size(first: i64, max: i64) -> Result<u32, ServiceError> {
    if (1..=max).contains(&first) {
        Ok(u32::try_from(first).unwrap_or(1))
    } else {
        Err(ServiceError::InvalidInput(format!(
            "first must be between 1 and {max} (got {first})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_keep_their_cause_but_never_show_it() {
        let e = ServiceError::from(StoreError::new(std::io::Error::other(
            "password authentication failed for user twofold",
        )));
        assert_eq!(e.to_string(), "internal error");
        assert_eq!(e.code(), ErrorCode::Internal);
        assert!(format!("{e:?}").contains("password authentication failed"));
    }

    #[test]
    fn tenant_errors_map_to_their_codes() {
        assert_eq!(
            ServiceError::from(TenantError::LastAdminKey).code(),
            ErrorCode::Conflict
        );
        assert_eq!(
            ServiceError::from(TenantError::NotFound).code(),
            ErrorCode::NotFound
        );
    }

    /// The refusal the test registers: a stand-in for the driver's lock timeout.
    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    struct Refused;

    /// An error after the commit whose cause is a refusal.
    #[derive(Debug, thiserror::Error)]
    #[error("after the commit")]
    struct AfterCommit(#[source] Refused);

    // A slot is given back only for the writer's own refusal: the same refusal as the cause of
    // a later step's failure (the read model's check, after the events were written) says
    // nothing about whether the code was issued.
    #[test]
    fn only_a_refusal_itself_wrote_nothing_not_one_in_its_causes() {
        recognise_refused(|e| e.is::<Refused>());
        assert!(ServiceError::Internal(Box::new(Refused)).wrote_nothing());
        assert!(!ServiceError::Internal(Box::new(AfterCommit(Refused))).wrote_nothing());
        assert!(!ServiceError::Conflict("x".into()).wrote_nothing());
    }
}

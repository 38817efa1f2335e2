//! Errors as the API shows them: a human message and `extensions.code` from the fixed set.

use async_graphql::ErrorExtensions;
use twofold_services::{ErrorCode, ServiceError};

/// A resolver error. Deliberately not `Display`, so it can only become a GraphQL error through
/// [`From<ApiError>`], which sets the code: no error reaches a client without one.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self(e)
    }
}

/// The cause of an internal error, kept as the GraphQL error's source so the HTTP layer can log
/// it once, under the request id, without it ever reaching the response.
#[derive(Debug)]
pub struct InternalCause {
    pub cause: String,
    /// The database could not be reached: the answer says so and that a retry may succeed.
    pub unavailable: bool,
}

impl InternalCause {
    /// What the caller reads for an outage: still `INTERNAL` (the fixed set of codes clients
    /// switch on), with `extensions.retryable`.
    pub const UNAVAILABLE: &'static str =
        "the service could not reach its database; retry in a moment";
}

impl std::fmt::Display for InternalCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.unavailable {
            Self::UNAVAILABLE
        } else {
            "internal error"
        })
    }
}

/// An outage's error: `retryable`, and a first wait of a second.
pub fn mark_retryable(error: async_graphql::Error) -> async_graphql::Error {
    error.extend_with(|_, ext| {
        ext.set("retryable", true);
        ext.set("retryAfterSeconds", 1);
    })
}

impl From<ApiError> for async_graphql::Error {
    fn from(ApiError(e): ApiError) -> Self {
        let code = e.code();
        let unavailable = e.is_unavailable();
        let error = match &e {
            ServiceError::Internal(_) => async_graphql::Error::new_with_source(InternalCause {
                cause: format!("{e:?}"),
                unavailable,
            }),
            _ => async_graphql::Error::new(e.to_string()),
        };
        let error = with_code(error, code);
        let error = if unavailable {
            mark_retryable(error)
        } else {
            error
        };
        match e {
            ServiceError::InvalidCode { remaining_attempts } => error
                .extend_with(|_, ext| ext.set("remainingAttempts", i64::from(remaining_attempts))),
            ServiceError::LockedOut {
                retry_after_seconds,
                ..
            }
            | ServiceError::RateLimited {
                retry_after_seconds,
                ..
            } => error.extend_with(|_, ext| ext.set("retryAfterSeconds", retry_after_seconds)),
            _ => error,
        }
    }
}

/// Sets `extensions.code`.
pub fn with_code(error: async_graphql::Error, code: ErrorCode) -> async_graphql::Error {
    error.extend_with(|_, ext| ext.set("code", code.as_str()))
}

/// A new error with a message and a code.
pub fn coded(code: ErrorCode, message: impl Into<String>) -> async_graphql::Error {
    with_code(async_graphql::Error::new(message.into()), code)
}

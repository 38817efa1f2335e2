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
pub struct InternalCause(pub String);

impl std::fmt::Display for InternalCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("internal error")
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(ApiError(e): ApiError) -> Self {
        let code = e.code();
        let error = match &e {
            ServiceError::Internal(_) => {
                async_graphql::Error::new_with_source(InternalCause(format!("{e:?}")))
            }
            _ => async_graphql::Error::new(e.to_string()),
        };
        let error = with_code(error, code);
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

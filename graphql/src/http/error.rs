//! Failures answered before GraphQL runs (a bad body, a refused key, an unknown path), in the
//! same shape as GraphQL's own errors: `{"data": null, "errors": [{message, extensions.code}]}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use twofold_services::ErrorCode;

use crate::metrics::ErrorCodes;

/// One coded error with its HTTP status.
#[derive(Debug)]
pub(crate) struct HttpError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
    /// An outage's answer: `extensions.retryable`.
    retryable: bool,
}

impl HttpError {
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            retryable: false,
        }
    }

    /// The database could not be reached before GraphQL ran (authenticating the key): 503,
    /// still `INTERNAL`, marked retryable, `Retry-After: 1`.
    pub(crate) fn unavailable(request_id: &str) -> Self {
        Self {
            retry_after: Some(1),
            retryable: true,
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal,
                format!(
                    "{} (request id {request_id})",
                    crate::error::InternalCause::UNAVAILABLE
                ),
            )
        }
    }

    /// The answer to an address that spent its budget of requests without a valid key.
    pub(crate) fn rate_limited(seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!(
                    "too many requests without a valid key from this address: try again in \
                     {seconds} s"
                ),
            )
        }
    }

    /// A service's refusal, with the status that goes with its code.
    pub(crate) fn coded(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(status_for(code), code, message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut extensions = serde_json::json!({ "code": self.code.as_str() });
        if let Some(seconds) = self.retry_after {
            extensions["retryAfterSeconds"] = seconds.into();
        }
        if self.retryable {
            extensions["retryable"] = true.into();
        }
        let body = serde_json::json!({
            "data": null,
            "errors": [{ "message": self.message, "extensions": extensions }],
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
            .extensions_mut()
            .insert(ErrorCodes(vec![self.code]));
        response
    }
}

/// A response holding one error, for failures before execution.
pub(crate) fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    HttpError::new(status, code, message).into_response()
}

/// See [`HttpError::rate_limited`].
pub(crate) fn rate_limited(seconds: u64) -> Response {
    HttpError::rate_limited(seconds).into_response()
}

/// The HTTP status that goes with an error code, for the non-GraphQL endpoints.
pub(crate) fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    }
}

//! Answers for paths and methods the router does not serve, in the same coded error shape as
//! every other failure, so a client (or a scanner's report) never sees an empty or plain-text
//! body. A wrong method is `INVALID_INPUT` (the request is malformed for that path; there is no
//! dedicated code) with status 405 and axum's `Allow` header.

use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use twofold_services::ErrorCode;

use crate::http::error_response;

/// Longest part of the path echoed back.
const MAX_SHOWN_CHARS: usize = 64;

/// A path no route serves.
pub async fn not_found(uri: Uri) -> Response {
    let shown: String = uri.path().chars().take(MAX_SHOWN_CHARS).collect();
    error_response(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        &format!("no such path `{shown}`; see /graphql"),
    )
}

/// A served path asked with a method it does not take.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let shown: String = uri.path().chars().take(MAX_SHOWN_CHARS).collect();
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::InvalidInput,
        &format!("`{shown}` does not take {method}; the Allow header lists what it takes"),
    )
}

//! `POST /graphql`, and `GET /graphql` (GraphiQL, or the WebSocket upgrade).
//!
//! The handler reads the body itself (instead of the async-graphql-axum extractor) so that
//! every failure, even a malformed body or a bad `Authorization` header, is answered in the same
//! GraphQL error shape with an `extensions.code`.

use std::sync::Arc;

use async_graphql::{Response as GqlResponse, ServerError, Value};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Json;
use twofold_services::{ErrorCode, ServiceError};

use super::error::error_response;
use super::extract::{AuthenticatedBody, RequestId};
use super::{ApiState, REQUEST_TIMEOUT};
use crate::error::InternalCause;
use crate::metrics::ErrorCodes;
use crate::rate_limit::RateLimits;

/// Errors one answer lists at most.
pub const MAX_ERRORS: usize = 50;

/// The `/graphql` route.
pub(super) fn route() -> MethodRouter<ApiState> {
    get(graphql_get).post(graphql)
}

/// `GET /graphql`: a WebSocket upgrade (`graphql-transport-ws`, or the older `graphql-ws`)
/// carries subscriptions; any other GET gets GraphiQL.
async fn graphql_get(State(state): State<ApiState>, req: Request) -> Response {
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return crate::graphiql::page(&state);
    }
    crate::websocket::upgrade(state, req).await
}

/// `POST /graphql`.
async fn graphql(
    State(state): State<ApiState>,
    RequestId(request_id): RequestId,
    body: AuthenticatedBody,
) -> Response {
    let AuthenticatedBody {
        principal,
        metadata,
        bytes,
    } = body;
    let mut request = match parse_request(&bytes) {
        Ok(r) => r,
        Err(detail) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidInput,
                &format!("request body must be a JSON object with a \"query\" string ({detail})"),
            )
        }
    };

    if let Some(limits) = state.schema.data::<Arc<RateLimits>>() {
        if let Err(refusal) = limits.charge(principal.as_ref()).await {
            return graphql_response(GqlResponse::from_errors(vec![refusal]), &request_id);
        }
    }
    if let Err(refusal) = state.queries.admit(&mut request) {
        return error_response(StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, &refusal.0);
    }
    let request = crate::guard::attach(request, principal, metadata);
    match tokio::time::timeout(REQUEST_TIMEOUT, state.schema.execute(request)).await {
        Ok(response) => graphql_response(response, &request_id),
        Err(_) => {
            tracing::error!("request timed out");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal,
                &format!("the request took too long (request id {request_id})"),
            )
        }
    }
}

/// A GraphQL answer as JSON, its error codes kept for `/metrics`.
fn graphql_response(response: GqlResponse, request_id: &str) -> Response {
    let response = finish(response, request_id);
    let codes = ErrorCodes(response.errors.iter().filter_map(code_of).collect());
    let mut response = Json(response).into_response();
    response.extensions_mut().insert(codes);
    response
}

/// A GraphQL-over-HTTP request: a JSON object whose `query` is a string. Anything else (an
/// array, a missing query) is refused here rather than executed as an empty document.
/// async-graphql's own `Request` would take a missing query as an empty one, so the body is
/// read into this shape, whose `query` is required, in one pass over the bytes. A key given
/// twice is refused (a proxy reading the first and this reading the last would disagree).
pub(crate) fn parse_request(bytes: &[u8]) -> Result<async_graphql::Request, String> {
    // serde's derived structs also take a JSON array, field by field in order: a proxy or
    // filter matching the object's keys would not see `["{ ... }"]` as a query.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("not a JSON object".into());
    }
    #[derive(serde::Deserialize)]
    struct Body {
        query: String,
        #[serde(default, rename = "operationName")]
        operation_name: Option<String>,
        #[serde(default)]
        variables: async_graphql::Variables,
        #[serde(default)]
        extensions: async_graphql::Extensions,
    }
    let body: Body = serde_json::from_slice(bytes).map_err(|e| e.classify_message())?;
    let mut request = async_graphql::Request::new(body.query).variables(body.variables);
    if let Some(name) = body.operation_name {
        request = request.operation_name(name);
    }
    request.extensions = body.extensions;
    Ok(request)
}

/// Gives every error a code and keeps internals out of the response (logging them once here).
pub(crate) fn finish(mut response: GqlResponse, request_id: &str) -> GqlResponse {
    // Validation reports every unknown argument and field: a 64 KiB document of them made
    // thousands of errors, an answer far larger than the question.
    if response.errors.len() > MAX_ERRORS {
        let more = response.errors.len() - MAX_ERRORS;
        response.errors.truncate(MAX_ERRORS);
        response.errors.push(ServerError::new(
            format!("{more} more errors are not shown"),
            None,
        ));
    }
    for error in &mut response.errors {
        if let Some(cause) = error.source::<InternalCause>() {
            if cause.unavailable {
                tracing::warn!(cause = %cause.cause, "the database could not be reached");
                error.message = format!("{} (request id {request_id})", InternalCause::UNAVAILABLE);
            } else {
                tracing::error!(cause = %cause.cause, "internal error");
                error.message = format!("internal error (request id {request_id})");
            }
        }
        if let Some(e) = error.source::<ServiceError>() {
            // A resolver returned a service error without mapping it; use its own code.
            let code = e.code();
            if e.is_unavailable() {
                tracing::warn!(error = ?e, "the database could not be reached");
                error.message = format!("{} (request id {request_id})", InternalCause::UNAVAILABLE);
                let ext = error.extensions.get_or_insert_with(Default::default);
                ext.set("retryable", true);
                ext.set("retryAfterSeconds", 1);
            } else if code == ErrorCode::Internal {
                tracing::error!(error = ?e, "internal error");
                error.message = format!("internal error (request id {request_id})");
            }
            set_code(error, code);
        }
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|ext| ext.get("code").is_some());
        if !has_code {
            // Parse and validation errors (unknown fields, wrong argument types, limits).
            set_code(error, ErrorCode::InvalidInput);
        }
    }
    response
}

/// The code `finish` gave an error.
fn code_of(error: &ServerError) -> Option<ErrorCode> {
    let Some(Value::String(code)) = error.extensions.as_ref()?.get("code") else {
        return None;
    };
    ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
}

fn set_code(error: &mut ServerError, code: ErrorCode) {
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", Value::from(code.as_str()));
}

/// Helper for serde_json errors: the category and position, never the offending input.
trait ClassifyMessage {
    fn classify_message(&self) -> String;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> String {
        let what = match self.classify() {
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Eof => "truncated JSON",
            serde_json::error::Category::Data => "wrong JSON shape",
            serde_json::error::Category::Io => "unreadable body",
        };
        format!("{what} at line {} column {}", self.line(), self.column())
    }
}

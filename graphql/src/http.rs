//! The HTTP surface: `POST /graphql`, GraphiQL on `GET /graphql`, `GET /health`.
//!
//! The GraphQL handler reads the body itself (instead of the async-graphql-axum extractor) so that
//! every failure, even a malformed body or a bad `Authorization` header, is answered in the same
//! GraphQL error shape with an `extensions.code`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use async_graphql::{Response as GqlResponse, ServerError, Value};
use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::trace::TraceLayer;
use twofold_services::ports::HealthCheck;
use twofold_services::{Authenticator, ErrorCode, Principal, RequestContext, ServiceError};

use crate::error::InternalCause;
use crate::guard::Caller;
use crate::schema::TwofoldSchema;

/// Largest accepted request body. GraphQL documents of this API are far smaller.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest a GraphQL request may run before it is answered with an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest credential considered; anything longer cannot be a key and is refused unread.
const MAX_CREDENTIAL_CHARS: usize = 512;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The schema, with services attached.
    pub schema: TwofoldSchema,
    /// Bearer authentication.
    pub auth: Arc<Authenticator>,
    /// Behind `/health`.
    pub health: Arc<dyn HealthCheck>,
}

/// The request id of this request (set by the request-id middleware).
#[derive(Debug, Clone)]
struct RequestId(String);

/// The application router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/health", get(health))
        .with_state(state)
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let request_id = req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.as_str())
                .unwrap_or_default();
            tracing::info_span!(
                "request",
                method = %req.method(),
                path = %req.uri().path(),
                request_id,
                tenant = tracing::field::Empty,
                actor = tracing::field::Empty,
            )
        }))
        .layer(middleware::from_fn(request_id))
}

/// Takes the caller's `x-request-id` when it is a sane token (≤ 64 of `[A-Za-z0-9._-]`),
/// otherwise mints one; echoes it on the response.
async fn request_id(mut req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .map(str::to_owned);
    let id = given.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
}

async fn health(State(state): State<ApiState>) -> Response {
    match state.health.check().await {
        Ok(()) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(e) => {
            tracing::error!(error = ?e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}

/// A response holding one error, for failures before execution.
fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }],
    });
    (status, Json(body)).into_response()
}

/// `Authorization: Bearer <credential>`; `Ok(None)` when absent.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not valid text")?;
    let (scheme, credential) = value
        .trim()
        .split_once(' ')
        .ok_or("the Authorization header must be `Bearer <API key>`")?;
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
        return Err("the Authorization header must be `Bearer <API key>`");
    }
    if credential.chars().count() > MAX_CREDENTIAL_CHARS {
        return Err("invalid or revoked credentials");
    }
    Ok(Some(credential))
}

async fn graphql(State(state): State<ApiState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let span = tracing::Span::current();

    let principal = match bearer(&parts.headers) {
        Err(message) => {
            return error_response(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                message,
            )
        }
        Ok(None) => None,
        Ok(Some(credential)) => match state.auth.authenticate(credential).await {
            Ok(p) => Some(p),
            Err(e @ ServiceError::Internal(_)) => {
                tracing::error!(error = ?e, "authentication failed internally");
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    &format!("internal error (request id {request_id})"),
                );
            }
            Err(e) => {
                return error_response(StatusCode::UNAUTHORIZED, e.code(), &e.to_string());
            }
        },
    };
    match &principal {
        Some(Principal::Key(k)) => {
            span.record("tenant", k.tenant_id.as_str());
            span.record(
                "actor",
                format!("{}:{}", k.role.as_str(), k.key_id).as_str(),
            );
        }
        Some(Principal::Operator) => {
            span.record("actor", "operator");
        }
        None => {}
    }

    let bytes = match to_bytes(Body::new(body), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::InvalidInput,
                &format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        }
    };
    let request = match parse_request(&bytes) {
        Ok(r) => r,
        Err(detail) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidInput,
                &format!("request body must be a JSON object with a \"query\" string ({detail})"),
            )
        }
    };

    let context = RequestContext {
        request_id: request_id.clone(),
        ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let request = request.data(Caller(principal)).data(context);
    match tokio::time::timeout(REQUEST_TIMEOUT, state.schema.execute(request)).await {
        Ok(response) => Json(finish(response, &request_id)).into_response(),
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

/// A GraphQL-over-HTTP request: a JSON object whose `query` is a string. Anything else (an
/// array, a missing query) is refused here rather than executed as an empty document.
fn parse_request(bytes: &[u8]) -> Result<async_graphql::Request, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| e.classify_message())?;
    if !value.get("query").is_some_and(serde_json::Value::is_string) {
        return Err("no query".into());
    }
    serde_json::from_value(value).map_err(|e| e.classify_message())
}

/// Gives every error a code and keeps internals out of the response (logging them once here).
fn finish(mut response: GqlResponse, request_id: &str) -> GqlResponse {
    for error in &mut response.errors {
        if let Some(cause) = error.source::<InternalCause>() {
            tracing::error!(cause = %cause.0, "internal error");
            error.message = format!("internal error (request id {request_id})");
        }
        if let Some(e) = error.source::<ServiceError>() {
            // A resolver returned a service error without mapping it; use its own code.
            let code = e.code();
            if code == ErrorCode::Internal {
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

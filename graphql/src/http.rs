//! The HTTP surface: `POST /graphql`, GraphiQL on `GET /graphql` (and the live subscriptions
//! when that GET is a WebSocket upgrade), `GET /audit/export`, `GET /health`, `GET /metrics`.
//!
//! The GraphQL handler reads the body itself (instead of the async-graphql-axum extractor) so that
//! every failure, even a malformed body or a bad `Authorization` header, is answered in the same
//! GraphQL error shape with an `extensions.code`.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Response as GqlResponse, ServerError, Value};
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use twofold_domain::Role;
use twofold_services::audit::{AuditFilterInput, AuditService};
use twofold_services::ports::HealthCheck;
use twofold_services::{Authenticator, ErrorCode, Principal, RequestContext, ServiceError};

pub use crate::admission::QueryCache;
use crate::anonymous::AnonymousBudget;
use crate::client_addr::{ClientAddr, TrustedProxies};
use crate::error::InternalCause;
use crate::metrics::{ErrorCodes, Metrics};
use crate::rate_limit::RateLimits;
use crate::schema::TwofoldSchema;
use crate::websocket::Websockets;

/// Largest accepted request body. GraphQL documents of this API are far smaller.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest a GraphQL request may run before it is answered with an error (also over a
/// WebSocket).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest credential considered; anything longer cannot be a key and is refused unread.
pub(crate) const MAX_CREDENTIAL_CHARS: usize = 512;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The schema, with services attached.
    pub schema: TwofoldSchema,
    /// Bearer authentication.
    pub auth: Arc<Authenticator>,
    /// Behind `/health`.
    pub health: Arc<dyn HealthCheck>,
    /// Behind `/audit/export`.
    pub audit: AuditService,
    /// Documents already parsed.
    pub queries: Arc<QueryCache>,
    /// Behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The limits of the WebSocket path and its open sockets.
    pub websockets: Arc<Websockets>,
    /// Whether GraphiQL is served (`TWOFOLD_GRAPHIQL`).
    pub graphiql: bool,
    /// The budget of requests without a valid key, per client address.
    pub anonymous: Arc<AnonymousBudget>,
    /// The last health answer, reused for a second.
    pub health_cache: Arc<HealthCache>,
    /// The proxies whose `X-Forwarded-For` is believed (`TWOFOLD_TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
}

/// `/health` asks the database at most once a second and never twice at once, however often
/// it is called: it needs no key, so it must not be a way to keep the pool busy. Callers that
/// come while a check runs wait for its answer.
#[derive(Default)]
pub struct HealthCache(tokio::sync::Mutex<Option<(std::time::Instant, bool)>>);

impl HealthCache {
    const FRESH: Duration = Duration::from_secs(1);
    /// A check that takes longer (the pool saturated) answers "unavailable".
    const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
}

/// The request id of this request (set by the request-id middleware).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// The application router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql))
        .route("/audit/export", get(audit_export))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/graphiql/{version}/{file}", get(crate::graphiql::asset))
        .method_not_allowed_fallback(crate::fallback::method_not_allowed)
        .fallback(crate::fallback::not_found)
        .with_state(state.clone())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::client_addr::resolve,
        ))
        // Every answer is for one caller and one moment; a route that may be cached (GraphiQL's
        // assets) sets its own header first.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
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
        .layer(middleware::from_fn_with_state(state, count))
        .layer(middleware::from_fn(request_id))
}

/// Counts every response for `/metrics`: its status, how long it took, its error codes.
async fn count(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let codes = response
        .extensions()
        .get::<ErrorCodes>()
        .map(|c| c.0.as_slice())
        .unwrap_or_default();
    state
        .metrics
        .record(response.status().as_u16(), started.elapsed(), codes);
    response
}

/// `GET /metrics`, for the operator: the same token that creates tenants, since the figures
/// span every tenant.
async fn metrics(State(state): State<ApiState>, req: Request) -> Response {
    let ip = client_ip(req.extensions());
    match authenticate(&state, req.headers(), ip, "").await {
        Ok(Some(Principal::Operator)) => (
            [
                (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            state.metrics.render(),
        )
            .into_response(),
        Ok(None) => error_response(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "metrics need the operator token (Authorization: Bearer ...)",
        ),
        Ok(Some(_)) => error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "metrics are for the operator token, not a tenant's key",
        ),
        Err(response) => response,
    }
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

pub(crate) fn request_context(
    parts: &axum::http::request::Parts,
    request_id: &str,
) -> RequestContext {
    RequestContext {
        request_id: request_id.to_owned(),
        ip: client_ip(&parts.extensions).map(|ip| ip.to_string()),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

async fn health(State(state): State<ApiState>) -> Response {
    let mut last = state.health_cache.0.lock().await;
    let ok = match last.filter(|(at, _)| at.elapsed() < HealthCache::FRESH) {
        Some((_, ok)) => ok,
        None => {
            let ok = match tokio::time::timeout(HealthCache::CHECK_TIMEOUT, state.health.check())
                .await
            {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::error!(error = ?e, "health check failed");
                    false
                }
                Err(_) => {
                    tracing::error!("health check timed out");
                    false
                }
            };
            *last = Some((std::time::Instant::now(), ok));
            ok
        }
    };
    drop(last);
    if ok {
        Json(serde_json::json!({ "status": "ok" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable" })),
        )
            .into_response()
    }
}

/// The client's address (see `client_addr.rs`), when the server recorded the peer.
pub(crate) fn client_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<ClientAddr>().map(|c| c.0)
}

/// The answer to an address that spent its budget of requests without a valid key.
pub(crate) fn rate_limited(seconds: u64) -> Response {
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        &format!(
            "too many requests without a valid key from this address: try again in {seconds} s"
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// A response holding one error, for failures before execution.
pub(crate) fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }],
    });
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(ErrorCodes(vec![code]));
    response
}

/// Errors one answer lists at most.
pub const MAX_ERRORS: usize = 50;

/// The code `finish` gave an error.
fn code_of(error: &ServerError) -> Option<ErrorCode> {
    let Some(Value::String(code)) = error.extensions.as_ref()?.get("code") else {
        return None;
    };
    ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
}

/// `Authorization: Bearer <credential>`; `Ok(None)` when absent.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
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

/// The caller of a plain HTTP request, recorded on the request span; a ready error response
/// when the credentials are malformed, unknown or revoked.
async fn authenticate(
    state: &ApiState,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
    request_id: &str,
) -> Result<Option<Principal>, Response> {
    if let Some(seconds) = state.anonymous.refused(ip) {
        // Only look-ups of keys not known here are refused: a key this instance has found
        // valid still gets in (behind a proxy every client shares one address, and a flood from
        // one of them must not lock the tenants' backends out).
        let known = bearer(headers)
            .ok()
            .flatten()
            .is_some_and(|credential| state.auth.is_known(credential));
        if !known {
            return Err(rate_limited(seconds));
        }
    }
    let principal = match bearer(headers) {
        Err(message) => {
            state.anonymous.spend(ip);
            return Err(error_response(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                message,
            ));
        }
        Ok(None) => {
            state.anonymous.spend(ip);
            None
        }
        Ok(Some(credential)) => match state.auth.authenticate(credential).await {
            Ok(p) => Some(p),
            Err(e @ ServiceError::Internal(_)) => {
                // Spent too: a flood of guessed keys must not go unthrottled exactly when the
                // pool is saturated.
                state.anonymous.spend(ip);
                tracing::error!(error = ?e, "authentication failed internally");
                return Err(error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    &format!("internal error (request id {request_id})"),
                ));
            }
            Err(e) => {
                state.anonymous.spend(ip);
                return Err(error_response(
                    StatusCode::UNAUTHORIZED,
                    e.code(),
                    &e.to_string(),
                ));
            }
        },
    };
    if let Some(principal) = &principal {
        record_caller(principal);
    }
    Ok(principal)
}

/// Records the caller on the current span (the request's, or the WebSocket's).
pub(crate) fn record_caller(principal: &Principal) {
    let span = tracing::Span::current();
    match principal {
        Principal::Key(k) => {
            span.record("tenant", k.tenant_id.as_str());
            span.record(
                "actor",
                format!("{}:{}", k.role.as_str(), k.key_id).as_str(),
            );
        }
        Principal::Operator => {
            span.record("actor", "operator");
        }
    }
}

/// The HTTP status that goes with an error code, for the non-GraphQL endpoints.
fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The export's query parameters: the `auditEvents` filter, plus the order.
fn export_query(raw: &str) -> Result<(AuditFilterInput, bool), String> {
    let mut filter = AuditFilterInput::default();
    let mut oldest_first = true;
    let time = |name: &str, value: &str| {
        chrono::DateTime::parse_from_rfc3339(value)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|_| format!("`{name}` must be an RFC 3339 time such as 2026-12-01T00:00:00Z"))
    };
    let mut seen = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        // A single-valued parameter given twice is ambiguous; taking either value would export
        // something other than what one of them asked for.
        if matches!(name.as_ref(), "userId" | "from" | "to" | "oldestFirst") {
            if seen.contains(&name) {
                return Err(format!("`{name}` is given more than once; give it once"));
            }
            seen.push(name.clone());
        }
        crate::input_check::check_export_parameter(&name, &value)?;
        match name.as_ref() {
            "userId" => filter.user_id = Some(value.into_owned()),
            "eventType" | "eventTypes" => filter
                .event_types
                .get_or_insert_with(Vec::new)
                .extend(value.split(',').map(|t| t.trim().to_owned())),
            "from" => filter.from = Some(time("from", &value)?),
            "to" => filter.to = Some(time("to", &value)?),
            "oldestFirst" => {
                oldest_first = match value.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err("`oldestFirst` must be true or false".into()),
                }
            }
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(format!(
                    "unknown parameter `{shown}`; use userId, eventType, from, to, oldestFirst"
                ));
            }
        }
    }
    Ok((filter, oldest_first))
}

/// `GET /audit/export`: the tenant's audit events as JSON Lines (one event per line, the same
/// fields and masking as `auditEvents`), streamed in batches so memory stays constant. Oldest
/// first unless `oldestFirst=false`. A failure mid-stream aborts the response, so a truncated
/// export can never pass for a complete one.
async fn audit_export(State(state): State<ApiState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let ip = client_ip(&parts.extensions);
    let key = match authenticate(&state, &parts.headers, ip, &request_id).await {
        Ok(Some(Principal::Key(key))) => key,
        Ok(Some(Principal::Operator)) => {
            return error_response(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "the operator token may only call createTenant; use a tenant API key",
            )
        }
        Ok(None) => {
            return error_response(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "authentication required: send `Authorization: Bearer <API key>`",
            )
        }
        Err(response) => return response,
    };
    if !matches!(key.role, Role::Admin | Role::Auditor) {
        return error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            &format!(
                "keys with role {} may not do this; allowed: ADMIN, AUDITOR",
                key.role.as_str()
            ),
        );
    }
    let (filter, oldest_first) = match export_query(parts.uri.query().unwrap_or_default()) {
        Ok(q) => q,
        Err(message) => {
            return error_response(StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, &message)
        }
    };
    let records = match state
        .audit
        .export(&key.tenant_id, filter, oldest_first)
        .await
    {
        Ok(records) => records,
        Err(e) => {
            let code = e.code();
            let message = if code == ErrorCode::Internal {
                tracing::error!(error = ?e, "audit export failed");
                format!("internal error (request id {request_id})")
            } else {
                e.to_string()
            };
            return error_response(status_for(code), code, &message);
        }
    };
    let lines = records.map(|record| match record {
        Ok(record) => {
            let mut line = record.to_json().to_string();
            line.push('\n');
            Ok(Bytes::from(line))
        }
        Err(e) => {
            tracing::error!(error = ?e, "audit export failed mid-stream; aborting it");
            Err(std::io::Error::other("audit export failed"))
        }
    });
    let credential = bearer(&parts.headers)
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_owned();
    let revoked = crate::revocation::revocation_of(state.auth.clone(), credential);
    let lines = crate::revocation::until_revoked(lines, revoked);
    let filename = format!("attachment; filename=\"audit-{}.jsonl\"", key.tenant_id);
    let mut response = Response::new(Body::from_stream(lines));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&filename) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

async fn graphql(State(state): State<ApiState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    // The body before the key: the key is checked when the request is whole, not when its
    // header arrived, since a body may take up to the body timeout and a key revoked meanwhile
    // must not run what follows.
    let bytes = match to_bytes(Body::new(body), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::InvalidInput,
                &format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        }
        // The server's body deadline passed, or the client hung up half-way.
        Err(_) => {
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::InvalidInput,
                "the request body was cut off or sent too slowly",
            )
        }
    };
    let ip = client_ip(&parts.extensions);
    let principal = match authenticate(&state, &parts.headers, ip, &request_id).await {
        Ok(p) => p,
        Err(response) => return response,
    };
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
    let context = request_context(&parts, &request_id);
    let request = crate::guard::attach(request, principal, context);
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

fn is_length_limit(e: &axum::Error) -> bool {
    std::error::Error::source(e).is_some_and(|inner| inner.is::<http_body_util::LengthLimitError>())
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

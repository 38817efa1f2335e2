//! `GET /audit/export`.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::future::Future;

use futures::stream::BoxStream;
use futures::StreamExt;
use twofold_domain::{Role, TenantId};
use twofold_services::audit::{AuditFilterInput, AuditRecord};
use twofold_services::{ErrorCode, Principal, ServiceError};

use super::error::{error_response, HttpError};
use super::extract::{bearer, Authenticated, RequestId};
use super::ApiState;

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
pub(super) async fn audit_export(
    State(state): State<ApiState>,
    RequestId(request_id): RequestId,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let key = match caller {
        Some(Principal::Key(key)) => key,
        Some(Principal::Operator) => {
            return error_response(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "the operator token may only call createTenant; use a tenant API key",
            )
        }
        None => {
            return error_response(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "authentication required: send `Authorization: Bearer <API key>`",
            )
        }
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
    let (filter, oldest_first) = match export_query(query.as_deref().unwrap_or_default()) {
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
            return HttpError::coded(code, message).into_response();
        }
    };
    let credential = bearer(&headers)
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_owned();
    let revoked = crate::revocation::revocation_of(state.auth.clone(), credential);
    jsonl_response(records, revoked, &key.tenant_id)
}

/// The export's answer: `records` as JSON Lines, streamed as they are read, cut off (an
/// aborted body, never a complete-looking one) on a read failure or once `ended` resolves
/// (the key revoked, or the console's session ended). The API's route and the console's
/// share it, so both exports are the same bytes for the same filter.
pub fn jsonl_response(
    records: BoxStream<'static, Result<AuditRecord, ServiceError>>,
    ended: impl Future<Output = ()> + Send + 'static,
    tenant: &TenantId,
) -> Response {
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
    let lines = crate::revocation::until_revoked(lines, ended);
    let filename = format!("attachment; filename=\"audit-{tenant}.jsonl\"");
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

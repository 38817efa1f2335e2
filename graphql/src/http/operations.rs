//! The operator's routes: `GET /health` and `GET /metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use twofold_services::{ErrorCode, Principal};

use super::error::error_response;
use super::extract::Authenticated;
use super::ApiState;

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

/// `GET /health`: whether the database answers.
pub(super) async fn health(State(state): State<ApiState>) -> Response {
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

/// `GET /metrics`, for the operator: the same token that creates tenants, since the figures
/// span every tenant.
pub(super) async fn metrics(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
) -> Response {
    match caller {
        Some(Principal::Operator) => (
            [
                (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            state.metrics.render(),
        )
            .into_response(),
        None => error_response(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "metrics need the operator token (Authorization: Bearer ...)",
        ),
        Some(_) => error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "metrics are for the operator token, not a tenant's key",
        ),
    }
}

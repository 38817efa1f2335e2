//! The operator's routes: the probes (`GET /health`, `/health/live`, `/health/ready`) and
//! `GET /metrics`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use twofold_services::ports::Operations;
use twofold_services::{ErrorCode, Principal};

use super::error::error_response;
use super::extract::Authenticated;
use super::ApiState;

/// The database check asks at most once a second and never twice at once, however often the
/// probes are called: they need no key, so they must not be a way to keep the pool busy.
/// Callers that come while a check runs wait for its answer.
#[derive(Default)]
pub struct HealthCache(tokio::sync::Mutex<Option<(std::time::Instant, bool)>>);

impl HealthCache {
    const FRESH: Duration = Duration::from_secs(1);
    /// A check that takes longer (the pool saturated) answers "unavailable".
    const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

    async fn database(&self, operations: &dyn Operations) -> bool {
        let mut last = self.0.lock().await;
        if let Some((_, ok)) = last.filter(|(at, _)| at.elapsed() < Self::FRESH) {
            return ok;
        }
        let ok = match tokio::time::timeout(Self::CHECK_TIMEOUT, operations.database()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::error!(error = ?e, "database check failed");
                false
            }
            Err(_) => {
                tracing::error!("database check timed out");
                false
            }
        };
        *last = Some((std::time::Instant::now(), ok));
        ok
    }
}

/// Set once a stop signal arrived: `/health/ready` answers 503 from then on, while requests
/// are still served for the drain delay, so a load balancer moves traffic away first.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// From now on the instance reports itself not ready.
    pub fn begin(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The processor may go this long without committing a batch before `/health/ready` calls the
/// instance `degraded`: well past a busy moment, well short of what users would notice as
/// stale reads.
pub const READY_PROCESSOR_LAG: Duration = Duration::from_secs(30);

fn status(ok: bool, body: serde_json::Value) -> Response {
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// `GET /health`: whether the database answers, and 503 while draining like `/health/ready`
/// (kept from the first release for load balancers that probe it; new probes should use
/// `/health/live` and `/health/ready`).
pub(super) async fn health(State(state): State<ApiState>) -> Response {
    if state.draining.is_set() {
        return status(false, json!({ "status": "draining" }));
    }
    let ok = state.health_cache.database(&*state.operations).await;
    let word = if ok { "ok" } else { "unavailable" };
    status(ok, json!({ "status": word }))
}

/// `GET /health/live`: the process answers HTTP. Nothing else is checked: a liveness probe
/// that failed on a database outage would have every instance restarted for nothing.
pub(super) async fn live() -> Response {
    status(true, json!({ "status": "ok" }))
}

/// `GET /health/ready`: whether this instance should get traffic. 503 while it drains or
/// cannot reach the database. The event processor's lag and the delivery worker are reported
/// (`degraded`, still 200) but do not take the instance out of rotation: both are shared by
/// every instance (a `projections rebuild` holds every processor back, a provider outage every
/// worker), so failing on them would take the whole fleet down at once, sign-ins by app
/// included, and routing traffic elsewhere would mend neither. `/metrics` has both for alerts.
pub(super) async fn ready(State(state): State<ApiState>) -> Response {
    if state.draining.is_set() {
        return status(false, json!({ "status": "draining" }));
    }
    let database = state.health_cache.database(&*state.operations).await;
    let instance = state.operations.instance();
    let processor = instance.processor_lag <= READY_PROCESSOR_LAG;
    let delivery = instance.delivery_worker.unwrap_or(true);
    let word = match (database, processor && delivery) {
        (false, _) => "unavailable",
        (true, false) => "degraded",
        (true, true) => "ready",
    };
    status(
        database,
        json!({
            "status": word,
            "checks": {
                "database": if database { "ok" } else { "unavailable" },
                "processor": if processor { "ok" } else { "behind" },
                "delivery": match instance.delivery_worker {
                    None => "off",
                    Some(true) => "ok",
                    Some(false) => "stopped",
                },
            },
        }),
    )
}

/// How long a scrape waits for the database's figures before answering without them.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /metrics`, for the operator: the same token that creates tenants, since the figures
/// span every tenant.
pub(super) async fn metrics(
    State(state): State<ApiState>,
    Authenticated(caller): Authenticated,
) -> Response {
    match caller {
        Some(Principal::Operator) => {
            let backlog =
                match tokio::time::timeout(SCRAPE_TIMEOUT, state.operations.backlog()).await {
                    Ok(Ok(backlog)) => Some(backlog),
                    Ok(Err(e)) => {
                        tracing::warn!(error = ?e, "metrics: the backlog could not be read");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("metrics: reading the backlog timed out");
                        None
                    }
                };
            let text = state.metrics.render(state.operations.instance(), backlog);
            (
                [
                    (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                text,
            )
                .into_response()
        }
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

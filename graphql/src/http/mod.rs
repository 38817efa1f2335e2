//! The HTTP surface: `POST /graphql`, GraphiQL on `GET /graphql` (and the live subscriptions
//! when that GET is a WebSocket upgrade), `GET /audit/export`, the health probes, `GET /metrics`.
//! One module per route; the extractors every route uses (request id, metadata, caller) are in
//! `extract.rs`, and every failure before GraphQL runs is an `HttpError` (`error.rs`).

mod error;
mod export;
mod extract;
mod operations;
mod post;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use twofold_services::ports::Operations;
use twofold_services::{audit::AuditService, Authenticator};

pub use crate::admission::QueryCache;
use crate::anonymous::AnonymousBudget;
use crate::client_addr::TrustedProxies;
use crate::metrics::{ErrorCodes, Metrics};
use crate::schema::TwofoldSchema;
use crate::websocket::Websockets;
pub(crate) use error::{error_response, rate_limited};
pub use export::jsonl_response;
pub(crate) use extract::{bearer, client_ip, record_caller};
pub use extract::{request_context, RequestId};
pub use operations::{Draining, HealthCache, READY_PROCESSOR_LAG};
pub use post::MAX_ERRORS;
pub(crate) use post::{finish, parse_request};

/// Largest accepted request body. GraphQL documents of this API are far smaller.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest a GraphQL request may run before it is answered with an error (also over a
/// WebSocket).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest credential considered; anything longer cannot be a key and is refused unread.
pub(crate) const MAX_CREDENTIAL_CHARS: usize = 512;

/// What the handlers share: axum clones it for every request and middleware, so it is one
/// shared pointer (the profile counted 2.5% of a verify's CPU in cloning and dropping the
/// parts one by one).
#[derive(Clone)]
pub struct ApiState(Arc<ApiParts>);

impl From<ApiParts> for ApiState {
    fn from(parts: ApiParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for ApiState {
    type Target = ApiParts;

    fn deref(&self) -> &ApiParts {
        &self.0
    }
}

/// The parts of [`ApiState`].
pub struct ApiParts {
    /// The schema, with services attached.
    pub schema: TwofoldSchema,
    /// Bearer authentication.
    pub auth: Arc<Authenticator>,
    /// Behind the health probes and `/metrics`.
    pub operations: Arc<dyn Operations>,
    /// Set when a stop signal arrived: `/health/ready` answers 503.
    pub draining: Draining,
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

/// While the instance drains, every answer says `Connection: close`: a client's next request
/// then opens a new connection, which the load balancer (no longer seeing this instance ready)
/// sends elsewhere, instead of racing the close of its kept-alive one.
async fn close_when_draining(
    axum::extract::State(draining): axum::extract::State<Draining>,
    req: Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    if draining.is_set() {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// The application router, with `pages` (the console's routes, or none) behind the same
/// request id, client address, tracing, metrics and `no-store` layers.
pub fn router(state: ApiState, pages: Router) -> Router {
    Router::new()
        .route("/graphql", post::route())
        .route("/audit/export", get(export::audit_export))
        .route("/health", get(operations::health))
        .route("/health/live", get(operations::live))
        .route("/health/ready", get(operations::ready))
        .route("/metrics", get(operations::metrics))
        .route("/graphiql/{version}/{file}", get(crate::graphiql::asset))
        .method_not_allowed_fallback(crate::fallback::method_not_allowed)
        .fallback(crate::fallback::not_found)
        .with_state(state.clone())
        .merge(pages)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::client_addr::resolve,
        ))
        .layer(middleware::from_fn_with_state(
            state.draining.clone(),
            close_when_draining,
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

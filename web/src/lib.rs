//! Twofold's pages, served by the same binary as the API: the console for organisation admins
//! and auditors at `/console`. Server-rendered HTML (askama templates, checked at compile time)
//! that works without JavaScript; the pages call the same use-cases as GraphQL, with the same
//! roles.
//!
//! Every answer carries a strict Content-Security-Policy (no inline script or style, nothing
//! from another origin, no framing); static files are embedded in the binary.

mod assets;
mod console;
mod cookies;
mod hosted;
mod language;
mod page;
mod security;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use twofold_graphql::anonymous::AnonymousBudget;
use twofold_services::audit::AuditService;
use twofold_services::compliance::ComplianceService;
use twofold_services::console_sessions::ConsoleSessions;
use twofold_services::overview::OverviewService;
use twofold_services::tenants::TenantService;
use twofold_services::users::UserService;

/// What the pages share.
#[derive(Clone)]
pub struct WebState {
    pub sessions: ConsoleSessions,
    pub tenants: TenantService,
    pub compliance: ComplianceService,
    pub overview: OverviewService,
    pub audit: AuditService,
    /// Turns `true` when the server starts shutting down: the console's live audit stream
    /// ends then, or the graceful shutdown would wait for it forever.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    pub users: UserService,
    /// The API's per-key request budget and the operator's bounds on it: a console page
    /// spends the key's budget like a GraphQL request, and the policy form is held to the
    /// same bounds as `setPolicy` (`None` only where no schema limits are wired).
    pub rate_limits: Option<Arc<twofold_graphql::rate_limit::RateLimits>>,
    /// The API's budget of failed sign-ins per client address: a key guessed through the
    /// console spends the same budget as one guessed through the API.
    pub anonymous: Arc<AnonymousBudget>,
    /// The hosted pages' links, sessions and results.
    pub hosted: twofold_services::hosted::HostedPages,
    /// The console's budgets of sign-ins, sign-outs and revocations.
    pub console_budgets: Arc<ConsoleBudgets>,
    /// How long a page may take to answer ([`PAGE_TIMEOUT`] unless a test shortens it).
    pub page_timeout: Duration,
}

/// How long a page may take to start its answer, as long as an API request. A page waiting on
/// a stalled database would otherwise hold its connection, and its tenant's share of the
/// instance, for as long as the stall lasts. Only the answer's head is timed: a streamed body
/// (an export, the live audit stream) runs on.
pub const PAGE_TIMEOUT: Duration = twofold_graphql::http::REQUEST_TIMEOUT;

pub use console::budgets::ConsoleBudgets;

/// Largest form body read. The API reads at most 64 KiB of a request; axum's default for a
/// form is 2 MiB, held in memory before the CSRF check, on as many connections as the instance
/// accepts. A console form is a key, a token and a reason: far less.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// The pages' routes: the console under `/console` (when `console`), the hosted pages under
/// `/hosted`, and their static files, to be merged into the API's router (which adds the
/// request id, client address, tracing and metrics layers).
pub fn router(state: WebState, console: bool) -> Router {
    let timeout = state.page_timeout;
    let pages = if console {
        Router::new().merge(
            console::routes().layer(axum::middleware::from_fn_with_state(
                timeout,
                console::time_limit,
            )),
        )
    } else {
        Router::new()
    };
    pages
        .merge(hosted::routes().layer(axum::middleware::from_fn_with_state(
            timeout,
            hosted::time_limit,
        )))
        .merge(assets::routes(console))
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn(security::same_origin_posts))
        .layer(axum::middleware::from_fn(security::headers))
}

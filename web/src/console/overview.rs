//! `/console`: how many users the tenant has shown us, how many have a second factor, and
//! whether 2FA is required.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use twofold_services::roles::{require, ADMIN_AUDITOR};

use super::SignedIn;
use crate::page::{self, Chrome};
use crate::WebState;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    users_seen: u64,
    enrolled: u64,
    not_enrolled: u64,
    enforcement: String,
}

pub(crate) async fn page(State(state): State<WebState>, s: SignedIn) -> Response {
    if let Err(e) = require(&s.session.key, ADMIN_AUDITOR) {
        return page::error(s.chrome, &e, &s.request_id);
    }
    let report = match state.compliance.report(s.call.tenant(), 1, None).await {
        Ok(r) => r,
        Err(e) => return page::error(s.chrome, &e, &s.request_id),
    };
    let texts = s.chrome.texts;
    let enforcement = match report.enforced_since {
        Some(since) if report.enforced => texts.with(
            "console-overview-enforced",
            &[("since", &since.format("%Y-%m-%d").to_string())],
        ),
        _ => texts.get("console-overview-not-enforced"),
    };
    page::html(
        StatusCode::OK,
        &OverviewPage {
            chrome: s.chrome,
            users_seen: report.total_users,
            enrolled: report.enrolled_users,
            not_enrolled: report.total_users.saturating_sub(report.enrolled_users),
            enforcement,
        },
    )
}

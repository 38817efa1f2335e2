//! `/console`: the tenant at a glance, from the overview read model (never a scan of events):
//! users seen, enrolled, in grace, locked out, whether 2FA is required, and sign-ins and failed
//! codes per day over the last 30 days.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use twofold_services::overview::DailyActivity;

use super::chart::{self, Bar};
use super::SignedIn;
use crate::page::{self, Chrome};
use crate::WebState;

/// Days the chart shows.
const DAYS: i64 = 30;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    figures: Vec<(&'static str, String, String)>,
    bars: Vec<Bar>,
    days: Vec<DailyActivity>,
    chart_label: String,
    width: u32,
    height: u32,
    label_y: u32,
}

impl OverviewPage {
    fn first_day(&self) -> String {
        self.days
            .first()
            .map(|d| d.day.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    }

    fn last_day(&self) -> String {
        self.days
            .last()
            .map(|d| d.day.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    }
}

pub(crate) async fn page(State(state): State<WebState>, s: SignedIn) -> Response {
    let overview = match state.overview.overview(&s.session.key, DAYS).await {
        Ok(o) => o,
        Err(e) => return page::error(s.chrome, &e, &s.request_id),
    };
    let t = s.chrome.texts;
    let sign_ins: u64 = overview.days.iter().map(|d| d.sign_ins).sum();
    let failed: u64 = overview.days.iter().map(|d| d.failed_codes).sum();
    let figures = vec![
        (
            "users-seen",
            t.get("console-overview-users-seen"),
            overview.users_seen.to_string(),
        ),
        (
            "enrolled",
            t.get("console-overview-enrolled"),
            overview.enrolled.to_string(),
        ),
        (
            "in-grace",
            t.get("console-overview-in-grace"),
            overview.in_grace.to_string(),
        ),
        (
            "locked-out",
            t.get("console-overview-locked-out"),
            overview.locked_out.to_string(),
        ),
        (
            "enforcement",
            t.get("console-overview-enforcement"),
            t.get(if overview.enforced {
                "console-overview-enforced"
            } else {
                "console-overview-not-enforced"
            }),
        ),
    ];
    let chart_label = t.with(
        "console-overview-chart-label",
        &[
            ("days", &DAYS.to_string()),
            ("signins", &sign_ins.to_string()),
            ("failed", &failed.to_string()),
        ],
    );
    page::html(
        StatusCode::OK,
        &OverviewPage {
            chrome: s.chrome,
            figures,
            bars: chart::bars(&overview.days),
            days: overview.days,
            chart_label,
            width: chart::WIDTH,
            height: chart::HEIGHT,
            label_y: chart::label_y(),
        },
    )
}

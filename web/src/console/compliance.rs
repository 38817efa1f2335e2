//! `/console/compliance`: the users without 2FA and when their grace ends, from the compliance
//! report the API's `compliance` query serves (same read model, same cursors), and the whole
//! list as CSV for a spreadsheet.

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures::stream::{self, StreamExt};
use twofold_graphql::input_check::text::{self, Kind};
use twofold_services::compliance::NonCompliantUser;
use twofold_services::roles::{self, ADMIN_AUDITOR};
use twofold_services::streams::MAX_COMPLIANCE_CSVS_PER_TENANT;
use twofold_services::ServiceError;

use super::SignedIn;
use crate::page::{self, Chrome};
use crate::WebState;

/// Users per page of the console (the API's default page).
const PAGE: i64 = 50;

#[derive(Template)]
#[template(path = "console/compliance.html")]
struct CompliancePage {
    chrome: Chrome,
    figures: Vec<(&'static str, String, String)>,
    users: Vec<Row>,
    next: Option<String>,
    first_page: bool,
}

struct Row {
    user_id: String,
    first_seen_at: String,
    grace_ends_at: Option<String>,
    grace_over: bool,
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `after` as the API checks its arguments; the cursor itself is checked by the report.
fn checked_after(after: Option<String>) -> Result<Option<String>, ServiceError> {
    let after = after.filter(|a| !a.is_empty());
    if let Some(a) = &after {
        text::check("after", a, Kind::Id).map_err(ServiceError::InvalidInput)?;
    }
    Ok(after)
}

pub(crate) async fn page(
    State(state): State<WebState>,
    s: SignedIn,
    RawQuery(raw): RawQuery,
) -> Response {
    let after = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "after")
        .map(|(_, v)| v.into_owned());
    let report = async {
        roles::require(&s.session.key, ADMIN_AUDITOR)?;
        let after = checked_after(after)?;
        let report = state
            .compliance
            .report(&s.session.key.tenant_id, PAGE, after.as_deref())
            .await?;
        Ok::<_, ServiceError>((report, after.is_none()))
    }
    .await;
    let (report, first_page) = match report {
        Ok(r) => r,
        Err(e) => return page::error(s.chrome, &e, &s.request_id),
    };
    let t = s.chrome.texts;
    let now = chrono::Utc::now();
    let figures = vec![
        (
            "total",
            t.get("console-compliance-total"),
            report.total_users.to_string(),
        ),
        (
            "enrolled",
            t.get("console-compliance-enrolled"),
            report.enrolled_users.to_string(),
        ),
        (
            "not-enrolled",
            t.get("console-compliance-not-enrolled"),
            report
                .total_users
                .saturating_sub(report.enrolled_users)
                .to_string(),
        ),
        (
            "enforcement",
            t.get("console-overview-enforcement"),
            match report.enforced_since {
                Some(since) if report.enforced => t.with(
                    "console-compliance-enforced-since",
                    &[("since", &time(since))],
                ),
                _ => t.get("console-overview-not-enforced"),
            },
        ),
    ];
    let users = report
        .non_compliant
        .into_iter()
        .map(|u| Row {
            user_id: u.user_id.as_str().to_owned(),
            first_seen_at: time(u.first_seen_at),
            grace_over: u.grace_ends_at.is_some_and(|g| g <= now),
            grace_ends_at: u.grace_ends_at.map(time),
        })
        .collect();
    let next = report
        .end_cursor
        .filter(|_| report.has_next_page)
        .map(|c| format!("/console/compliance?{}", query_of(&[("after", &c)])));
    page::html(
        StatusCode::OK,
        &CompliancePage {
            chrome: s.chrome,
            figures,
            users,
            next,
            first_page,
        },
    )
}

pub(crate) fn query_of(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// One CSV cell: quoted when it holds a separator, quote or line break, and prefixed with an
/// apostrophe when a spreadsheet would read it as a formula (user ids are the tenant's text,
/// and `=HYPERLINK(...)` is a valid one).
pub(crate) fn csv_cell(value: &str) -> String {
    let neutral = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    // `;` too: spreadsheets in many locales split on it, and `x;=HYPERLINK(...)` unquoted would
    // become a second cell that starts with `=`.
    if neutral.contains([',', ';', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

fn csv_line(u: &NonCompliantUser) -> String {
    format!(
        "{},{},{}\n",
        csv_cell(u.user_id.as_str()),
        u.first_seen_at.to_rfc3339(),
        u.grace_ends_at.map(|g| g.to_rfc3339()).unwrap_or_default()
    )
}

/// `/console/compliance.csv`: every user without 2FA, read page by page from the report (so
/// memory stays bounded however many there are). A failure after the first page aborts the
/// body, so a cut-off file never passes for a complete one. A tenant runs at most
/// [`MAX_COMPLIANCE_CSVS_PER_TENANT`] at once on an instance; one more is refused with 429
/// (decision 146).
pub(crate) async fn csv(
    State(state): State<WebState>,
    s: SignedIn,
    request_headers: axum::http::HeaderMap,
) -> Response {
    if let Err(e) = roles::require(&s.session.key, ADMIN_AUDITOR) {
        return page::error(s.chrome, &e, &s.request_id);
    }
    // The first page is read before answering, so a refusal is a page, not a broken download.
    let pages = match state.compliance.export(&s.session.key.tenant_id).await {
        Ok(pages) => pages,
        Err(ServiceError::RateLimited {
            retry_after_seconds,
            ..
        }) => return busy(s.chrome, retry_after_seconds),
        Err(e) => return page::error(s.chrome, &e, &s.request_id),
    };
    let header_line = Bytes::from_static(b"user_id,first_seen_at,grace_ends_at\n");
    let lines = pages.map(|page| match page {
        Ok(users) => Ok(Bytes::from(users.iter().map(csv_line).collect::<String>())),
        Err(e) => {
            tracing::error!(error = ?e, "compliance CSV failed mid-stream; aborting it");
            Err(std::io::Error::other("compliance CSV failed"))
        }
    });
    // Cut off, as an error (a truncated file must not pass for a whole one), when the session
    // ends or its key is revoked, as the audit export is.
    let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ended = {
        let cut = cut.clone();
        let ended = super::audit::session_ended(state.clone(), &request_headers);
        async move {
            ended.await;
            cut.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let body = stream::once(async { Ok(header_line) })
        .chain(lines)
        .take_until(ended)
        .chain(stream::once(async move {
            if cut.load(std::sync::atomic::Ordering::SeqCst) {
                Err(std::io::Error::other("the console session ended"))
            } else {
                Ok(Bytes::new())
            }
        }));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"compliance.csv\""),
    );
    response
}

/// The answer to one download more than the tenant may run at once: 429, when to try again,
/// and why in the page's language.
fn busy(chrome: Chrome, retry_after_seconds: i64) -> Response {
    let seconds = u64::try_from(retry_after_seconds).unwrap_or(1).max(1);
    let message = chrome.texts.with(
        "console-compliance-csv-busy",
        &[
            ("max", &MAX_COMPLIANCE_CSVS_PER_TENANT.to_string()),
            ("seconds", &seconds.to_string()),
        ],
    );
    super::too_many(chrome, message, seconds)
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_neutralised_and_quoted() {
        assert_eq!(csv_cell("alice"), "alice");
        assert_eq!(
            csv_cell("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("@a"), "'@a");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("x;=1"), "\"x;=1\"");
    }
}

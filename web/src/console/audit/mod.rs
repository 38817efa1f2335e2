//! `/console/audit`: the tenant's audit timeline, newest first, from the same use-case as the
//! API's `auditEvents` (same masking, same signed cursors), with its filter in the query
//! string; the JSON Lines export of the same filter; and a live stream of what is recorded
//! next (`live.rs`).

mod live;
pub(crate) use live::session_ended;
mod query;

pub(crate) use live::live;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use twofold_services::audit::{AuditRecord, EVENT_TYPES};
use twofold_services::roles::{self, ADMIN_AUDITOR};
use twofold_services::ServiceError;

use self::query::AuditQuery;
use super::SignedIn;
use crate::language::Texts;
use crate::page::{self, Chrome};
use crate::WebState;

/// Events per page (the API's default page).
const PAGE: i64 = 50;

/// The readable name of an event type, for the types the catalog names
/// (`console-event-{type}`); the others show as the API names them.
fn type_label(texts: Texts, event_type: &str) -> Option<String> {
    texts.find(&format!("console-event-{event_type}"))
}

/// One event as the timeline shows it; also the live stream's fragment.
#[derive(Template)]
#[template(path = "console/audit_event.html")]
pub(crate) struct EventItem {
    texts: Texts,
    position: String,
    iso: String,
    time: String,
    event_type: String,
    label: Option<String>,
    user_id: Option<String>,
    actor: String,
    request_id: Option<String>,
    details: Option<String>,
}

impl EventItem {
    fn t(&self, id: &str) -> String {
        self.texts.get(id)
    }

    pub(crate) fn of(texts: Texts, r: AuditRecord) -> Self {
        let field = |k: &str| r.actor.get(k).and_then(serde_json::Value::as_str);
        let actor = match (field("role"), field("keyId")) {
            (Some(role), Some(key)) => format!("{role} · {key}"),
            _ if r.actor.get("operator").is_some() => texts.get("console-audit-actor-operator"),
            _ if r.actor.get("system").is_some() => texts.get("console-audit-actor-system"),
            _ => texts.get("console-audit-actor-unknown"),
        };
        let details = match &r.data {
            serde_json::Value::Object(m) if m.is_empty() => None,
            serde_json::Value::Null => None,
            data => serde_json::to_string_pretty(data).ok(),
        };
        Self {
            texts,
            position: r.position.to_string(),
            iso: r.occurred_at.to_rfc3339(),
            time: r.occurred_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            label: type_label(texts, &r.event_type),
            event_type: r.event_type,
            user_id: r.user_id,
            actor,
            request_id: r.request_id,
            details,
        }
    }

    /// The fragment's HTML (askama escapes every value).
    pub(crate) fn html(&self) -> String {
        self.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "an audit event failed to render");
            String::new()
        })
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    query: AuditQuery,
    error: Option<String>,
    event_types: &'static [&'static str],
    events: Vec<String>,
    next: Option<String>,
    first_page: bool,
    export: String,
    refresh: String,
    live: String,
}

impl AuditPage {
    fn checked(&self, event_type: &&str) -> bool {
        self.query.event_types.iter().any(|t| t == event_type)
    }

    /// A filter box's label: the readable name with the API's, or the API's alone.
    fn type_name(&self, event_type: &&str) -> String {
        match type_label(self.chrome.texts, event_type) {
            Some(label) => format!("{label} ({event_type})"),
            None => (*event_type).to_owned(),
        }
    }
}

pub(crate) async fn page(
    State(state): State<WebState>,
    s: SignedIn,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(e) = roles::require(&s.session.key, ADMIN_AUDITOR) {
        return page::error(s.chrome, &e, &s.request_id);
    }
    let texts = s.chrome.texts;
    let parsed = AuditQuery::parse(raw.as_deref().unwrap_or_default());
    let query = parsed.as_ref().ok().cloned().unwrap_or_default();
    let result = async {
        let query = parsed?;
        let filter = query.filter()?;
        state
            .audit
            .page(
                &s.session.key.tenant_id,
                filter,
                PAGE,
                query.after.as_deref(),
                false,
            )
            .await
    }
    .await;
    let (status, error, events, next) = match result {
        Ok(p) => {
            let next = p
                .end_cursor
                .filter(|_| p.has_next_page)
                .map(|c| query.link("/console/audit", &[("after", &c)]));
            let events = p
                .records
                .into_iter()
                .map(|r| EventItem::of(texts, r).html())
                .collect();
            (StatusCode::OK, None, events, next)
        }
        Err(ServiceError::InvalidInput(message)) => {
            (StatusCode::BAD_REQUEST, Some(message), Vec::new(), None)
        }
        Err(e) => return page::error(s.chrome, &e, &s.request_id),
    };
    page::html(
        status,
        &AuditPage {
            chrome: s.chrome,
            first_page: query.after.is_none(),
            export: query.link("/console/audit/export", &[]),
            refresh: query.link("/console/audit", &[]),
            live: query.link("/console/audit/live", &[]),
            query,
            error,
            event_types: EVENT_TYPES,
            events,
            next,
        },
    )
}

/// `/console/audit/export`: the API's `/audit/export` for a signed-in browser (which has a
/// session, not a Bearer key): the same use-case, limits and bytes (oldest first), cut off
/// when the session ends or its key is revoked.
pub(crate) async fn export(
    State(state): State<WebState>,
    s: SignedIn,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let records = async {
        roles::require(&s.session.key, ADMIN_AUDITOR)?;
        let filter = AuditQuery::parse(raw.as_deref().unwrap_or_default())?.filter()?;
        state
            .audit
            .export(&s.session.key.tenant_id, filter, true)
            .await
    }
    .await;
    let records = match records {
        Ok(r) => r,
        Err(e) => return page::error(s.chrome, &e, &s.request_id),
    };
    let ended = live::session_ended(state.clone(), &headers);
    twofold_graphql::http::jsonl_response(records, ended, &s.session.key.tenant_id)
}

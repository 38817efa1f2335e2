//! `/console/users`: find a user by the tenant's id for them, then their 2FA status and their
//! audit history (newest first, paged with the audit service's signed cursors). Reading never
//! writes: a user the tenant never showed us is "not found", not created. ADMIN actions are in
//! [`actions`].

mod actions;
mod address;

pub(crate) use actions::{clear_lockout, reset, revoke_device};
pub(crate) use address::page_of_action;
use address::{user_url, Target};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use twofold_graphql::input_check::text::{check, Kind};
use twofold_services::audit::{AuditFilterInput, AuditRecord};
use twofold_services::roles::{require, ADMIN, ADMIN_AUDITOR};
use twofold_services::users::UserStatus;
use twofold_services::ServiceError;

use super::SignedIn;
use crate::page::{self, Chrome};
use crate::WebState;

/// Events per page of a user's history.
const HISTORY_PAGE: i64 = 20;

#[derive(Template)]
#[template(path = "console/users.html")]
struct FindPage {
    chrome: Chrome,
    user_id: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/user.html")]
pub(super) struct UserPage {
    chrome: Chrome,
    status: UserStatus,
    can_act: bool,
    csrf: String,
    /// The confirmation of the action just done.
    done: Option<String>,
    /// A refused action: (which form, its message).
    error: Option<(String, String)>,
    /// The reason typed, shown again when the action was refused.
    reason: String,
    history: Vec<Row>,
    /// The path of the next page of the history.
    next: Option<String>,
}

impl UserPage {
    fn error_for(&self, form: &str) -> Option<&str> {
        match &self.error {
            Some((f, message)) if f == form => Some(message),
            _ => None,
        }
    }

    fn reason_for(&self, form: &str) -> &str {
        if self.error_for(form).is_some() {
            &self.reason
        } else {
            ""
        }
    }

    fn when(&self, at: &DateTime<Utc>) -> String {
        when(at)
    }

    /// Where the form of `action` (`reset`, `clear-lockout`) posts.
    fn action_url(&self, action: &str) -> String {
        user_url(self.status.user_id.as_str(), &format!("/{action}"), &[])
    }

    fn device_action(&self, device_id: &str) -> String {
        self.action_url(&format!("devices/{}/revoke", encode(device_id)))
    }

    fn device_form(&self, id: &str) -> String {
        format!("device-{id}")
    }

    /// (form, path, heading, button) of the actions on the whole user.
    fn admin_forms(&self) -> [(&'static str, &'static str, &'static str, &'static str); 2] {
        [
            (
                "reset",
                "reset",
                "console-user-reset-title",
                "console-user-reset",
            ),
            (
                "lockout",
                "clear-lockout",
                "console-user-lockout-title",
                "console-user-lockout",
            ),
        ]
    }

    fn method_label(&self, method: &twofold_domain::Method) -> String {
        self.chrome
            .t(&format!("console-method-{}", method.as_str()))
    }
}

/// One event of the history, as the table shows it.
pub(super) struct Row {
    at: String,
    event_type: String,
    actor: String,
    details: String,
}

impl Row {
    fn of(r: &AuditRecord) -> Self {
        let field = |name: &str| r.actor.get(name).and_then(|v| v.as_str()).unwrap_or("");
        let actor = if r.actor.get("keyId").is_some() {
            format!("{}:{}", field("role"), field("keyId"))
        } else if r.actor.get("operator").is_some() {
            "operator".into()
        } else {
            "system".into()
        };
        // The data is already masked by the audit service: no secret or full contact.
        let details = match &r.data {
            serde_json::Value::Object(map) => map
                .iter()
                // A field without a value (an optional one never given) says nothing.
                .filter(|(k, v)| k.as_str() != "at" && !v.is_null())
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join("; "),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        Self {
            at: when(&r.occurred_at),
            event_type: r.event_type.clone(),
            actor,
            details,
        }
    }
}

pub(super) fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The path segment for `id`: every byte but the unreserved ones percent-encoded.
pub(super) fn encode(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
pub(crate) struct Find {
    #[serde(default, rename = "userId")]
    user_id: Option<String>,
}

/// The find form; with `userId`, the user's page.
pub(crate) async fn find(s: SignedIn, Query(q): Query<Find>) -> Response {
    if let Err(e) = require(&s.session.key, ADMIN_AUDITOR) {
        return page::error(s.chrome, &e, &s.request_id);
    }
    let Some(user_id) = q.user_id else {
        return page::html(
            StatusCode::OK,
            &FindPage {
                chrome: s.chrome,
                user_id: String::new(),
                error: None,
            },
        );
    };
    let checked = check("userId", &user_id, Kind::Id).and_then(|()| {
        twofold_domain::UserId::parse(&user_id)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    match checked {
        Ok(()) => Redirect::to(&user_url(&user_id, "", &[])).into_response(),
        Err(message) => page::html(
            StatusCode::BAD_REQUEST,
            &FindPage {
                chrome: s.chrome,
                user_id,
                error: Some(message),
            },
        ),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct Shown {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

/// `/console/users/{userId}` and `/console/user?id=` (for ids a browser would fold).
pub(crate) async fn user(
    State(state): State<WebState>,
    s: SignedIn,
    target: Target,
    Query(q): Query<Shown>,
) -> Response {
    if let Err(e) = require(&s.session.key, ADMIN_AUDITOR) {
        return page::error(s.chrome, &e, &s.request_id);
    }
    if let Some(after) = &q.after {
        if let Err(m) = check("after", after, Kind::Id) {
            return page::error(s.chrome, &ServiceError::InvalidInput(m), &s.request_id);
        }
    }
    let done = q
        .done
        .as_deref()
        .and_then(|d| match d {
            "reset" | "lockout" | "device" => Some(format!("console-user-done-{d}")),
            _ => None,
        })
        .map(|id| s.chrome.t(&id));
    show(
        &state,
        s,
        &target.user_id,
        q.after.as_deref(),
        done,
        None,
        String::new(),
    )
    .await
}

/// The user's page (with `error` beside the form it names, and a 400, when an action was
/// refused).
pub(super) async fn show(
    state: &WebState,
    s: SignedIn,
    user_id: &str,
    after: Option<&str>,
    done: Option<String>,
    error: Option<(String, String)>,
    reason: String,
) -> Response {
    let status = match load(state, &s, user_id).await {
        Ok(status) => status,
        Err(e) => return page::error(s.chrome, &e, &s.request_id),
    };
    let filter = AuditFilterInput {
        user_id: Some(user_id.to_owned()),
        ..AuditFilterInput::default()
    };
    let history = match state
        .audit
        .page(s.call.tenant(), filter, HISTORY_PAGE, after, false)
        .await
    {
        Ok(h) => h,
        Err(e) => return page::error(s.chrome, &e, &s.request_id),
    };
    let next = history
        .has_next_page
        .then_some(history.end_cursor.as_ref())
        .flatten()
        .map(|c| user_url(user_id, "", &[("after", c)]));
    let code = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page::html(
        code,
        &UserPage {
            can_act: require(&s.session.key, ADMIN).is_ok(),
            csrf: s.session.csrf.clone(),
            chrome: s.chrome,
            status,
            done,
            error,
            reason,
            history: history.records.iter().map(Row::of).collect(),
            next,
        },
    )
}

/// The user's status, or `NOT_FOUND` when the tenant never enrolled anything for them
/// (reading does not create them).
pub(super) async fn load(
    state: &WebState,
    s: &SignedIn,
    user_id: &str,
) -> Result<UserStatus, ServiceError> {
    check("userId", user_id, Kind::Id).map_err(ServiceError::InvalidInput)?;
    state
        .users
        .status(s.call.tenant(), user_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound("no such user in this organisation".into()))
}

//! `/console/keys`: the tenant's API keys. An ADMIN issues a key (its secret is shown once, on
//! the answer to the POST: never in a URL, never stored) and revokes one (revoking the key of
//! this session ends it; the domain refuses to revoke the last ADMIN key).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use twofold_domain::Role;
use twofold_graphql::input_check::text::{check, Kind};
use twofold_services::ports::ApiKeyView;
use twofold_services::roles::{require, ADMIN, ADMIN_AUDITOR};
use twofold_services::tenants::IssuedKey;
use twofold_services::{ErrorCode, ServiceError};

use super::users::when;
use super::SignedIn;
use crate::page::{self, Chrome};
use crate::WebState;

const ROLES: [Role; 3] = [Role::App, Role::Admin, Role::Auditor];

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<ApiKeyView>,
    can_act: bool,
    csrf: String,
    revoked: Option<String>,
    /// A refused action: (`issue` or `revoke`, its code, its message).
    error: Option<(&'static str, ErrorCode, String)>,
    label: String,
    role: String,
    roles: [Role; 3],
}

impl KeysPage {
    fn when(&self, at: &chrono::DateTime<chrono::Utc>) -> String {
        when(at)
    }

    fn error_for(&self, form: &str) -> Option<(&'static str, &str)> {
        match &self.error {
            Some((f, code, message)) if *f == form => Some((code.as_str(), message)),
            _ => None,
        }
    }
}

#[derive(Template)]
#[template(path = "console/key_issued.html")]
struct IssuedPage {
    chrome: Chrome,
    issued: IssuedKey,
}

#[derive(Deserialize)]
pub(crate) struct Listed {
    #[serde(default)]
    revoked: Option<String>,
}

pub(crate) async fn list(
    State(state): State<WebState>,
    s: SignedIn,
    Query(q): Query<Listed>,
) -> Response {
    let revoked = q
        .revoked
        .filter(|id| check("revoked", id, Kind::Id).is_ok());
    show(&state, s, revoked, None, String::new(), String::new()).await
}

async fn show(
    state: &WebState,
    s: SignedIn,
    revoked: Option<String>,
    error: Option<(&'static str, ErrorCode, String)>,
    label: String,
    role: String,
) -> Response {
    if let Err(e) = require(&s.session.key, ADMIN_AUDITOR) {
        return page::error(s.chrome, &e, &s.request_id);
    }
    let keys = match state.tenants.api_keys(s.call.tenant()).await {
        Ok(k) => k,
        Err(e) => return page::error(s.chrome, &e, &s.request_id),
    };
    let status = match &error {
        Some((_, code, _)) => page::status_of(*code),
        None => StatusCode::OK,
    };
    // Only a key of this tenant that is revoked: a crafted link cannot claim anything else.
    let revoked = revoked
        .filter(|id| {
            keys.iter()
                .any(|k| k.id.as_str() == id && k.revoked_at.is_some())
        })
        .map(|id| s.chrome.texts.with("console-keys-revoked", &[("key", &id)]));
    page::html(
        status,
        &KeysPage {
            can_act: require(&s.session.key, ADMIN).is_ok(),
            csrf: s.session.csrf.clone(),
            chrome: s.chrome,
            keys,
            revoked,
            error,
            label,
            role,
            roles: ROLES,
        },
    )
}

fn one<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

pub(crate) async fn issue(
    State(state): State<WebState>,
    s: SignedIn,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = require(&s.session.key, ADMIN) {
        return page::error(s.chrome, &e, &s.request_id);
    }
    if let Some(refused) = s.refuse_csrf(one(&pairs, "csrf")) {
        return refused;
    }
    let label = one(&pairs, "label").to_owned();
    let role_name = one(&pairs, "role").to_owned();
    let checked = check("label", &label, Kind::Text).and_then(|()| {
        Role::parse(&role_name)
            .filter(|r| ROLES.contains(r))
            .ok_or_else(|| "role must be one of APP, ADMIN, AUDITOR".to_owned())
    });
    let result = match checked {
        Ok(role) => state.tenants.issue_api_key(&s.call, role, &label).await,
        Err(m) => Err(ServiceError::InvalidInput(m)),
    };
    match result {
        Ok(issued) => page::html(
            StatusCode::OK,
            &IssuedPage {
                chrome: s.chrome,
                issued,
            },
        ),
        Err(e @ ServiceError::InvalidInput(_)) => {
            let error = Some(("issue", e.code(), e.to_string()));
            show(&state, s, None, error, label, role_name).await
        }
        Err(e) => page::error(s.chrome, &e, &s.request_id),
    }
}

pub(crate) async fn revoke(
    State(state): State<WebState>,
    s: SignedIn,
    Path(key_id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = require(&s.session.key, ADMIN) {
        return page::error(s.chrome, &e, &s.request_id);
    }
    if let Some(refused) = s.refuse_csrf(one(&pairs, "csrf")) {
        return refused;
    }
    let result = match check("keyId", &key_id, Kind::Id) {
        Ok(()) => state.tenants.revoke_api_key(&s.call, &key_id).await,
        Err(m) => Err(ServiceError::InvalidInput(m)),
    };
    match result {
        // When it was this session's key, the next page finds the session ended.
        Ok(view) => {
            Redirect::to(&format!("/console/keys?revoked={}", view.id.as_str())).into_response()
        }
        // The API's refusals (the last ADMIN key, a key not of this tenant) above the list.
        Err(e) if !matches!(e, ServiceError::Internal(_)) => {
            let error = Some(("revoke", e.code(), e.to_string()));
            show(&state, s, None, error, String::new(), String::new()).await
        }
        Err(e) => page::error(s.chrome, &e, &s.request_id),
    }
}

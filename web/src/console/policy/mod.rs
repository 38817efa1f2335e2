//! `/console/policy`: every `PolicyInput` field in one form, with the API's own validation
//! messages beside the field they name. Switching enforcement on first shows how many users it
//! affects and when their grace period ends, and asks again.

mod form;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{Duration, Utc};
use serde::Deserialize;
use twofold_domain::policy::Method;
use twofold_services::roles::{require, ADMIN, ADMIN_AUDITOR};
use twofold_services::ServiceError;

use self::form::{field_of, PolicyForm, METHODS, NUMBER_FIELDS};
use super::SignedIn;
use crate::page::{self, Chrome};
use crate::WebState;

#[derive(Template)]
#[template(path = "console/policy.html")]
struct PolicyPage {
    chrome: Chrome,
    form: PolicyForm,
    can_edit: bool,
    csrf: String,
    saved: bool,
    /// The refusal and the field it names (`None`: shown above the form).
    error: Option<(String, Option<&'static str>)>,
    methods: [Method; 5],
    number_fields: [&'static str; 8],
}

impl PolicyPage {
    /// The message for `field`, when the refusal names it.
    fn error_for(&self, field: &str) -> Option<&str> {
        match &self.error {
            Some((message, Some(f))) if *f == field => Some(message),
            _ => None,
        }
    }

    /// The field's id in the page (`webAuthn.rpId` → `webAuthn-rpId`).
    fn id(&self, field: &str) -> String {
        field.replace('.', "-")
    }

    fn label(&self, field: &str) -> String {
        self.chrome.t(&format!("console-policy-{}", self.id(field)))
    }

    fn hint(&self, field: &str) -> String {
        self.chrome.t(&format!("console-policy-{field}-hint"))
    }

    fn method_label(&self, method: &Method) -> String {
        self.chrome
            .t(&format!("console-method-{}", method.as_str()))
    }

    /// (field, value) of the text fields about users.
    fn user_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("allowedCallingCodes", self.form.calling_codes.clone()),
            ("defaultLocale", self.form.default_locale.clone()),
            ("webOrigin", self.form.web_origin.clone()),
        ]
    }

    fn rp_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("webAuthn.rpId", self.form.rp_id.clone()),
            ("webAuthn.rpName", self.form.rp_name.clone()),
        ]
    }

    fn algorithms(&self) -> Vec<String> {
        ["SHA1", "SHA256", "SHA512"].map(String::from).to_vec()
    }

    fn verifications(&self) -> Vec<String> {
        ["PREFERRED", "REQUIRED"].map(String::from).to_vec()
    }
}

#[derive(Template)]
#[template(path = "console/policy_confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    csrf: String,
    /// The submitted fields, sent again on confirmation.
    fields: Vec<(String, String)>,
    body: String,
}

#[derive(Deserialize)]
pub(crate) struct Saved {
    #[serde(default)]
    saved: Option<String>,
}

pub(crate) async fn page(
    State(state): State<WebState>,
    s: SignedIn,
    Query(q): Query<Saved>,
) -> Response {
    if let Err(e) = require(&s.session.key, ADMIN_AUDITOR) {
        return page::error(s.chrome, &e, &s.request_id);
    }
    let tenant = match state.tenants.tenant(s.call.tenant()).await {
        Ok(t) => t,
        Err(e) => return page::error(s.chrome, &e, &s.request_id),
    };
    show(s, PolicyForm::of(&tenant.policy), None, q.saved.is_some())
}

fn show(
    s: SignedIn,
    form: PolicyForm,
    error: Option<(String, Option<&'static str>)>,
    saved: bool,
) -> Response {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page::html(
        status,
        &PolicyPage {
            can_edit: require(&s.session.key, ADMIN).is_ok(),
            csrf: s.session.csrf.clone(),
            chrome: s.chrome,
            form,
            saved,
            error,
            methods: METHODS,
            number_fields: NUMBER_FIELDS,
        },
    )
}

pub(crate) async fn submit(
    State(state): State<WebState>,
    s: SignedIn,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = require(&s.session.key, ADMIN) {
        return page::error(s.chrome, &e, &s.request_id);
    }
    let given = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map_or("", |(_, v)| v.as_str());
    if let Some(refused) = s.refuse_csrf(given) {
        return refused;
    }
    let form = PolicyForm::submitted(&pairs);
    let change = match form.change() {
        Ok(c) => c,
        Err(message) => {
            let field = field_of(&message);
            return show(s, form, Some((message, field)), false);
        }
    };
    // The operator's bounds on a key's rate, as `setPolicy` checks them.
    if let Some(limits) = &state.rate_limits {
        let rate = change
            .requests_per_second_per_key
            .map(|r| i32::try_from(r).unwrap_or(i32::MAX));
        if let Err(e) = limits.check_policy_rate(rate) {
            let field = field_of(&e.message);
            return show(s, form, Some((e.message, field)), false);
        }
    }
    let confirmed = pairs.iter().any(|(k, v)| k == "confirmed" && v == "yes");
    if form.enforce_two_factor && !confirmed {
        match confirmation(&state, &s, &form, &pairs).await {
            Ok(Some(page)) => return page,
            Ok(None) => {}
            Err(e) => return page::error(s.chrome, &e, &s.request_id),
        }
    }
    match state.tenants.set_policy(&s.call, change).await {
        Ok(_) => Redirect::to("/console/policy?saved=1").into_response(),
        Err(ServiceError::InvalidInput(message)) => {
            let field = field_of(&message);
            show(s, form, Some((message, field)), false)
        }
        Err(e) => page::error(s.chrome, &e, &s.request_id),
    }
}

/// The confirmation page when the form switches enforcement on (nothing when it is on
/// already).
async fn confirmation(
    state: &WebState,
    s: &SignedIn,
    form: &PolicyForm,
    pairs: &[(String, String)],
) -> Result<Option<Response>, ServiceError> {
    let report = state.compliance.report(s.call.tenant(), 1, None).await?;
    if report.enforced {
        return Ok(None);
    }
    let days: i64 = form
        .number("enrollmentGracePeriodDays")
        .trim()
        .parse()
        .unwrap_or(0);
    let ends = (Utc::now() + Duration::days(days)).format("%Y-%m-%d %H:%M UTC");
    let affected = report.total_users.saturating_sub(report.enrolled_users);
    let texts = s.chrome.texts;
    let body = texts.with(
        "console-policy-confirm-body",
        &[
            ("users", &affected.to_string()),
            ("ends", &ends.to_string()),
        ],
    );
    Ok(Some(page::html(
        StatusCode::OK,
        &ConfirmPage {
            chrome: s.chrome.clone(),
            csrf: s.session.csrf.clone(),
            fields: pairs
                .iter()
                .filter(|(k, _)| k != "csrf" && k != "confirmed")
                .cloned()
                .collect(),
            body,
        },
    )))
}

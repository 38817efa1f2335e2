//! Enrolling a first factor: the choice among the methods the policy allows, then the
//! authenticator app's QR code and key, its confirmation with a code, and the recovery codes.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use twofold_domain::hosted::Purpose;
use twofold_domain::Method;

use super::codes::CodesPage;
use super::visit::Visit;
use super::{internal, not_this_flow, problem, CsrfForm, Frame};
use crate::{page, WebState};

/// A method the user may set up here.
pub(crate) struct Choice {
    pub(crate) method: &'static str,
    pub(crate) label: String,
    pub(crate) hint: String,
}

#[derive(Template)]
#[template(path = "hosted/enroll.html")]
struct EnrollPage {
    frame: Frame,
    choices: Vec<Choice>,
    /// The user already has a factor: adding one is the settings' business (with proof).
    enrolled: bool,
    /// Not shown to an enrolled user: the refusal of a stale page's choice is the API's
    /// demand for proof, and the page already says why there is nothing to set up.
    error: Option<String>,
}

/// The methods to choose from: the authenticator app, and passkeys where the tenant's relying
/// party admits the pages' origin ([`super::passkey`]); email and SMS follow.
pub(crate) async fn show(state: &WebState, visit: &Visit, error: Option<String>) -> Response {
    let status = match state.users.status(visit.call.tenant(), visit.user()).await {
        Ok(status) => status,
        Err(e) => return internal(visit.texts, &e),
    };
    let t = visit.texts;
    let policy = &visit.session.policy;
    let choices = [Method::WebAuthn, Method::Totp]
        .into_iter()
        .filter(|m| match m {
            Method::WebAuthn => state.hosted.offers_passkeys(policy),
            m => policy.allows(*m),
        })
        .map(|m| Choice {
            method: m.as_str(),
            label: t.t(&format!("hosted-method-{}", m.as_str())),
            hint: t.t(&format!("hosted-method-{}-hint", m.as_str())),
        })
        .collect();
    let status_code = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page::html(
        status_code,
        &EnrollPage {
            frame: Frame::of(visit),
            choices,
            enrolled: status.is_some_and(|s| s.enabled),
            error,
        },
    )
}

#[derive(Template)]
#[template(path = "hosted/totp.html")]
struct TotpPage {
    frame: Frame,
    qr: String,
    /// The key as typed, for the copy button.
    key: String,
    error: Option<String>,
}

impl TotpPage {
    /// The key in groups of four, as authenticator apps accept it typed.
    fn grouped(&self) -> String {
        self.key
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub(crate) fn enroll_only(visit: &Visit) -> Option<Response> {
    (visit.session.link.purpose != Purpose::Enroll).then(|| not_this_flow(visit.texts))
}

/// A fresh secret: its QR code and key.
pub(crate) async fn start_totp(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf).or_else(|| enroll_only(&visit)) {
        return page;
    }
    let page = match state
        .users
        .start_totp_enrollment(&visit.call, visit.user(), None)
        .await
    {
        Ok(enrollment) => page::html(
            StatusCode::OK,
            &TotpPage {
                frame: Frame::of(&visit),
                qr: enrollment.provisioning.qr_png_data_uri.clone(),
                key: enrollment.provisioning.secret_base32.clone(),
                error: None,
            },
        ),
        Err(e) => match problem(visit.texts, &e) {
            Ok(message) => show(&state, &visit, Some(message)).await,
            Err(page) => *page,
        },
    };
    visit.allow_return(page)
}

/// The code from the app. Only the code: the secret checked is the one sealed at the start,
/// and the QR image is too large to send back (a form is at most 16 KiB).
#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

pub(crate) async fn confirm_totp(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf).or_else(|| enroll_only(&visit)) {
        return page;
    }
    let page = match state
        .users
        .confirm_totp_enrollment(&visit.call, visit.user(), form.code.trim(), None)
        .await
    {
        Ok(codes) if codes.0.is_empty() => show(&state, &visit, None).await,
        Ok(codes) => CodesPage::after_enrollment(&visit, codes).render(),
        Err(e) => match problem(visit.texts, &e) {
            // The app holds the key already; a new one is a button away (the page offers it).
            Ok(message) => page::html(
                StatusCode::UNPROCESSABLE_ENTITY,
                &TotpPage {
                    frame: Frame::of(&visit),
                    qr: String::new(),
                    key: String::new(),
                    error: Some(message),
                },
            ),
            Err(page) => *page,
        },
    };
    visit.allow_return(page)
}

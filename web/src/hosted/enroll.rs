//! Enrolling a first factor: the choice among the methods the policy allows (each method's pages
//! are in its own module: [`super::totp`], [`super::channels`]).

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use twofold_domain::hosted::Purpose;
use twofold_domain::Method;

use super::visit::Visit;
use super::{internal, Frame};
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

/// The methods to choose from: those the policy allows that the pages can set up (passkeys
/// where the tenant's relying party admits the pages' origin, [`super::passkey`]).
pub(crate) async fn show(state: &WebState, visit: &Visit, error: Option<String>) -> Response {
    let status = match state.users.status(visit.call.tenant(), visit.user()).await {
        Ok(status) => status,
        Err(e) => return internal(visit.texts, &e),
    };
    let t = visit.texts;
    let policy = &visit.session.policy;
    let choices = [Method::WebAuthn, Method::Totp, Method::Email, Method::Sms]
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

/// The page for a form of the enrollment posted in another flow.
pub(crate) fn enroll_only(visit: &Visit) -> Option<Response> {
    (visit.session.link.purpose != Purpose::Enroll).then(|| super::not_this_flow(visit.texts))
}

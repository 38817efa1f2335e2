//! Signing in: a code from the user's authenticator app or one of their recovery codes, and
//! "trust this browser" where the policy allows it (the device token reaches the tenant with the
//! result, never the page).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use twofold_domain::hosted::Purpose;
use twofold_domain::Method;
use twofold_services::hosted::Ending;
use twofold_services::users::{ProofInput, VerifyInput};

use super::visit::Visit;
use super::{end, internal, not_this_flow, problem, Frame};
use crate::{page, WebState};

#[derive(Template)]
#[template(path = "hosted/verify.html")]
struct VerifyPage {
    frame: Frame,
    /// The user has no factor to sign in with.
    nothing: bool,
    totp: bool,
    recovery_codes: u32,
    /// Days a trusted browser is remembered; 0: not allowed.
    trust_days: u16,
    /// The recovery code form was the one refused.
    recovery_open: bool,
    error: Option<String>,
}

impl VerifyPage {
    fn trust_label(&self) -> String {
        self.frame.texts.with(
            "hosted-trust-browser",
            &[("days", &self.trust_days.to_string())],
        )
    }
}

pub(crate) async fn show(state: &WebState, visit: &Visit, error: Option<Refusal>) -> Response {
    let status = match state.users.status(visit.call.tenant(), visit.user()).await {
        Ok(status) => status.filter(|s| s.enabled),
        Err(e) => return internal(visit.texts, &e),
    };
    let (totp, recovery_codes) = status
        .as_ref()
        .map(|s| {
            (
                s.methods.contains(&Method::Totp),
                s.recovery_codes_remaining,
            )
        })
        .unwrap_or_default();
    let status_code = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page::html(
        status_code,
        &VerifyPage {
            frame: Frame::of(visit),
            nothing: status.is_none(),
            totp,
            recovery_codes,
            trust_days: visit.session.policy.trusted_device_days,
            recovery_open: error.as_ref().is_some_and(|e| e.recovery),
            error: error.map(|e| e.message),
        },
    )
}

/// A refused code, and which form it came from.
pub(crate) struct Refusal {
    message: String,
    recovery: bool,
}

#[derive(Deserialize)]
pub(crate) struct CheckForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    trust: String,
}

pub(crate) async fn check(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<CheckForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf) {
        return page;
    }
    if visit.session.link.purpose != Purpose::Verify {
        return not_this_flow(visit.texts);
    }
    let method = match Method::parse(&form.method) {
        Some(m @ (Method::Totp | Method::RecoveryCode)) => m,
        _ => return not_this_flow(visit.texts),
    };
    if let Err(e) = state.hosted.still_returns(&visit.session).await {
        return super::refused(visit.texts, &e);
    }
    let input = VerifyInput {
        factor: ProofInput {
            method,
            code: form.code.trim().to_owned(),
            challenge_id: None,
        },
        trust_device: form.trust == "on" && visit.session.policy.trusted_device_days > 0,
        device_label: None,
    };
    let page = match state.users.verify(&visit.call, visit.user(), input).await {
        Ok(verified) => {
            let ending = Ending {
                completed: true,
                method: Some(verified.method),
                device_token: verified.device_token,
            };
            end(&state, &visit, ending).await
        }
        Err(e) => match problem(visit.texts, &e) {
            Ok(message) => {
                let refusal = Refusal {
                    message,
                    recovery: method == Method::RecoveryCode,
                };
                show(&state, &visit, Some(refusal)).await
            }
            Err(page) => *page,
        },
    };
    visit.allow_return(page)
}

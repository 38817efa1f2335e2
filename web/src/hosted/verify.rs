//! Signing in: a passkey (where the pages offer passkeys, see [`super::passkey`]), a code from
//! the user's authenticator app, by email or SMS, or one of their recovery codes, and
//! "trust this browser" where the policy allows it (the device token reaches the tenant with the
//! result, never the page).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use twofold_domain::channel::Channel;
use twofold_domain::hosted::Purpose;
use twofold_domain::Method;
use twofold_services::hosted::Ending;
use twofold_services::users::{ProofInput, UserStatus, VerifyInput, WebAuthnChallengeView};
use twofold_services::ServiceError;

use super::channels::{shown_again, CodePage, RESEND_AFTER_SECONDS};
use super::passkey::{self, BrowserErrors};
use super::visit::Visit;
use super::{end, internal, not_this_flow, problem, Frame};
use crate::{page, WebState};

#[derive(Template)]
#[template(path = "hosted/verify.html")]
struct VerifyPage {
    frame: Frame,
    /// The user has no factor to sign in with.
    nothing: bool,
    /// A sign-in ceremony for the user's passkeys, started with the page.
    passkey: Option<WebAuthnChallengeView>,
    errors: BrowserErrors,
    totp: bool,
    recovery_codes: u32,
    /// Days a trusted browser is remembered; 0: not allowed.
    trust_days: u16,
    /// `(method, label)` of each confirmed address or number a code can be sent to.
    channels: Vec<(&'static str, String)>,
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
    let passkey = match start_passkey(state, visit, status.as_ref()).await {
        Ok(passkey) => passkey,
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
    let t = visit.texts;
    let mut channels = Vec::new();
    if let Some(s) = &status {
        for (channel, contact) in [(Channel::Email, &s.email), (Channel::Sms, &s.phone)] {
            let method = channel.method();
            if let Some((masked, true)) = contact {
                if s.methods.contains(&method) && visit.session.policy.allows(method) {
                    let label = t.with(
                        &format!("hosted-verify-send-{}", method.as_str()),
                        &[("to", masked)],
                    );
                    channels.push((method.as_str(), label));
                }
            }
        }
    }
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
            passkey,
            errors: BrowserErrors::of(visit.texts),
            totp,
            recovery_codes,
            channels,
            trust_days: visit.session.policy.trusted_device_days,
            recovery_open: error.as_ref().is_some_and(|e| e.recovery),
            error: error.map(|e| e.message),
        },
    )
}

/// The ceremony the page's passkey button answers, when the user has a passkey the pages can
/// use. Started with the page (the button runs the browser's part at once, as a click must for
/// some browsers); a refusal (the policy changed, the user is locked out) only leaves the
/// button out: the other forms say what is wrong when used.
async fn start_passkey(
    state: &WebState,
    visit: &Visit,
    status: Option<&UserStatus>,
) -> Result<Option<WebAuthnChallengeView>, ServiceError> {
    let has_passkey = status.is_some_and(|s| s.methods.contains(&Method::WebAuthn));
    if !has_passkey || !state.hosted.offers_passkeys(&visit.session.policy) {
        return Ok(None);
    }
    match state
        .users
        .start_webauthn_authentication(&visit.call, visit.user())
        .await
    {
        Ok(view) => Ok(Some(view)),
        Err(e @ ServiceError::Internal(_)) => Err(e),
        Err(e) => {
            tracing::debug!(error = %e, "no passkey ceremony on the sign-in page");
            Ok(None)
        }
    }
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
    /// The passkey ceremony a WEBAUTHN assertion answers.
    #[serde(default)]
    challenge_id: String,
    /// For EMAIL and SMS: the challenge the code was sent with, and where (to show again).
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    sent_to: String,
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
        Some(m @ (Method::Totp | Method::RecoveryCode | Method::Email | Method::Sms)) => m,
        Some(Method::WebAuthn) if state.hosted.offers_passkeys(&visit.session.policy) => {
            Method::WebAuthn
        }
        _ => return not_this_flow(visit.texts),
    };
    let channel = match method {
        Method::Email => Some(Channel::Email),
        Method::Sms => Some(Channel::Sms),
        _ => None,
    };
    if let Err(e) = state.hosted.still_returns(&visit.session).await {
        return match e {
            ServiceError::Forbidden(_) => super::ended(
                visit.texts,
                axum::http::StatusCode::FORBIDDEN,
                "hosted-error-title",
                visit.texts.t("hosted-return-gone"),
            ),
            other => super::refused(visit.texts, &other),
        };
    }
    let input = VerifyInput {
        factor: ProofInput {
            method,
            code: form.code.trim().to_owned(),
            challenge_id: match method {
                Method::WebAuthn => Some(form.challenge_id.trim().to_owned()),
                _ => channel.map(|_| form.challenge.trim().to_owned()),
            },
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
        Err(e) => match if method == Method::WebAuthn {
            passkey::problem(visit.texts, &e)
        } else {
            problem(visit.texts, &e)
        } {
            Ok(message) if channel.is_some() => {
                let mut page = code_page(&visit, method, &form.challenge, &form.sent_to);
                page.resend_at = 0;
                page.error = Some(message);
                page.render()
            }
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

/// The sign-in's code page for a code sent by `method`.
fn code_page(visit: &Visit, method: Method, challenge: &str, sent_to: &str) -> CodePage {
    CodePage {
        frame: Frame::of(visit),
        method: method.as_str(),
        challenge: challenge.to_owned(),
        sent_to: shown_again(sent_to),
        action: "/hosted/verify",
        resend_action: "/hosted/verify/send",
        resend_fields: vec![("channel", method.as_str().to_owned())],
        trust_days: visit.session.policy.trusted_device_days,
        resend_at: chrono::Utc::now().timestamp() + RESEND_AFTER_SECONDS,
        error: None,
    }
}

#[derive(Deserialize)]
pub(crate) struct SendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    channel: String,
}

/// Sends a sign-in code by email or SMS: the page to type it.
pub(crate) async fn send(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<SendForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf) {
        return page;
    }
    if visit.session.link.purpose != Purpose::Verify {
        return not_this_flow(visit.texts);
    }
    let channel = match form.channel.as_str() {
        "EMAIL" => Channel::Email,
        "SMS" => Channel::Sms,
        _ => return not_this_flow(visit.texts),
    };
    if let Err(message) = visit.may_send(&state) {
        let refusal = Refusal {
            message,
            recovery: false,
        };
        let page = show(&state, &visit, Some(refusal)).await;
        return visit.allow_return(page);
    }
    let page = match state
        .users
        .send_code(
            &visit.call,
            visit.user(),
            Some(channel),
            None,
            Some(visit.texts.lang()),
        )
        .await
    {
        Ok(challenge) => {
            code_page(&visit, channel.method(), &challenge.id, &challenge.sent_to).render()
        }
        Err(e) => match problem(visit.texts, &e) {
            Ok(message) => {
                let refusal = Refusal {
                    message,
                    recovery: false,
                };
                show(&state, &visit, Some(refusal)).await
            }
            Err(page) => *page,
        },
    };
    visit.allow_return(page)
}

//! The user's settings: their factors, adding an authenticator app, new recovery codes, removing
//! a factor and turning 2FA off, each with proof of a current factor (the API's rule,
//! [`super::proof`]), and the reason when the organisation's policy forbids turning it off.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use twofold_domain::hosted::Purpose;
use twofold_domain::Method;
use twofold_services::ErrorCode;

use super::codes::CodesPage;
use super::proof::{self, Proofs, Sent};
use super::visit::Visit;
use super::{internal, not_this_flow, problem, Frame};
use crate::{page, WebState};

/// A factor as the list shows it.
struct Factor {
    method: &'static str,
    label: String,
    /// The masked address or number, or the passkey's name.
    detail: String,
    /// Removable here (with proof).
    removable: bool,
}

#[derive(Template)]
#[template(path = "hosted/manage.html")]
struct ManagePage {
    frame: Frame,
    factors: Vec<Factor>,
    recovery_codes: u32,
    proofs: Proofs,
    /// `(channel, label)`: where a proof code can be sent.
    senders: Vec<(&'static str, String)>,
    /// An authenticator app can be added (allowed, and the user has none).
    can_add_totp: bool,
    enforced: bool,
    notice: Option<String>,
    error: Option<String>,
}

/// What the settings page says beside the factors.
#[derive(Default)]
pub(crate) struct Said {
    pub(crate) notice: Option<String>,
    pub(crate) error: Option<String>,
    /// A proof code was just sent.
    pub(crate) sent: Option<Sent>,
}

pub(crate) async fn show(state: &WebState, visit: &Visit, said: Said) -> Response {
    let status = match state.users.status(visit.call.tenant(), visit.user()).await {
        Ok(status) => status.filter(|s| s.enabled),
        Err(e) => return internal(visit.texts, &e),
    };
    let t = visit.texts;
    let label = |m: Method| t.t(&format!("hosted-method-{}", m.as_str()));
    let mut factors = Vec::new();
    let (mut proofs, mut senders, mut recovery_codes) = (Proofs::default(), Vec::new(), 0);
    let mut can_add_totp = false;
    if let Some(s) = &status {
        recovery_codes = s.recovery_codes_remaining;
        for method in &s.methods {
            let detail = match method {
                Method::Email => s.email.as_ref().map(|e| e.0.clone()),
                Method::Sms => s.phone.as_ref().map(|p| p.0.clone()),
                _ => None,
            };
            match method {
                Method::RecoveryCode => continue,
                Method::WebAuthn => {
                    for credential in &s.webauthn_credentials {
                        factors.push(Factor {
                            method: method.as_str(),
                            label: label(*method),
                            detail: credential.label.clone().unwrap_or_default(),
                            removable: false,
                        });
                    }
                }
                _ => factors.push(Factor {
                    method: method.as_str(),
                    label: label(*method),
                    detail: detail.unwrap_or_default(),
                    removable: true,
                }),
            }
        }
        proofs = Proofs::of(t, s, said.sent.as_ref());
        senders = proof::senders(t, s);
        can_add_totp =
            !s.methods.contains(&Method::Totp) && visit.session.policy.allows(Method::Totp);
    }
    let status_code = if said.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page::html(
        status_code,
        &ManagePage {
            // The settings end with "back to" the organisation, which is the cancel.
            frame: Frame {
                cancellable: false,
                ..Frame::of(visit)
            },
            factors,
            recovery_codes,
            proofs,
            senders,
            can_add_totp,
            enforced: visit.session.policy.enforce_two_factor,
            notice: said.notice,
            error: said.error,
        },
    )
}

/// One change: which button was pressed, and the code proving a current factor.
#[derive(Deserialize)]
pub(crate) struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    proof: String,
    #[serde(default)]
    code: String,
    /// With a code sent by email or SMS: its challenge.
    #[serde(default)]
    challenge: String,
}

enum Action {
    Regenerate,
    Remove(Method),
    Disable,
}

impl Action {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "regenerate" => Some(Self::Regenerate),
            "disable" => Some(Self::Disable),
            other => match Method::parse(other.strip_prefix("remove-")?)? {
                m @ (Method::Totp | Method::Email | Method::Sms) => Some(Self::Remove(m)),
                _ => None,
            },
        }
    }
}

pub(crate) async fn change(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<ChangeForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf) {
        return page;
    }
    if visit.session.link.purpose != Purpose::Manage {
        return not_this_flow(visit.texts);
    }
    let (Some(action), Some(proof)) = (
        Action::parse(&form.action),
        proof::input(&form.proof, &form.code, &form.challenge),
    ) else {
        return not_this_flow(visit.texts);
    };
    let users = &state.users;
    let (call, user, t) = (&visit.call, visit.user(), visit.texts);
    let done = match action {
        Action::Regenerate => match users.regenerate_recovery_codes(call, user, &proof).await {
            Ok(codes) => return visit.allow_return(CodesPage::regenerated(&visit, codes).render()),
            Err(e) => Err(e),
        },
        Action::Remove(m) => users
            .remove_factor(call, user, m, &proof)
            .await
            .map(|_| t.t("hosted-factor-removed")),
        Action::Disable => users
            .disable(call, user, &proof)
            .await
            .map(|_| t.t("hosted-disabled")),
    };
    let said = match done {
        Ok(notice) => Said {
            notice: Some(notice),
            ..Said::default()
        },
        // The organisation requires 2FA: said in the user's words, not the API's.
        Err(e)
            if e.code() == ErrorCode::PolicyViolation
                && visit.session.policy.enforce_two_factor =>
        {
            Said {
                error: Some(t.t("hosted-disable-enforced")),
                ..Said::default()
            }
        }
        Err(e) => match problem(t, &e) {
            Ok(message) => Said {
                error: Some(message),
                ..Said::default()
            },
            Err(page) => return *page,
        },
    };
    let page = show(&state, &visit, said).await;
    visit.allow_return(page)
}

impl ManagePage {
    fn remaining(&self) -> String {
        self.frame.texts.with(
            "hosted-manage-remaining",
            &[("count", &self.recovery_codes.to_string())],
        )
    }

    fn remove_label(&self, factor: &str) -> String {
        self.frame
            .texts
            .with("hosted-manage-remove", &[("factor", factor)])
    }

    fn back_label(&self) -> String {
        self.frame
            .texts
            .with("hosted-back", &[("tenant", &self.frame.tenant)])
    }
}

//! The authenticator app's pages: a fresh secret shown as a QR code and as a key in groups of
//! four, then its confirmation with a code from the app. At enrollment that brings the recovery
//! codes; in the settings it adds the app beside another factor, with proof of that factor.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use twofold_domain::hosted::Purpose;
use twofold_domain::Method;
use twofold_services::users::{ProofInput, UserStatus};

use super::codes::CodesPage;
use super::manage::{self, Said};
use super::proof::{self, Proofs};
use super::visit::Visit;
use super::{enroll, internal, not_this_flow, problem, Frame};
use crate::{page, WebState};

#[derive(Template)]
#[template(path = "hosted/totp.html")]
struct TotpPage {
    frame: Frame,
    qr: String,
    /// The key as typed, for the copy button.
    key: String,
    /// In the settings: what the user may prove a current factor with. Empty at enrollment.
    proofs: Proofs,
    /// Where "show a new QR code" goes.
    restart: &'static str,
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

/// The proof fields the forms carry in the settings: the method chosen and, for a code sent by
/// email or SMS, its challenge.
#[derive(Deserialize)]
pub(crate) struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    proof: String,
    #[serde(default)]
    challenge: String,
}

/// Whether this visit may set up an app: an enrollment of a user without 2FA, or the settings of
/// one without an app. `Err` with the page to answer otherwise.
async fn allowed(state: &WebState, visit: &Visit) -> Result<Option<UserStatus>, Response> {
    let status = state
        .users
        .status(visit.call.tenant(), visit.user())
        .await
        .map_err(|e| internal(visit.texts, &e))?
        .filter(|s| s.enabled);
    match (visit.session.link.purpose, &status) {
        (Purpose::Enroll, None) => Ok(None),
        (Purpose::Manage, Some(s)) if !s.methods.contains(&Method::Totp) => Ok(status),
        // Enrolling again over 2FA needs proof: the settings ask for it.
        (Purpose::Enroll, Some(_)) => Err(enroll::show(state, visit, None).await),
        _ => Err(not_this_flow(visit.texts)),
    }
}

/// The proof choices of the settings' app page: the code already sent, else the user's own.
fn proofs_for(visit: &Visit, status: Option<&UserStatus>, proof: &str, challenge: &str) -> Proofs {
    let Some(status) = status else {
        return Proofs::default();
    };
    match Method::parse(proof) {
        Some(m @ (Method::Email | Method::Sms)) if !challenge.is_empty() => Proofs {
            choices: vec![(
                m.as_str(),
                visit.texts.t(&format!("hosted-method-{}", m.as_str())),
            )],
            challenge: challenge.to_owned(),
        },
        _ => Proofs::of(visit.texts, status, None),
    }
}

fn restart_of(visit: &Visit) -> &'static str {
    match visit.session.link.purpose {
        Purpose::Manage => "/hosted/manage/add-totp",
        _ => "/hosted/enroll/totp",
    }
}

/// A fresh secret: its QR code and key.
pub(crate) async fn start_totp(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<StartForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf) {
        return page;
    }
    let status = match allowed(&state, &visit).await {
        Ok(status) => status,
        Err(page) => return visit.allow_return(page),
    };
    let page = match state
        .users
        .start_totp_enrollment(&visit.call, visit.user(), None)
        .await
        .and_then(|enrollment| Ok((enrollment.pictures.png()?, enrollment)))
    {
        Ok((qr, enrollment)) => page::html(
            StatusCode::OK,
            &TotpPage {
                frame: Frame::of(&visit),
                qr,
                key: enrollment.provisioning.secret_base32.clone(),
                proofs: proofs_for(&visit, status.as_ref(), &form.proof, &form.challenge),
                restart: restart_of(&visit),
                error: None,
            },
        ),
        Err(e) => match problem(visit.texts, &e) {
            Ok(message) => enroll::show(&state, &visit, Some(message)).await,
            Err(page) => *page,
        },
    };
    visit.allow_return(page)
}

/// The code from the app (and in the settings, the proof). Only codes: the secret checked is the
/// one sealed at the start, and the QR image is too large to send back (a form is at most
/// 16 KiB).
#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    proof: String,
    #[serde(default)]
    proof_code: String,
    #[serde(default)]
    challenge: String,
}

pub(crate) async fn confirm_totp(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf) {
        return page;
    }
    let status = match allowed(&state, &visit).await {
        Ok(status) => status,
        Err(page) => return visit.allow_return(page),
    };
    let change: Option<ProofInput> = match status {
        Some(_) => match proof::input(&form.proof, &form.proof_code, &form.challenge) {
            Some(p) => Some(p),
            None => return not_this_flow(visit.texts),
        },
        None => None,
    };
    let page = match state
        .users
        .confirm_totp_enrollment(&visit.call, visit.user(), form.code.trim(), change.as_ref())
        .await
    {
        Ok(codes) if codes.0.is_empty() => match visit.session.link.purpose {
            Purpose::Manage => {
                let said = Said {
                    notice: Some(visit.texts.t("hosted-factor-added")),
                    ..Said::default()
                };
                manage::show(&state, &visit, said).await
            }
            _ => enroll::show(&state, &visit, None).await,
        },
        Ok(codes) => CodesPage::after_enrollment(&state, &visit, Method::Totp, codes).render(),
        Err(e) => match problem(visit.texts, &e) {
            // The app holds the key already; a new one is a button away (the page offers it).
            Ok(message) => page::html(
                StatusCode::UNPROCESSABLE_ENTITY,
                &TotpPage {
                    frame: Frame::of(&visit),
                    qr: String::new(),
                    key: String::new(),
                    proofs: proofs_for(&visit, status.as_ref(), &form.proof, &form.challenge),
                    restart: restart_of(&visit),
                    error: Some(message),
                },
            ),
            Err(page) => *page,
        },
    };
    visit.allow_return(page)
}

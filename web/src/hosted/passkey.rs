//! Passkeys and security keys on the pages (decision 153): registering one as the user's first
//! factor, and the words for a refused ceremony. The ceremonies run in the browser
//! (`assets/passkey.js`), which posts their JSON back through ordinary forms; a sign-in's
//! assertion is checked by [`super::verify::check`] as any factor is. The pages offer passkeys
//! only where the tenant's relying party admits the pages' own origin: a browser refuses a
//! ceremony for an `rpId` the page is not under.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use twofold_services::{ErrorCode, ServiceError};

use super::codes::CodesPage;
use super::enroll::{self, enroll_only};
use super::texts::HostedTexts;
use super::visit::Visit;
use super::{not_this_flow, CsrfForm, Frame};
use crate::{page, WebState};

/// Longest display name the API takes; authenticators show it beside the tenant's name.
const DISPLAY_NAME_CHARS: usize = 64;

/// The texts the script shows when the browser's ceremony fails, before anything is posted.
pub(crate) struct BrowserErrors {
    pub(crate) unsupported: String,
    pub(crate) cancelled: String,
    pub(crate) wrong_site: String,
    pub(crate) exists: String,
    pub(crate) failed: String,
}

impl BrowserErrors {
    pub(crate) fn of(texts: HostedTexts) -> Self {
        Self {
            unsupported: texts.t("hosted-passkey-unsupported"),
            cancelled: texts.t("hosted-passkey-cancelled"),
            wrong_site: texts.t("hosted-passkey-wrong-site"),
            exists: texts.t("hosted-passkey-exists"),
            failed: texts.t("hosted-passkey-failed"),
        }
    }
}

#[derive(Template)]
#[template(path = "hosted/passkey.html")]
struct PasskeyPage {
    frame: Frame,
    challenge_id: String,
    /// `PublicKeyCredentialCreationOptions` as JSON, for the script.
    options: String,
    errors: BrowserErrors,
}

impl PasskeyPage {
    fn intro(&self) -> String {
        self.frame
            .texts
            .with("hosted-passkey-intro", &[("tenant", &self.frame.tenant)])
    }
}

/// A forged post: the pages offer passkeys only where the browser can use them.
fn not_offered(state: &WebState, visit: &Visit) -> Option<Response> {
    (!state.hosted.offers_passkeys(&visit.session.policy)).then(|| not_this_flow(visit.texts))
}

/// Starts a registration: the page whose script asks the browser for a new credential.
pub(crate) async fn start_registration(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(page) = visit
        .refuse(&form.csrf)
        .or_else(|| enroll_only(&visit))
        .or_else(|| not_offered(&state, &visit))
    {
        return page;
    }
    // The tenant's id for the user is all the pages know of them.
    let display_name: String = visit
        .user()
        .chars()
        .filter(|c| !c.is_control())
        .take(DISPLAY_NAME_CHARS)
        .collect();
    let page = match state
        .users
        .start_webauthn_registration(&visit.call, visit.user(), &display_name, None)
        .await
    {
        Ok(view) => page::html(
            StatusCode::OK,
            &PasskeyPage {
                frame: Frame::of(&visit),
                challenge_id: view.challenge_id,
                options: view.options,
                errors: BrowserErrors::of(visit.texts),
            },
        ),
        // Not an answer of the browser's refused: the policy's or the account's words.
        Err(e) => match super::problem(visit.texts, &e) {
            Ok(message) => enroll::show(&state, &visit, Some(message)).await,
            Err(page) => *page,
        },
    };
    visit.allow_return(page)
}

/// The browser's new credential, as `PublicKeyCredential.toJSON()` writes it.
#[derive(Deserialize)]
pub(crate) struct FinishForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge_id: String,
    #[serde(default)]
    credential: String,
}

/// Finishes a registration: the recovery codes when it is the first factor, as after the
/// authenticator app. A refused credential changes nothing and leads back to the choice, whose
/// button starts a new ceremony (each challenge answers once).
pub(crate) async fn finish_registration(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<FinishForm>,
) -> Response {
    if let Some(page) = visit
        .refuse(&form.csrf)
        .or_else(|| enroll_only(&visit))
        .or_else(|| not_offered(&state, &visit))
    {
        return page;
    }
    let page = match state
        .users
        .finish_webauthn_registration(
            &visit.call,
            visit.user(),
            form.challenge_id.trim(),
            &form.credential,
            None,
        )
        .await
    {
        Ok(codes) if codes.0.is_empty() => enroll::show(&state, &visit, None).await,
        Ok(codes) => {
            CodesPage::after_enrollment(&state, &visit, twofold_domain::Method::WebAuthn, codes)
                .render()
        }
        Err(e) => match problem(visit.texts, &e) {
            Ok(message) => enroll::show(&state, &visit, Some(message)).await,
            Err(page) => *page,
        },
    };
    visit.allow_return(page)
}

/// A refused ceremony in words for the user: the API's messages about a credential that does
/// not verify, an unknown challenge or a wrong assertion speak to developers.
pub(crate) fn problem(texts: HostedTexts, e: &ServiceError) -> Result<String, Box<Response>> {
    match e.code() {
        ErrorCode::InvalidInput | ErrorCode::InvalidCode | ErrorCode::NotFound => {
            Ok(texts.t("hosted-passkey-refused"))
        }
        ErrorCode::CodeExpired => Ok(texts.t("hosted-passkey-expired")),
        _ => super::problem(texts, e),
    }
}

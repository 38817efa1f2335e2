//! The hosted pages for end users (issue 19), at `/hosted`: a tenant's backend sends the user
//! here with a single-use link (`createUserSession`), and the user comes back to the tenant's
//! return URL with a one-time result code (`redeemUserSession`).
//!
//! `/hosted/start?link=` spends the link at once and gives the browser a session cookie of its
//! own, then sends it to `/hosted` so the link leaves the address bar. The cookie is
//! `SameSite=Lax`: the user arrives by a top-level navigation from the tenant's site, and a
//! `Strict` cookie set on that navigation is not sent on the redirect that follows. Every form
//! is a POST with a token derived from the session, and the same-origin check of every page
//! post applies. Every use-case runs as the link's APP key for the link's user ([`Visit`]):
//! the pages follow the API's rules because they call the same use-cases.

mod channels;
mod codes;
mod enroll;
mod manage;
mod passkey;
mod proof;
mod start;
mod texts;
mod totp;
mod verify;
mod visit;

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use twofold_domain::hosted::Purpose;
use twofold_domain::Method;
use twofold_services::hosted::Ending;
use twofold_services::{ErrorCode, ServiceError};

pub(crate) use texts::HostedTexts;
use visit::Visit;

use crate::{cookies, page, WebState};

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        // Not HEAD: a link scanner or prefetch would spend the link the user needs.
        .route(
            "/hosted/start",
            get(start::open)
                .post(start::replace)
                .head(|| async { StatusCode::METHOD_NOT_ALLOWED }),
        )
        .route("/hosted", get(show))
        .route("/hosted/cancel", post(cancel))
        .route("/hosted/done", post(done))
        .route("/hosted/enroll/totp", post(totp::start_totp))
        .route("/hosted/enroll/totp/confirm", post(totp::confirm_totp))
        .route("/hosted/enroll/email", post(channels::choose_email))
        .route("/hosted/enroll/sms", post(channels::choose_sms))
        .route("/hosted/enroll/email/send", post(channels::send_email))
        .route("/hosted/enroll/sms/send", post(channels::send_sms))
        .route("/hosted/enroll/channel/confirm", post(channels::confirm))
        .route("/hosted/enroll/webauthn", post(passkey::start_registration))
        .route(
            "/hosted/enroll/webauthn/finish",
            post(passkey::finish_registration),
        )
        .route("/hosted/verify", post(verify::check))
        .route("/hosted/verify/send", post(verify::send))
        .route("/hosted/manage", post(manage::change))
        .route("/hosted/manage/send", post(proof::send))
        .route("/hosted/manage/add-totp", post(totp::start_totp))
        .layer(axum::middleware::map_response(no_store))
}

/// A page that did not answer within `limit` (a stalled database) ends with the error page, in
/// the browser's language, and gives back what it held; the session goes on.
pub(crate) async fn time_limit(
    State(limit): State<std::time::Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let texts = HostedTexts::choose(None, request.headers());
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!("a hosted page took too long");
            ended(
                texts,
                StatusCode::SERVICE_UNAVAILABLE,
                "hosted-error-title",
                texts.t("hosted-error-internal"),
            )
        }
    }
}

/// No hosted page is kept by a cache: they show secrets once (a key, recovery codes) and belong
/// to one session.
async fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

/// What every page of a session shows around its content.
pub(crate) struct Frame {
    pub(crate) texts: HostedTexts,
    /// The organisation's name.
    pub(crate) tenant: String,
    /// The name its messages go out under, when it differs from its name.
    pub(crate) sender: Option<String>,
    pub(crate) csrf: String,
    /// Whether the page offers to cancel (not once the user has enrolled: the codes' page
    /// only goes on).
    pub(crate) cancellable: bool,
}

impl Frame {
    pub(crate) fn of(visit: &Visit) -> Self {
        let s = &visit.session;
        Self {
            texts: visit.texts,
            tenant: s.tenant_name.clone(),
            sender: (s.sender_name != s.tenant_name).then(|| s.sender_name.clone()),
            csrf: visit.csrf.clone(),
            cancellable: true,
        }
    }

    pub(crate) fn t(&self, id: &str) -> String {
        self.texts.t(id)
    }

    pub(crate) fn lang(&self) -> &'static str {
        self.texts.lang()
    }

    pub(crate) fn cancel_label(&self) -> String {
        self.texts
            .with("hosted-cancel", &[("tenant", &self.tenant)])
    }

    pub(crate) fn sender_line(&self) -> String {
        match &self.sender {
            Some(sender) => self.texts.with(
                "hosted-sender",
                &[("tenant", &self.tenant), ("sender", sender)],
            ),
            None => String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "hosted/ended.html")]
struct EndedPage {
    texts: HostedTexts,
    title: &'static str,
    message: String,
}

pub(crate) fn ended(
    texts: HostedTexts,
    status: StatusCode,
    title: &'static str,
    message: String,
) -> Response {
    page::html(
        status,
        &EndedPage {
            texts,
            title,
            message,
        },
    )
}

/// The page for a session that is gone, which also deletes its cookie. (Only then: a refused
/// form must not end a live session, or any site could sign the user out of the flow.)
pub(crate) fn session_gone(texts: HostedTexts) -> Response {
    let mut r = ended(
        texts,
        StatusCode::UNAUTHORIZED,
        "hosted-session-ended-title",
        texts.t("hosted-session-ended"),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        cookies::hosted_session("", 0, &HeaderMap::new(), false),
    );
    r
}

pub(crate) fn internal(texts: HostedTexts, e: &ServiceError) -> Response {
    tracing::error!(error = ?e, "hosted page failed");
    ended(
        texts,
        StatusCode::INTERNAL_SERVER_ERROR,
        "hosted-error-title",
        texts.t("hosted-error-internal"),
    )
}

/// A refusal the user can act on (the tenant no longer returns to the link's site).
pub(crate) fn refused(texts: HostedTexts, e: &ServiceError) -> Response {
    match e {
        ServiceError::Internal(_) => internal(texts, e),
        other => ended(
            texts,
            page::status_of(other.code()),
            "hosted-error-title",
            other.to_string(),
        ),
    }
}

/// A use-case's refusal of what the user typed, in words for the user (the API's messages
/// speak to developers); `Err` with the error page when the failure is ours.
pub(crate) fn problem(texts: HostedTexts, e: &ServiceError) -> Result<String, Box<Response>> {
    let id = match e.code() {
        ErrorCode::InvalidCode => "hosted-code-wrong",
        ErrorCode::CodeExpired => "hosted-code-expired",
        ErrorCode::LockedOut => "hosted-locked",
        ErrorCode::RateLimited => "hosted-slow-down",
        // The API's messages speak to developers ("pass `proof`..."); the user gets words.
        ErrorCode::PolicyViolation => "hosted-not-allowed",
        ErrorCode::InvalidInput | ErrorCode::Conflict => "hosted-input-refused",
        // In a flow the user and tenant exist: what is not found is the code's challenge
        // (replaced by a newer one, or too old).
        ErrorCode::NotFound => "hosted-code-stale",
        _ => return Err(Box::new(refused(texts, e))),
    };
    Ok(texts.t(id))
}

/// The page for an address that spent its budget of unknown links and cookies.
pub(crate) fn throttled(texts: HostedTexts, seconds: u64) -> Response {
    let mut r = ended(
        texts,
        StatusCode::TOO_MANY_REQUESTS,
        "hosted-error-title",
        texts.with("hosted-throttled", &[("seconds", &seconds.to_string())]),
    );
    r.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    r
}

/// A form of another flow than the link's (a forged post: the pages never show it).
pub(crate) fn not_this_flow(texts: HostedTexts) -> Response {
    ended(
        texts,
        StatusCode::FORBIDDEN,
        "hosted-error-title",
        texts.t("hosted-not-this-flow"),
    )
}

pub(crate) fn link_invalid(texts: HostedTexts) -> Response {
    ended(
        texts,
        StatusCode::NOT_FOUND,
        "hosted-link-invalid-title",
        texts.t("hosted-link-invalid"),
    )
}

/// The flow's first page.
async fn show(State(state): State<WebState>, visit: Visit) -> Response {
    let page = match visit.session.link.purpose {
        Purpose::Enroll => enroll::show(&state, &visit, None).await,
        Purpose::Verify => verify::show(&state, &visit, None).await,
        Purpose::Manage => manage::show(&state, &visit, manage::Said::default()).await,
    };
    visit.allow_return(page)
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf: String,
}

async fn cancel(
    State(state): State<WebState>,
    visit: Visit,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(page) = visit.refuse(&form.csrf) {
        return page;
    }
    end(&state, &visit, Ending::default()).await
}

#[derive(Deserialize)]
struct DoneForm {
    #[serde(default)]
    csrf: String,
    /// From the recovery codes' page after an enrollment: the method enrolled in this session,
    /// marked by the server ([`twofold_services::hosted::HostedPages::mark`]); its box must be
    /// ticked.
    #[serde(default)]
    enrolled: String,
    #[serde(default)]
    saved: String,
}

/// The end of an enrollment (the user now has a factor) or of a visit to the settings. A
/// sign-in ends only by a checked factor ([`verify::check`]).
async fn done(State(state): State<WebState>, visit: Visit, Form(form): Form<DoneForm>) -> Response {
    if let Some(page) = visit.refuse(&form.csrf) {
        return page;
    }
    let method = match visit.session.link.purpose {
        Purpose::Verify => return not_this_flow(visit.texts),
        Purpose::Manage => None,
        Purpose::Enroll => {
            let enrolled = state
                .hosted
                .marked(&visit.secret, &form.enrolled)
                .and_then(Method::parse);
            if enrolled.is_some() && form.saved != "on" {
                return ended(
                    visit.texts,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "hosted-codes-title",
                    visit.texts.t("hosted-codes-not-saved"),
                );
            }
            let status = match state.users.status(visit.call.tenant(), visit.user()).await {
                Ok(status) => status,
                Err(e) => return internal(visit.texts, &e),
            };
            if !status.is_some_and(|s| s.enabled) {
                // Nothing enrolled yet: back to the choice.
                return Redirect::to("/hosted").into_response();
            }
            // Only a method enrolled in this very session is reported: a user who had 2FA
            // before and only went on enrolled nothing, so a result of an enrollment is never
            // mistaken for a proven factor.
            enrolled
        }
    };
    let ending = Ending {
        completed: true,
        method,
        device_token: None,
    };
    end(&state, &visit, ending).await
}

/// Ends the session and sends the browser back to the tenant's site with the result code.
pub(crate) async fn end(state: &WebState, visit: &Visit, ending: Ending) -> Response {
    match state
        .hosted
        .finish(&visit.secret, &visit.session, ending)
        .await
    {
        Ok(Some(back)) => {
            let mut r = Redirect::to(&back).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                cookies::hosted_session("", 0, &HeaderMap::new(), false),
            );
            r
        }
        Ok(None) => session_gone(visit.texts),
        Err(e) => refused(visit.texts, &e),
    }
}

//! The hosted pages for end users (issue 19), at `/hosted`: a tenant's backend sends the user
//! here with a single-use link (`createUserSession`), and the user comes back to the tenant's
//! return URL with a one-time result code (`redeemUserSession`).
//!
//! `/hosted/start?link=` spends the link at once and gives the browser a session cookie of its
//! own, then sends it to `/hosted` so the link leaves the address bar. The cookie is
//! `SameSite=Lax`: the user arrives by a top-level navigation from the tenant's site, and a
//! `Strict` cookie set on that navigation is not sent on the redirect that follows. Every form
//! is a POST with a token derived from the session, and the same-origin check of every page
//! post applies.
//!
//! What is served so far: opening a link and cancelling (the user returns with
//! `completed: false`). The enrollment, sign-in and management flows are the next part of the
//! issue.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use twofold_i18n::{negotiate, Arg, Catalog, Language};
use twofold_services::hosted::{HostedSecret, HostedSession};

use crate::{cookies, page, WebState};

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/hosted/start", get(start))
        .route("/hosted", get(show))
        .route("/hosted/cancel", post(cancel))
}

/// The texts of a hosted page, in its language.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostedTexts {
    language: Language,
}

impl HostedTexts {
    /// The link's locale if it named one, else the browser's first supported language, else
    /// English.
    fn choose(session: Option<&HostedSession>, headers: &HeaderMap) -> Self {
        let chosen = session
            .and_then(|s| s.link.locale.as_ref())
            .map(|l| l.language())
            .or_else(|| {
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        v.split(',')
                            .take(32)
                            .filter_map(|part| negotiate(part.split(';').next()?.trim()))
                            .next()
                    })
            });
        Self {
            language: chosen.unwrap_or(Language::En),
        }
    }

    pub(crate) fn t(&self, id: &str) -> String {
        Catalog::get().message(self.language, id, &[])
    }

    pub(crate) fn with(&self, id: &str, args: &[(&str, &str)]) -> String {
        let args: Vec<(&str, Arg<'_>)> = args.iter().map(|(k, v)| (*k, Arg::Text(v))).collect();
        Catalog::get().message(self.language, id, &args)
    }

    pub(crate) fn lang(&self) -> &'static str {
        self.language.code()
    }
}

#[derive(Template)]
#[template(path = "hosted/session.html")]
struct SessionPage {
    texts: HostedTexts,
    tenant: String,
    purpose: &'static str,
    csrf: String,
}

impl SessionPage {
    fn title(&self) -> String {
        self.texts.t(&format!("hosted-title-{}", self.purpose))
    }

    fn cancel_label(&self) -> String {
        self.texts
            .with("hosted-cancel", &[("tenant", &self.tenant)])
    }
}

#[derive(Template)]
#[template(path = "hosted/ended.html")]
struct EndedPage {
    texts: HostedTexts,
    title: &'static str,
    message: String,
}

fn ended(texts: HostedTexts, status: StatusCode, title: &'static str, message: String) -> Response {
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
fn session_gone(texts: HostedTexts) -> Response {
    let mut r = ended(
        texts,
        StatusCode::UNAUTHORIZED,
        "hosted-session-ended-title",
        texts.t("hosted-session-ended"),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        cookies::hosted_session("", 0, &HeaderMap::new()),
    );
    r
}

fn internal(texts: HostedTexts, e: &twofold_services::ServiceError) -> Response {
    tracing::error!(error = ?e, "hosted page failed");
    ended(
        texts,
        StatusCode::INTERNAL_SERVER_ERROR,
        "hosted-error-title",
        texts.t("hosted-error-internal"),
    )
}

#[derive(Deserialize)]
struct StartQuery {
    #[serde(default)]
    link: String,
}

async fn start(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(query): Query<StartQuery>,
) -> Response {
    let texts = HostedTexts::choose(None, &headers);
    match state.hosted.open(&query.link).await {
        Ok(Some((secret, session))) => {
            let seconds = (session.ends_at - chrono::Utc::now()).num_seconds().max(1);
            let mut r = Redirect::to("/hosted").into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                cookies::hosted_session(secret.expose(), seconds, &headers),
            );
            r
        }
        Ok(None) => ended(
            texts,
            StatusCode::NOT_FOUND,
            "hosted-link-invalid-title",
            texts.t("hosted-link-invalid"),
        ),
        Err(e) => internal(texts, &e),
    }
}

/// The session of the browser's cookie, or the page to answer instead.
async fn session(
    state: &WebState,
    headers: &HeaderMap,
) -> Result<(HostedSecret, HostedSession, HostedTexts), Response> {
    let texts = HostedTexts::choose(None, headers);
    let gone = || session_gone(texts);
    let secret = cookies::read(headers, cookies::HOSTED_SESSION)
        .and_then(|v| HostedSecret::session_from_cookie(&v))
        .ok_or_else(gone)?;
    match state.hosted.resume(&secret).await {
        Ok(Some(session)) => {
            let texts = HostedTexts::choose(Some(&session), headers);
            Ok((secret, session, texts))
        }
        Ok(None) => Err(gone()),
        Err(e) => Err(internal(texts, &e)),
    }
}

async fn show(State(state): State<WebState>, headers: HeaderMap) -> Response {
    let (secret, session, texts) = match session(&state, &headers).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    page::html(
        StatusCode::OK,
        &SessionPage {
            texts,
            tenant: session.tenant_name.clone(),
            purpose: session.link.purpose.as_str(),
            csrf: state.hosted.csrf_of(&secret),
        },
    )
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn cancel(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (secret, session, texts) = match session(&state, &headers).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let expected = state.hosted.csrf_of(&secret);
    if !twofold_services::console_sessions::ConsoleSessions::csrf_matches(&expected, &form.csrf) {
        return ended(
            texts,
            StatusCode::FORBIDDEN,
            "hosted-error-title",
            texts.t("hosted-form-expired"),
        );
    }
    match state.hosted.finish(&secret, &session, false, None).await {
        Ok(Some(back)) => {
            let mut r = Redirect::to(&back).into_response();
            r.headers_mut()
                .append(header::SET_COOKIE, cookies::hosted_session("", 0, &headers));
            r
        }
        Ok(None) => session_gone(texts),
        Err(e) => internal(texts, &e),
    }
}

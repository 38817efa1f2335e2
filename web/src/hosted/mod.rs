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
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use twofold_graphql::client_addr::ClientAddr;
use twofold_i18n::{negotiate, Arg, Catalog, Language};
use twofold_services::hosted::{HostedSecret, HostedSession};
use twofold_services::ServiceError;

use crate::{cookies, page, WebState};

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        // Not HEAD: a link scanner or prefetch would spend the link the user needs.
        .route(
            "/hosted/start",
            get(start).head(|| async { StatusCode::METHOD_NOT_ALLOWED }),
        )
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
        cookies::hosted_session("", 0, &HeaderMap::new(), false),
    );
    r
}

fn internal(texts: HostedTexts, e: &ServiceError) -> Response {
    tracing::error!(error = ?e, "hosted page failed");
    ended(
        texts,
        StatusCode::INTERNAL_SERVER_ERROR,
        "hosted-error-title",
        texts.t("hosted-error-internal"),
    )
}

/// A refusal the user can act on (the tenant no longer returns to the link's site).
fn refused(texts: HostedTexts, e: &ServiceError) -> Response {
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

/// The client's address, for the budget of unknown credentials the API and the console share.
fn client(parts: &Parts) -> Option<std::net::IpAddr> {
    parts.extensions.get::<ClientAddr>().map(|c| c.0)
}

/// The page for an address that spent its budget of unknown links and cookies.
fn throttled(texts: HostedTexts, seconds: u64) -> Response {
    let mut r = ended(
        texts,
        StatusCode::TOO_MANY_REQUESTS,
        "hosted-error-title",
        texts.with("hosted-throttled", &[("seconds", &seconds.to_string())]),
    );
    r.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    r
}

#[derive(Deserialize)]
struct StartQuery {
    #[serde(default)]
    link: String,
}

/// Spends the link. Unknown and spent links spend the address's budget of unknown credentials,
/// as unknown keys and console sessions do: each costs a database write.
async fn start(State(state): State<WebState>, parts: Parts) -> Response {
    let headers = &parts.headers;
    let texts = HostedTexts::choose(None, headers);
    let ip = client(&parts);
    if let Some(seconds) = state.anonymous.refused(ip) {
        return throttled(texts, seconds);
    }
    let Ok(Query(query)) = Query::<StartQuery>::try_from_uri(&parts.uri) else {
        state.anonymous.spend(ip);
        return link_invalid(texts);
    };
    match state.hosted.open(&query.link).await {
        Ok(Some((secret, session))) => {
            let seconds = (session.ends_at - chrono::Utc::now()).num_seconds().max(1);
            let mut r = Redirect::to("/hosted").into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                cookies::hosted_session(
                    secret.expose(),
                    seconds,
                    headers,
                    state.hosted.served_over_https(),
                ),
            );
            r
        }
        Ok(None) => {
            state.anonymous.spend(ip);
            link_invalid(texts)
        }
        Err(e) => {
            state.anonymous.spend(ip);
            internal(texts, &e)
        }
    }
}

fn link_invalid(texts: HostedTexts) -> Response {
    ended(
        texts,
        StatusCode::NOT_FOUND,
        "hosted-link-invalid-title",
        texts.t("hosted-link-invalid"),
    )
}

/// The session of the browser's cookie, or the page to answer instead. Unknown cookies spend the
/// address's budget like unknown links.
async fn session(
    state: &WebState,
    parts: &Parts,
) -> Result<(HostedSecret, HostedSession, HostedTexts), Response> {
    let headers = &parts.headers;
    let texts = HostedTexts::choose(None, headers);
    let ip = client(parts);
    if let Some(seconds) = state.anonymous.refused(ip) {
        return Err(throttled(texts, seconds));
    }
    let Some(secret) = cookies::read(headers, cookies::HOSTED_SESSION)
        .and_then(|v| HostedSecret::session_from_cookie(&v))
    else {
        return Err(session_gone(texts));
    };
    match state.hosted.resume(&secret).await {
        Ok(Some(session)) => {
            let texts = HostedTexts::choose(Some(&session), headers);
            Ok((secret, session, texts))
        }
        Ok(None) => {
            state.anonymous.spend(ip);
            Err(session_gone(texts))
        }
        Err(e) => {
            state.anonymous.spend(ip);
            Err(internal(texts, &e))
        }
    }
}

async fn show(State(state): State<WebState>, parts: Parts) -> Response {
    let (secret, session, texts) = match session(&state, &parts).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let mut r = page::html(
        StatusCode::OK,
        &SessionPage {
            texts,
            tenant: session.tenant_name.clone(),
            purpose: session.link.purpose.as_str(),
            csrf: state.hosted.csrf_of(&secret),
        },
    );
    // Chromium and WebKit check `form-action` against the redirect that ends a form's POST,
    // and the pages' forms end by sending the browser back to the tenant's site.
    let policy = crate::security::CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", session.link.return_url.origin()),
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        r.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn cancel(
    State(state): State<WebState>,
    parts: Parts,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (secret, session, texts) = match session(&state, &parts).await {
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
            r.headers_mut().append(
                header::SET_COOKIE,
                cookies::hosted_session("", 0, &parts.headers, false),
            );
            r
        }
        Ok(None) => session_gone(texts),
        Err(e) => refused(texts, &e),
    }
}

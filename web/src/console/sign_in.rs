//! Signing in with an ADMIN or AUDITOR key, signing out, and choosing the language.
//!
//! The sign-in form is protected against login CSRF (a page elsewhere signing the browser in
//! with the attacker's key) by a random nonce cookie and a form token derived from it. A key
//! that does not work spends the API's per-address budget of failed credentials, so the form
//! is no faster a way to guess keys than the API.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use twofold_graphql::client_addr::ClientAddr;
use twofold_services::console_sessions::{ConsoleSessions, SessionSecret};
use twofold_services::ServiceError;

use super::{form_expired, session_secret, SignedIn};
use crate::cookies;
use crate::language::{console_language, Texts};
use crate::page::{self, Chrome};
use crate::WebState;

/// How long the sign-in form's nonce lasts.
const NONCE_SECONDS: i64 = 3600;

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    csrf: String,
    /// Why the last attempt failed, and its code (`data-error-code`).
    error: Option<(String, &'static str)>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    #[serde(default)]
    signed_out: Option<String>,
}

fn chrome(texts: Texts, path: &str) -> Chrome {
    Chrome {
        texts,
        path: path.to_owned(),
        back: path.to_owned(),
        who: None,
    }
}

/// The form, with a fresh nonce when the browser has none.
pub(crate) async fn form(
    State(state): State<WebState>,
    texts: Texts,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Response {
    let (nonce, fresh) = match cookies::read(&headers, cookies::NONCE)
        .and_then(|v| SessionSecret::from_cookie(&v))
    {
        Some(n) => (n, false),
        None => (state.sessions.new_secret(), true),
    };
    let page = SignInPage {
        chrome: chrome(texts, "/console/sign-in"),
        csrf: state.sessions.sign_in_csrf(&nonce),
        error: None,
        notice: query.signed_out.map(|_| texts.get("console-signed-out")),
    };
    let mut response = page::html(StatusCode::OK, &page);
    if fresh {
        response.headers_mut().append(
            header::SET_COOKIE,
            cookies::set(cookies::NONCE, nonce.expose(), NONCE_SECONDS, &headers),
        );
    }
    response
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: String,
}

/// Exchanges the key for a session, or shows the form again with why not.
pub(crate) async fn submit(
    State(state): State<WebState>,
    texts: Texts,
    parts: Parts,
    Form(form): Form<SignInForm>,
) -> Response {
    let headers = &parts.headers;
    let nonce = cookies::read(headers, cookies::NONCE).and_then(|v| SessionSecret::from_cookie(&v));
    let Some(nonce) = nonce
        .filter(|n| ConsoleSessions::csrf_matches(&state.sessions.sign_in_csrf(n), &form.csrf))
    else {
        return form_expired(chrome(texts, "/console/sign-in"));
    };
    let ip = parts.extensions.get::<ClientAddr>().map(|c| c.0);
    let again = |status: StatusCode, message: String, code: &'static str| {
        page::html(
            status,
            &SignInPage {
                chrome: chrome(texts, "/console/sign-in"),
                csrf: state.sessions.sign_in_csrf(&nonce),
                error: Some((message, code)),
                notice: None,
            },
        )
    };
    let throttled = |seconds: u64| {
        let mut r = again(
            StatusCode::TOO_MANY_REQUESTS,
            texts.with(
                "console-sign-in-throttled",
                &[("seconds", &seconds.to_string())],
            ),
            "RATE_LIMITED",
        );
        r.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        r
    };
    if let Some(seconds) = state
        .anonymous
        .refused(ip)
        .filter(|_| !state.sessions.is_known_key(&form.key))
    {
        return throttled(seconds);
    }
    let (request_id, request) = super::metadata(&parts);
    // A valid key's sign-in records an event: it spends a budget of sign-ins of its own
    // (`budgets`), and takes a place in the tenant's share like an API operation.
    let signed_in = match state.sessions.key_for_sign_in(&form.key).await {
        Ok(key) => {
            if let Err(seconds) = state.console_budgets.sign_in(&key, ip) {
                return throttled(seconds);
            }
            let _share = match &state.rate_limits {
                Some(limits) => match limits.admit(&key).await {
                    Ok(permit) => Some(permit),
                    Err(refusal) => {
                        return super::refused_by_limits(
                            chrome(texts, "/console/sign-in"),
                            &refusal,
                            &request_id,
                        )
                    }
                },
                None => None,
            };
            state.sessions.sign_in(&key, &request).await
        }
        Err(e) => Err(e),
    };
    match signed_in {
        Ok((token, _)) => {
            let mut r = Redirect::to("/console").into_response();
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                cookies::set(
                    cookies::SESSION,
                    token.expose(),
                    twofold_domain::console_session::ABSOLUTE.num_seconds(),
                    headers,
                ),
            );
            h.append(
                header::SET_COOKIE,
                cookies::set(cookies::NONCE, "", 0, headers),
            );
            r
        }
        Err(ServiceError::Unauthenticated(_)) => {
            state.anonymous.spend(ip);
            again(
                StatusCode::UNAUTHORIZED,
                texts.get("console-sign-in-failed"),
                "UNAUTHENTICATED",
            )
        }
        Err(ServiceError::Forbidden(_)) => again(
            StatusCode::FORBIDDEN,
            texts.get("console-sign-in-forbidden"),
            "FORBIDDEN",
        ),
        Err(e) => {
            // Spent too, as by the API: a flood of guessed keys must not go unthrottled exactly
            // when the pool is saturated and every look-up fails.
            state.anonymous.spend(ip);
            page::error(chrome(texts, "/console/sign-in"), &e, &request_id)
        }
    }
}

#[derive(Template)]
#[template(path = "console/sign_out.html")]
struct SignOutPage {
    chrome: Chrome,
}

/// A bookmarkable page with the sign-out button (signing out is a POST, so another site
/// cannot sign the browser out with a link).
pub(crate) async fn sign_out_form(signed_in: SignedIn) -> Response {
    page::html(
        StatusCode::OK,
        &SignOutPage {
            chrome: signed_in.chrome,
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn sign_out(
    State(state): State<WebState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = signed_in.refuse_csrf(&form.csrf) {
        return refused;
    }
    let outcome = match session_secret(&headers) {
        Some(secret) => {
            state
                .sessions
                .sign_out(&secret, &signed_in.call.request)
                .await
        }
        None => Ok(()),
    };
    let mut r = match outcome {
        Ok(()) => Redirect::to("/console/sign-in?signed_out=1").into_response(),
        Err(e) => page::error(signed_in.chrome, &e, &signed_in.request_id),
    };
    // Even when the sign-out could not be recorded: the browser asked to be signed out.
    r.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(cookies::SESSION, "", 0, &headers),
    );
    r
}

#[derive(Deserialize)]
pub(crate) struct LanguageQuery {
    #[serde(default)]
    lang: String,
    #[serde(default)]
    back: String,
}

/// Remembers the chosen language and returns to the page it was chosen on (a console path
/// only: this is not an open redirect).
pub(crate) async fn language(headers: HeaderMap, Query(q): Query<LanguageQuery>) -> Response {
    let safe = |back: &str| {
        back.starts_with("/console")
            && !back.contains("//")
            && !back.contains('\\')
            && back.len() <= super::MAX_BACK_CHARS
            && back.bytes().all(|b| b.is_ascii_graphic())
    };
    // A page's query can be long (an audit filter): without it, the same page still.
    let path = q.back.split('?').next().unwrap_or_default();
    let back = [q.back.as_str(), path]
        .into_iter()
        .find(|b| safe(b))
        .unwrap_or("/console");
    let mut r = Redirect::to(back).into_response();
    if let Some(language) = console_language(&q.lang) {
        r.headers_mut().append(
            header::SET_COOKIE,
            cookies::set(
                cookies::LANGUAGE,
                language.code(),
                365 * 24 * 3600,
                &headers,
            ),
        );
    }
    r
}

//! The console's routes, the signed-in extractor and the CSRF check every form goes through.

mod audit;
pub(crate) mod budgets;
mod chart;
mod compliance;
mod keys;
mod overview;
mod policy;
mod sign_in;
mod users;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use twofold_graphql::client_addr::ClientAddr;
use twofold_graphql::http::{request_context, RequestId};
use twofold_services::console_sessions::{ConsoleSession, ConsoleSessions, SessionSecret};
use twofold_services::{Call, ErrorCode, RequestContext, ServiceError};

use crate::cookies;
use crate::language::Texts;
use crate::page::{self, Chrome, Who};
use crate::WebState;

/// Where a browser signs out.
const SIGN_OUT: &str = "/console/sign-out";

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/policy", get(policy::page).post(policy::submit))
        .route("/console/compliance", get(compliance::page))
        .route("/console/compliance.csv", get(compliance::csv))
        .route("/console/audit", get(audit::page))
        .route("/console/audit/export", get(audit::export))
        .route("/console/audit/live", get(audit::live))
        .route("/console/keys", get(keys::list).post(keys::issue))
        .route("/console/keys/{key_id}/revoke", post(keys::revoke))
        .route("/console/users", get(users::find))
        .route("/console/users/{user_id}", get(users::user))
        .route("/console/users/{user_id}/reset", post(users::reset))
        .route(
            "/console/users/{user_id}/clear-lockout",
            post(users::clear_lockout),
        )
        .route(
            "/console/users/{user_id}/devices/{device_id}/revoke",
            post(users::revoke_device),
        )
        // The same, for user ids a browser folds in a path (`.`, `..`): `?id=` (decision 145).
        .route("/console/user", get(users::user))
        .route("/console/user/reset", post(users::reset))
        .route("/console/user/clear-lockout", post(users::clear_lockout))
        .route(
            "/console/user/devices/{device_id}/revoke",
            post(users::revoke_device),
        )
        .route("/console/sign-in", get(sign_in::form).post(sign_in::submit))
        .route(
            SIGN_OUT,
            get(sign_in::sign_out_form).post(sign_in::sign_out),
        )
        .route("/console/language", get(sign_in::language))
        // Not a fallback: the API's router, which these routes join, has its own.
        .route("/console/{*rest}", get(not_found))
}

/// A request of a signed-in browser: its session, the [`Call`] its use-cases take, and what
/// the layout shows. Without a live session, the browser is sent to the sign-in page.
pub(crate) struct SignedIn {
    pub(crate) session: ConsoleSession,
    pub(crate) call: Call,
    pub(crate) chrome: Chrome,
    pub(crate) request_id: String,
}

impl SignedIn {
    /// `None` when the form's `csrf` is this session's; the refusal page otherwise.
    pub(crate) fn refuse_csrf(&self, given: &str) -> Option<Response> {
        (!ConsoleSessions::csrf_matches(&self.session.csrf, given)).then(|| {
            form_expired(Chrome {
                who: None,
                ..self.chrome.clone()
            })
        })
    }
}

/// Longest address the language switcher returns to (and accepts).
pub(crate) const MAX_BACK_CHARS: usize = 512;

/// The GET address a request belongs to, query included: where the language switcher
/// returns (decision 148). A refused form is answered from the address it posted to, and an
/// action's address (`/console/keys/{id}/revoke`, `/console/users/{id}/reset`) has no page, so
/// the switcher returns to the page the form is on.
pub(crate) fn back_of(method: &Method, uri: &Uri) -> String {
    let path = uri.path();
    let back = if method == Method::GET || method == Method::HEAD {
        uri.path_and_query().map_or(path, |p| p.as_str()).to_owned()
    } else if path.starts_with("/console/keys/") {
        "/console/keys".into()
    } else {
        users::page_of_action(path, uri.query()).unwrap_or_else(|| path.to_owned())
    };
    // Every page echoes it into the switcher's form: a long address (thousands of refused
    // filter values, a padded id) is not sent back at any length, nor one the switcher would
    // refuse.
    if back.len() <= MAX_BACK_CHARS {
        back
    } else if path.len() <= MAX_BACK_CHARS && (method == Method::GET || method == Method::HEAD) {
        path.to_owned()
    } else {
        "/console".into()
    }
}

/// The layout of an answer to `method` `uri`, before anyone is known to be signed in.
pub(crate) fn chrome_for(texts: Texts, method: &Method, uri: &Uri) -> Chrome {
    Chrome {
        texts,
        path: uri.path().to_owned(),
        back: back_of(method, uri),
        who: None,
    }
}

/// A page that did not answer within `limit` (a stalled database) ends with the error page,
/// 503 as the API's, with the request id, and gives back what it held. A sign-out still
/// deletes the browser's cookie, as when the sign-out could not be recorded.
pub(crate) async fn time_limit(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let texts = Texts {
        language: crate::language::choose(request.headers()),
    };
    let chrome = chrome_for(texts, request.method(), request.uri());
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let signing_out = (request.method() == axum::http::Method::POST
        && request.uri().path() == SIGN_OUT)
        .then(|| request.headers().clone());
    let Ok(response) = tokio::time::timeout(limit, next.run(request)).await else {
        tracing::error!("a console page took too long");
        let message = chrome
            .texts
            .with("console-error-internal", &[("request", &request_id)]);
        let mut r = page::html(
            StatusCode::SERVICE_UNAVAILABLE,
            &page::ErrorPage {
                chrome,
                code: ErrorCode::Internal.as_str(),
                message,
            },
        );
        if let Some(headers) = signing_out {
            r.headers_mut().append(
                header::SET_COOKIE,
                cookies::set(cookies::SESSION, "", 0, &headers),
            );
        }
        return r;
    };
    response
}

/// The answer to a form whose CSRF token is missing or not this browser's.
pub(crate) fn form_expired(chrome: Chrome) -> Response {
    let message = chrome.t("console-form-expired");
    page::html(
        StatusCode::FORBIDDEN,
        &page::ErrorPage {
            chrome,
            code: "FORBIDDEN",
            message,
        },
    )
}

/// A 429 page saying `message`, with `Retry-After: seconds`.
pub(crate) fn too_many(chrome: Chrome, message: String, seconds: u64) -> Response {
    let mut r = page::html(
        StatusCode::TOO_MANY_REQUESTS,
        &page::ErrorPage {
            chrome,
            code: "RATE_LIMITED",
            message,
        },
    );
    r.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    r
}

/// The answer to a browser whose address spent its budget of unknown credentials.
fn throttled(chrome: Chrome, seconds: u64) -> Response {
    let message = chrome.texts.with(
        "console-sign-in-throttled",
        &[("seconds", &seconds.to_string())],
    );
    too_many(chrome, message, seconds)
}

pub(crate) fn session_secret(headers: &HeaderMap) -> Option<SessionSecret> {
    cookies::read(headers, cookies::SESSION).and_then(|v| SessionSecret::from_cookie(&v))
}

pub(crate) fn metadata(parts: &Parts) -> (String, RequestContext) {
    let id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let context = request_context(parts, &id);
    (id, context)
}

impl FromRequestParts<WebState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        let texts = Texts {
            language: crate::language::choose(&parts.headers),
        };
        let anonymous = chrome_for(texts, &parts.method, &parts.uri);
        let (request_id, request) = metadata(parts);
        let to_sign_in = || {
            let mut r = Redirect::to("/console/sign-in").into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                cookies::set(cookies::SESSION, "", 0, &parts.headers),
            );
            r
        };
        let Some(secret) = session_secret(&parts.headers) else {
            return Err(Redirect::to("/console/sign-in").into_response());
        };
        // Unknown tokens spend the API's budget of unknown credentials, as unknown keys do:
        // each costs a database read, and a flood of them must not reach the pool unthrottled.
        let ip = parts.extensions.get::<ClientAddr>().map(|c| c.0);
        let known = state.sessions.known_key(&secret);
        if let Some(seconds) = state.anonymous.refused(ip).filter(|_| known.is_none()) {
            return Err(throttled(anonymous, seconds));
        }
        // A known session's key is charged before its session is read, so requests over the
        // rate cost no database read either (the API answers them from its cache).
        let exempt = rate_exempt(&parts.method, parts.uri.path());
        match known.as_ref() {
            Some(key) if exempt => {
                if let Err(seconds) = state.console_budgets.exempt(key, ip) {
                    return Err(throttled(anonymous, seconds));
                }
            }
            Some(key) => charge(state, key, &anonymous).await?,
            None => {}
        }
        let session = match state.sessions.resume(&secret).await {
            Ok(Some(session)) => session,
            Ok(None) => {
                state.anonymous.spend(ip);
                return Err(to_sign_in());
            }
            Err(e) => {
                state.anonymous.spend(ip);
                return Err(page::error(anonymous, &e, &request_id));
            }
        };
        if !exempt && known.as_ref() != Some(&session.key) {
            charge(state, &session.key, &anonymous).await?;
        }
        let share = match &state.rate_limits {
            Some(limits) => match limits.admit(&session.key).await {
                Ok(permit) => Some(permit),
                // The key was revoked while the request waited for a place.
                Err(refusal) if code_of(&refusal) == Some("UNAUTHENTICATED") => {
                    return Err(to_sign_in())
                }
                Err(refusal) => return Err(refused_by_limits(anonymous, &refusal, &request_id)),
            },
            None => None,
        };
        let span = tracing::Span::current();
        span.record("tenant", session.key.tenant_id.as_str());
        span.record(
            "actor",
            format!("{}:{}", session.key.role.as_str(), session.key.key_id).as_str(),
        );
        let who = Who {
            line: texts.with(
                "console-signed-in",
                &[
                    ("tenant", session.key.tenant_id.as_str()),
                    ("role", session.key.role.as_str()),
                    ("key", session.key.key_id.as_str()),
                ],
            ),
            read_only: session.key.role != twofold_domain::Role::Admin,
            csrf: session.csrf.clone(),
        };
        // A place in the tenant's share of the instance, held by the call: while the handler
        // runs, and by work it leaves running (a streamed answer keeps its own cap instead).
        let call = session.call(request);
        if let Some(place) = share {
            call.admission().hold(place);
        }
        Ok(SignedIn {
            call,
            session,
            chrome: Chrome {
                who: Some(who),
                ..anonymous
            },
            request_id,
        })
    }
}

/// The stable code of a refusal from the API's limits.
pub(crate) fn code_of(refusal: &async_graphql::ServerError) -> Option<&str> {
    match refusal.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code),
        _ => None,
    }
}

/// The page for a refusal of the API's limits: over the rate or the tenant's share (429), the
/// key revoked meanwhile (401), or an internal failure (the error page, never a 429).
pub(crate) fn refused_by_limits(
    chrome: Chrome,
    refusal: &async_graphql::ServerError,
    request_id: &str,
) -> Response {
    match code_of(refusal) {
        Some("INTERNAL") => {
            let e = ServiceError::Internal(refusal.message.clone().into());
            page::error(chrome, &e, request_id)
        }
        Some("UNAUTHENTICATED") => {
            let e = ServiceError::Unauthenticated(refusal.message.clone());
            page::error(chrome, &e, request_id)
        }
        _ => rate_limited(chrome, refusal),
    }
}

/// Charges one request to `key`'s rate, as the API does.
pub(crate) async fn charge(
    state: &WebState,
    key: &twofold_services::KeyPrincipal,
    chrome: &Chrome,
) -> Result<(), Response> {
    let Some(limits) = &state.rate_limits else {
        return Ok(());
    };
    let caller = twofold_services::Principal::Key(key.clone());
    limits
        .charge(Some(&caller))
        .await
        .map_err(|refusal| rate_limited(chrome.clone(), &refusal))
}

/// Ending a session and revoking a key are not charged to the key's rate: a thief holding the
/// same key could keep its bucket empty through the API and so keep the admin from either.
/// They still take a place in the tenant's share.
fn rate_exempt(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::POST
        && (path == SIGN_OUT || (path.starts_with("/console/keys/") && path.ends_with("/revoke")))
}

/// The answer to a page over its key's request rate: the API's refusal, as a page.
fn rate_limited(chrome: Chrome, refusal: &async_graphql::ServerError) -> Response {
    too_many(chrome, refusal.message.clone(), retry_after(refusal))
}

/// The seconds a refusal of the API's limits asks to wait (at least one).
pub(crate) fn retry_after(refusal: &async_graphql::ServerError) -> u64 {
    refusal
        .extensions
        .as_ref()
        .and_then(|e| e.get("retryAfterSeconds"))
        .and_then(|v| match v {
            async_graphql::Value::Number(n) => n.as_u64(),
            _ => None,
        })
        .unwrap_or(1)
        .max(1)
}

async fn not_found(texts: Texts, uri: Uri) -> Response {
    page::html(
        StatusCode::NOT_FOUND,
        &page::ErrorPage {
            chrome: chrome_for(texts, &Method::GET, &uri),
            code: "NOT_FOUND",
            message: texts.get("console-not-found"),
        },
    )
}

//! Opening a link: the link is spent and the browser gets a session cookie of its own. A browser
//! already in a live visit is asked first, so that a site which sends it to a link of its own
//! (an attacker's flow, under another organisation's name) cannot swap the visit silently.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use twofold_graphql::client_addr::ClientAddr;
use twofold_services::hosted::HostedSecret;

use super::texts::HostedTexts;
use super::{internal, link_invalid, throttled};
use crate::{cookies, page, WebState};

#[derive(Deserialize)]
pub(crate) struct StartQuery {
    #[serde(default)]
    link: String,
}

/// The answer to the question: the link, and the page's token for it.
#[derive(Deserialize)]
pub(crate) struct ReplaceForm {
    #[serde(default)]
    link: String,
    #[serde(default)]
    token: String,
}

#[derive(Template)]
#[template(path = "hosted/replace.html")]
struct ReplacePage {
    texts: HostedTexts,
    /// The organisation of the visit in progress, when the browser's cookie says which.
    tenant: Option<String>,
    link: String,
    /// [`twofold_services::hosted::HostedPages::replace_token`] of the link.
    token: String,
}

impl ReplacePage {
    fn question(&self) -> String {
        match &self.tenant {
            Some(tenant) => self
                .texts
                .with("hosted-replace-question", &[("tenant", tenant)]),
            None => self.texts.t("hosted-replace-question-unknown"),
        }
    }
}

/// `GET /hosted/start?link=`: spends the link, unless the browser is in a live visit.
pub(crate) async fn open(State(state): State<WebState>, parts: Parts) -> Response {
    let texts = HostedTexts::choose(None, &parts.headers);
    let ip = parts.extensions.get::<ClientAddr>().map(|c| c.0);
    if let Some(seconds) = state.anonymous.refused(ip) {
        return throttled(texts, seconds);
    }
    let Ok(Query(query)) = Query::<StartQuery>::try_from_uri(&parts.uri) else {
        state.anonymous.spend(ip);
        return link_invalid(texts);
    };
    // A browser in a visit is asked before the visit is replaced: when its cookie is live, and
    // when two are sent (a sibling domain's planted beside ours hides which one is ours).
    let sent = cookies::count(&parts.headers, cookies::HOSTED_SESSION);
    let mut tenant = None;
    if let Some(secret) = cookies::read(&parts.headers, cookies::HOSTED_SESSION)
        .and_then(|v| HostedSecret::session_from_cookie(&v))
    {
        if let Err(seconds) = state
            .console_budgets
            .hosted(&state.hosted.csrf_of(&secret), ip)
        {
            return throttled(texts, seconds);
        }
        match state.hosted.resume(&secret).await {
            Ok(Some(live)) => tenant = Some(live),
            Ok(None) => state.anonymous.spend(ip),
            Err(e) => return internal(texts, &e),
        }
    }
    if tenant.is_some() || sent > 1 {
        let texts = HostedTexts::choose(tenant.as_ref(), &parts.headers);
        let mut r = page::html(
            StatusCode::OK,
            &ReplacePage {
                texts,
                tenant: tenant.map(|live| live.tenant_name),
                token: state.hosted.replace_token(&query.link),
                link: query.link,
            },
        );
        // The link is in this page's address: its files must not carry it in `Referer`.
        r.headers_mut().insert(
            header::REFERRER_POLICY,
            axum::http::HeaderValue::from_static("strict-origin"),
        );
        return r;
    }
    spend(&state, &parts, &query.link).await
}

/// `POST /hosted/start`: the user chose to leave the visit in progress for the new link (a form
/// of this origin only: the pages' same-origin check refuses other sites' posts).
pub(crate) async fn replace(
    State(state): State<WebState>,
    parts: Parts,
    Form(form): Form<ReplaceForm>,
) -> Response {
    let texts = HostedTexts::choose(None, &parts.headers);
    let ip = parts.extensions.get::<ClientAddr>().map(|c| c.0);
    if let Some(seconds) = state.anonymous.refused(ip) {
        return throttled(texts, seconds);
    }
    let expected = state.hosted.replace_token(&form.link);
    if !twofold_services::console_sessions::ConsoleSessions::csrf_matches(&expected, &form.token) {
        return super::ended(
            texts,
            StatusCode::FORBIDDEN,
            "hosted-error-title",
            texts.t("hosted-form-expired"),
        );
    }
    spend(&state, &parts, &form.link).await
}

/// Spends the link. Unknown and spent links spend the address's budget of unknown credentials,
/// as unknown keys and console sessions do: each costs a database write.
async fn spend(state: &WebState, parts: &Parts, link: &str) -> Response {
    let headers = &parts.headers;
    let texts = HostedTexts::choose(None, headers);
    let ip = parts.extensions.get::<ClientAddr>().map(|c| c.0);
    match state.hosted.open(link).await {
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

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

#[derive(Template)]
#[template(path = "hosted/replace.html")]
struct ReplacePage {
    texts: HostedTexts,
    /// The organisation of the visit in progress.
    tenant: String,
    link: String,
}

impl ReplacePage {
    fn question(&self) -> String {
        self.texts
            .with("hosted-replace-question", &[("tenant", &self.tenant)])
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
    let live = match cookies::read(&parts.headers, cookies::HOSTED_SESSION)
        .and_then(|v| HostedSecret::session_from_cookie(&v))
    {
        Some(secret) => state.hosted.resume(&secret).await.ok().flatten(),
        None => None,
    };
    if let Some(live) = live {
        let texts = HostedTexts::choose(Some(&live), &parts.headers);
        return page::html(
            StatusCode::OK,
            &ReplacePage {
                texts,
                tenant: live.tenant_name,
                link: query.link,
            },
        );
    }
    spend(&state, &parts, &query.link).await
}

/// `POST /hosted/start`: the user chose to leave the visit in progress for the new link (a form
/// of this origin only: the pages' same-origin check refuses other sites' posts).
pub(crate) async fn replace(
    State(state): State<WebState>,
    parts: Parts,
    Form(form): Form<StartQuery>,
) -> Response {
    let texts = HostedTexts::choose(None, &parts.headers);
    let ip = parts.extensions.get::<ClientAddr>().map(|c| c.0);
    if let Some(seconds) = state.anonymous.refused(ip) {
        return throttled(texts, seconds);
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

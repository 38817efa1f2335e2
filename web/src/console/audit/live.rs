//! `/console/audit/live`: Server-Sent Events of the audit events recorded from now on, each an
//! HTML fragment of the timeline (`live.js` prepends them). The stream is the API's live
//! subscription (`AuditService::live`: the per-tenant cap, no connection held while idle,
//! ended when the key is revoked); here it also ends when the browser's session does.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use twofold_services::roles::{self, ADMIN_AUDITOR};

use super::query::AuditQuery;
use super::EventItem;
use crate::console::{session_secret, SignedIn};
use crate::WebState;

/// How often a long answer checks that its session is still live.
const SESSION_CHECK: Duration = Duration::from_secs(2);

/// Resolves when the browser's session is over (signed out, timed out, its key revoked) or
/// the server is stopping. The check does not count as activity, so an open tab does not keep
/// an idle session alive; a check that fails internally is tried again at the next tick.
pub(crate) fn session_ended(
    state: WebState,
    headers: &HeaderMap,
) -> impl Future<Output = ()> + Send + 'static {
    let secret = session_secret(headers);
    let mut stopping = state.stopping.clone();
    async move {
        let Some(secret) = secret else { return };
        let watch = async {
            let mut tick = tokio::time::interval(SESSION_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Ok(false) = state.sessions.is_live(&secret).await {
                    tracing::info!("the console session ended; ending its long answer");
                    return;
                }
            }
        };
        let stop = async {
            let _ = stopping.wait_for(|s| *s).await;
        };
        tokio::select! {
            () = watch => {}
            () = stop => {}
        }
    }
}

pub(crate) async fn live(
    State(state): State<WebState>,
    s: SignedIn,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let stream = async {
        roles::require(&s.session.key, ADMIN_AUDITOR)?;
        let filter = AuditQuery::parse(raw.as_deref().unwrap_or_default())?.filter()?;
        state.audit.live(&s.session.key, filter).await
    }
    .await;
    let records = match stream {
        Ok(r) => r,
        Err(e) => return crate::page::error(s.chrome, &e, &s.request_id),
    };
    let texts = s.chrome.texts;
    let events = records
        .map(move |r| {
            let id = r.position.to_string();
            Ok::<_, Infallible>(
                Event::default()
                    .event("audit")
                    .id(id)
                    .data(EventItem::of(texts, r).html()),
            )
        })
        .take_until(session_ended(state, &headers));
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    // axum sets `no-cache`, which lets a cache store the events; the console keeps nothing.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

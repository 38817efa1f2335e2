//! A request of a live hosted session: the browser's cookie resolved to its session, the link's
//! APP key charged as the API charges it, and the [`Call`] the pages' use-cases run as.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use twofold_graphql::client_addr::ClientAddr;
use twofold_services::console_sessions::ConsoleSessions;
use twofold_services::hosted::{HostedSecret, HostedSession};
use twofold_services::{Call, Principal};

use super::texts::HostedTexts;
use super::{ended, internal, session_gone, throttled};
use crate::console::{code_of, retry_after};
use crate::{cookies, WebState};

/// A request of a live session.
pub(crate) struct Visit {
    pub(crate) secret: HostedSecret,
    pub(crate) session: HostedSession,
    pub(crate) texts: HostedTexts,
    /// The use-cases run as the APP key that made the link, always for the link's user: no
    /// handler takes a user id from the browser.
    pub(crate) call: Call,
    pub(crate) csrf: String,
}

impl Visit {
    /// The link's user, the only one the pages act on.
    pub(crate) fn user(&self) -> &str {
        self.session.link.user_id.as_str()
    }

    /// The page to answer when a form's token is not this session's.
    pub(crate) fn refuse(&self, csrf: &str) -> Option<Response> {
        if ConsoleSessions::csrf_matches(&self.csrf, csrf) {
            None
        } else {
            Some(ended(
                self.texts,
                StatusCode::FORBIDDEN,
                "hosted-error-title",
                self.texts.t("hosted-form-expired"),
            ))
        }
    }

    /// `Err` with the words to show when this visit has asked for all the codes by email or SMS
    /// it may.
    pub(crate) fn may_send(&self, state: &WebState) -> Result<(), String> {
        state
            .console_budgets
            .hosted_send(
                &self.csrf,
                &format!("{}/{}", self.call.tenant().as_str(), self.user()),
            )
            .map_err(|_| self.texts.t("hosted-too-many-codes"))
    }

    /// `page`, allowed to end by sending the browser back to the tenant's site: Chromium and
    /// WebKit check `form-action` against the redirect that ends a form's POST.
    pub(crate) fn allow_return(&self, mut page: Response) -> Response {
        let origin = self.session.link.return_url.origin();
        // The domain admits only such origins; checked again where it becomes a header.
        if !origin
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'/'))
        {
            return page;
        }
        let policy = crate::security::CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'",
            &format!("form-action 'self' {origin}"),
        );
        if let Ok(value) = HeaderValue::from_str(&policy) {
            page.headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
        page
    }
}

impl FromRequestParts<WebState> for Visit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        let headers = &parts.headers;
        let texts = HostedTexts::choose(None, headers);
        let ip = parts.extensions.get::<ClientAddr>().map(|c| c.0);
        if let Some(seconds) = state.anonymous.refused(ip) {
            return Err(throttled(texts, seconds));
        }
        let Some(secret) = cookies::read(headers, cookies::HOSTED_SESSION)
            .and_then(|v| HostedSecret::session_from_cookie(&v))
        else {
            return Err(session_gone(texts));
        };
        // The session's and the address's own budgets come before any read, and before the
        // link's APP key is charged: one user cannot spend the backend's rate.
        let csrf = state.hosted.csrf_of(&secret);
        if let Err(seconds) = state.console_budgets.hosted(&csrf, ip) {
            return Err(throttled(texts, seconds));
        }
        // Unknown cookies spend the address's budget like unknown links: each costs a read.
        let session = match state.hosted.resume(&secret).await {
            Ok(Some(session)) => session,
            Ok(None) => {
                state.anonymous.spend(ip);
                return Err(session_gone(texts));
            }
            Err(e) => {
                state.anonymous.spend(ip);
                return Err(internal(texts, &e));
            }
        };
        let texts = HostedTexts::choose(Some(&session), headers);
        let key = &session.link.key;
        // Every page is a request of the link's APP key: its rate and its tenant's share of the
        // instance, as for the API, so a user's browser cannot do more than the backend may.
        let share = match &state.rate_limits {
            Some(limits) => {
                let caller = Principal::Key(key.clone());
                if let Err(refusal) = limits.charge(Some(&caller)).await {
                    return Err(throttled(texts, retry_after(&refusal)));
                }
                match limits.admit(key).await {
                    Ok(permit) => Some(permit),
                    Err(refusal) if code_of(&refusal) == Some("UNAUTHENTICATED") => {
                        return Err(session_gone(texts))
                    }
                    Err(refusal) => return Err(throttled(texts, retry_after(&refusal))),
                }
            }
            None => None,
        };
        let span = tracing::Span::current();
        span.record("tenant", key.tenant_id.as_str());
        span.record("actor", format!("APP:{}", key.key_id).as_str());
        let (_, request) = crate::console::metadata(parts);
        // The place is held by the call, so also by work the page leaves running (a code's
        // command) if the browser goes away.
        let call = session.call(request);
        if let Some(place) = share {
            call.admission().hold(place);
        }
        Ok(Self {
            csrf,
            call,
            secret,
            session,
            texts,
        })
    }
}

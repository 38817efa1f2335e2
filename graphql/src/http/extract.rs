//! What a handler knows about its request, as axum extractors: its id, the metadata recorded
//! with the events it causes, and its authenticated caller.

use std::convert::Infallible;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use twofold_services::{ErrorCode, Principal, RequestContext, ServiceError};

use super::error::{error_response, rate_limited, HttpError};
use super::{ApiState, MAX_BODY_BYTES, MAX_CREDENTIAL_CHARS};
use crate::client_addr::ClientAddr;

/// The request id of this request (set by the request-id middleware).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or(RequestId(String::new())))
    }
}

/// The request's metadata, recorded with every event it causes.
pub(crate) struct Metadata(pub(crate) RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Metadata {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let RequestId(id) = RequestId::from_request_parts(parts, state).await?;
        Ok(Self(request_context(parts, &id)))
    }
}

/// The caller, from the request's `Authorization` header (`None` without one); a refusal is the
/// coded error response.
pub(crate) struct Authenticated(pub(crate) Option<Principal>);

impl FromRequestParts<ApiState> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let RequestId(id) = RequestId::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|e| match e {});
        let ip = client_ip(&parts.extensions);
        authenticate(state, &parts.headers, ip, &id).await.map(Self)
    }
}

/// A GraphQL request read whole, then its caller. The key is checked when the body is whole,
/// not when its header arrived: a body may take up to the body timeout, and a key revoked
/// meanwhile must not run what follows.
pub(crate) struct AuthenticatedBody {
    pub(crate) principal: Option<Principal>,
    pub(crate) metadata: RequestContext,
    pub(crate) bytes: Bytes,
}

impl FromRequest<ApiState> for AuthenticatedBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let bytes = match to_bytes(Body::new(body), MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) if is_length_limit(&e) => {
                return Err(error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::InvalidInput,
                    &format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                ))
            }
            // The server's body deadline passed, or the client hung up half-way.
            Err(_) => {
                return Err(error_response(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorCode::InvalidInput,
                    "the request body was cut off or sent too slowly",
                ))
            }
        };
        let Authenticated(principal) = Authenticated::from_request_parts(&mut parts, state).await?;
        let Metadata(metadata) = Metadata::from_request_parts(&mut parts, state)
            .await
            .unwrap_or_else(|e| match e {});
        Ok(Self {
            principal,
            metadata,
            bytes,
        })
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    std::error::Error::source(e).is_some_and(|inner| inner.is::<http_body_util::LengthLimitError>())
}

pub fn request_context(parts: &axum::http::request::Parts, request_id: &str) -> RequestContext {
    RequestContext {
        request_id: request_id.to_owned(),
        ip: client_ip(&parts.extensions).map(|ip| ip.to_string()),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// The client's address (see `client_addr.rs`), when the server recorded the peer.
pub(crate) fn client_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<ClientAddr>().map(|c| c.0)
}

/// `Authorization: Bearer <credential>`; `Ok(None)` when absent.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not valid text")?;
    let (scheme, credential) = value
        .trim()
        .split_once(' ')
        .ok_or("the Authorization header must be `Bearer <API key>`")?;
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
        return Err("the Authorization header must be `Bearer <API key>`");
    }
    if credential.chars().count() > MAX_CREDENTIAL_CHARS {
        return Err("invalid or revoked credentials");
    }
    Ok(Some(credential))
}

/// The caller of a plain HTTP request, recorded on the request span; a ready error response
/// when the credentials are malformed, unknown or revoked.
pub(crate) async fn authenticate(
    state: &ApiState,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
    request_id: &str,
) -> Result<Option<Principal>, Response> {
    if let Some(seconds) = state.anonymous.refused(ip) {
        // Only look-ups of keys not known here are refused: a key this instance has found
        // valid still gets in (behind a proxy every client shares one address, and a flood from
        // one of them must not lock the tenants' backends out).
        let known = bearer(headers)
            .ok()
            .flatten()
            .is_some_and(|credential| state.auth.is_known(credential));
        if !known {
            return Err(rate_limited(seconds));
        }
    }
    let principal = match bearer(headers) {
        Err(message) => {
            state.anonymous.spend(ip);
            return Err(error_response(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                message,
            ));
        }
        Ok(None) => {
            state.anonymous.spend(ip);
            None
        }
        Ok(Some(credential)) => match state.auth.authenticate(credential).await {
            Ok(p) => Some(p),
            Err(e @ ServiceError::Internal(_)) => {
                // Spent too: a flood of guessed keys must not go unthrottled exactly when the
                // pool is saturated.
                state.anonymous.spend(ip);
                if e.is_unavailable() {
                    tracing::warn!(error = ?e, "authentication: the database could not be reached");
                    return Err(HttpError::unavailable(request_id).into_response());
                }
                tracing::error!(error = ?e, "authentication failed internally");
                return Err(error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    &format!("internal error (request id {request_id})"),
                ));
            }
            Err(e) => {
                state.anonymous.spend(ip);
                return Err(error_response(
                    StatusCode::UNAUTHORIZED,
                    e.code(),
                    &e.to_string(),
                ));
            }
        },
    };
    if let Some(principal) = &principal {
        record_caller(principal);
    }
    Ok(principal)
}

/// Records the caller on the current span (the request's, or the WebSocket's).
pub(crate) fn record_caller(principal: &Principal) {
    let span = tracing::Span::current();
    match principal {
        Principal::Key(k) => {
            span.record("tenant", k.tenant_id.as_str());
            span.record(
                "actor",
                format!("{}:{}", k.role.as_str(), k.key_id).as_str(),
            );
        }
        Principal::Operator => {
            span.record("actor", "operator");
        }
    }
}

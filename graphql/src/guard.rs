//! Role guards: every field says who may call it, checked before its resolver runs.

use async_graphql::{Context, Guard, Result};
use twofold_domain::Role;
use twofold_services::{Call, ErrorCode, KeyPrincipal, Principal, RequestContext};

use crate::error::coded;

/// The authenticated caller of this request (absent: no credentials were sent).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Principal>);

/// Allows tenant keys with one of `roles`.
pub struct RoleGuard(pub &'static [Role]);

/// Allows only the operator token.
pub struct OperatorGuard;

fn unauthenticated() -> async_graphql::Error {
    coded(
        ErrorCode::Unauthenticated,
        "authentication required: send `Authorization: Bearer <API key>`",
    )
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        match ctx.data_opt::<Caller>().and_then(|c| c.0.as_ref()) {
            None => Err(unauthenticated()),
            Some(Principal::Operator) => Err(coded(
                ErrorCode::Forbidden,
                "the operator token may only call createTenant; use a tenant API key",
            )),
            Some(Principal::Key(key)) => twofold_services::roles::require(key, self.0)
                .map_err(|e| coded(ErrorCode::Forbidden, e.to_string())),
        }
    }
}

impl Guard for OperatorGuard {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        match ctx.data_opt::<Caller>().and_then(|c| c.0.as_ref()) {
            None => Err(unauthenticated()),
            Some(Principal::Operator) => Ok(()),
            Some(Principal::Key(_)) => Err(coded(
                ErrorCode::Forbidden,
                "only the operator token may do this",
            )),
        }
    }
}

/// The calling key, for resolvers behind a [`RoleGuard`].
pub fn key<'a>(ctx: &Context<'a>) -> Result<&'a KeyPrincipal> {
    match ctx.data_opt::<Caller>().and_then(|c| c.0.as_ref()) {
        Some(Principal::Key(key)) => Ok(key),
        _ => Err(unauthenticated()),
    }
}

/// The calling key's [`Call`], for resolvers behind a [`RoleGuard`].
pub fn call<'a>(ctx: &Context<'a>) -> Result<&'a Call> {
    ctx.data_opt::<Call>().ok_or_else(unauthenticated)
}

/// Gives a GraphQL request its caller and metadata: the [`Caller`] the guards check and, for a
/// tenant key, the [`Call`] the use-cases take, built here once.
pub fn attach(
    request: async_graphql::Request,
    principal: Option<Principal>,
    context: RequestContext,
) -> async_graphql::Request {
    let request = match &principal {
        Some(Principal::Key(key)) => request.data(Call::new(key.clone(), context.clone())),
        _ => request,
    };
    request.data(Caller(principal)).data(context)
}

/// The role lists the guards take: the services' own, which the console checks too.
pub use twofold_services::roles::{ADMIN, ADMIN_AUDITOR, ANY_KEY, APP, APP_ADMIN};

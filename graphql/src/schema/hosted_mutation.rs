//! Mutations of the hosted pages: a link for a user, and the result of their visit.

use twofold_services::hosted::{CreateLink, HostedPages};

use super::*;
use crate::types::{UserSessionLink, UserSessionPurposeGql, UserSessionResult};

fn hosted<'a>(ctx: &Context<'a>) -> &'a HostedPages {
    ctx.data_unchecked::<HostedPages>()
}

#[Object]
impl HostedMutation {
    /// APP. A single-use link to the hosted pages for `userId`, valid for 10 minutes.
    /// `returnUrl` must be on one of the policy's `returnOrigins`; the user is sent back there
    /// with `twofold_result`, a code to redeem with `redeemUserSession`. `locale` (a BCP 47
    /// tag of a supported language) chooses the pages' language; else the browser's.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn create_user_session(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        purpose: UserSessionPurposeGql,
        return_url: String,
        locale: Option<String>,
    ) -> async_graphql::Result<UserSessionLink> {
        let input = CreateLink {
            user_id: user_id.0,
            purpose: Some(purpose.into()),
            return_url,
            locale,
        };
        let link = hosted(ctx)
            .create(call(ctx)?, input)
            .await
            .map_err(ApiError)?;
        Ok(link.into())
    }

    /// APP. What happened on the hosted pages: redeemable once, within 5 minutes, by the
    /// organisation whose page it was, with the `id` its `createUserSession` gave (keep it with
    /// your own user session, as OAuth's `state`: a result then reaches only the sign-in that
    /// asked for it). Anything else is `INVALID_INPUT`, and spends nothing. `sessionId` is
    /// required; it is nullable in the schema only because the first version of this mutation
    /// had no such argument.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn redeem_user_session(
        &self,
        ctx: &Context<'_>,
        code: String,
        session_id: Option<ID>,
    ) -> async_graphql::Result<UserSessionResult> {
        let Some(session_id) = session_id else {
            return Err(ApiError(ServiceError::InvalidInput(
                "sessionId is required: give the id createUserSession returned with the link"
                    .into(),
            ))
            .into());
        };
        let outcome = hosted(ctx)
            .redeem(call(ctx)?, &code, &session_id)
            .await
            .map_err(ApiError)?;
        Ok(outcome.into())
    }
}

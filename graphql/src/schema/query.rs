//! Queries and the live subscription.

use super::*;

#[Object]
impl Query {
    /// Any tenant key.
    #[graphql(guard = "RoleGuard(ANY_KEY)")]
    async fn tenant(&self, ctx: &Context<'_>) -> async_graphql::Result<Tenant> {
        let caller = key(ctx)?;
        Ok(Tenant(
            tenants(ctx)
                .tenant(&caller.tenant_id)
                .await
                .map_err(ApiError)?,
        ))
    }

    /// APP, ADMIN. Null when the tenant has never seen this user.
    #[graphql(guard = "RoleGuard(APP_ADMIN)")]
    async fn user(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<Option<UserTwoFactor>> {
        let caller = key(ctx)?;
        let status = users(ctx)
            .status(&caller.tenant_id, &user_id)
            .await
            .map_err(ApiError)?;
        Ok(status.map(UserTwoFactor))
    }

    /// APP. Whether this sign-in needs a second factor, and which methods may satisfy it.
    /// Every answer is recorded (`SignInEvaluated`) with its reason.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn sign_in_requirement(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        device_token: Option<String>,
        #[graphql(default_with = "Some(false)")] sso_login: Option<bool>,
    ) -> async_graphql::Result<SignInRequirement> {
        let decision = users(ctx)
            .sign_in_requirement(
                call(ctx)?,
                &user_id,
                device_token.as_deref(),
                sso_login.unwrap_or(false),
            )
            .await
            .map_err(ApiError)?;
        Ok(SignInRequirement(decision))
    }

    /// ADMIN, AUDITOR.
    #[graphql(
        guard = "RoleGuard(ADMIN_AUDITOR)",
        complexity = "page_cost(first, child_complexity)"
    )]
    async fn compliance(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ComplianceReport> {
        let caller = key(ctx)?;
        let report = ctx
            .data_unchecked::<ComplianceService>()
            .report(
                &caller.tenant_id,
                i64::from(first.unwrap_or(50)),
                after.as_deref(),
            )
            .await
            .map_err(ApiError)?;
        Ok(ComplianceReport(report))
    }

    /// AUDITOR, ADMIN. Commit-safe order (see AuditEvent.position), newest first unless
    /// `oldestFirst`.
    #[graphql(
        guard = "RoleGuard(ADMIN_AUDITOR)",
        complexity = "page_cost(first, child_complexity)"
    )]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilterGql>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
        #[graphql(default_with = "Some(false)")] oldest_first: Option<bool>,
    ) -> async_graphql::Result<AuditEventConnection> {
        let caller = key(ctx)?;
        let page = ctx
            .data_unchecked::<AuditService>()
            .page(
                &caller.tenant_id,
                filter.unwrap_or_default().into(),
                i64::from(first.unwrap_or(50)),
                after.as_deref(),
                oldest_first.unwrap_or(false),
            )
            .await
            .map_err(ApiError)?;
        Ok(AuditEventConnection(page))
    }
}

#[GqlSubscription]
impl Subscription {
    /// AUDITOR, ADMIN. New audit events of the key's tenant as they are recorded, in commit-safe
    /// order, masked like `auditEvents`. The stream ends if the key is revoked.
    #[graphql(guard = "RoleGuard(ADMIN_AUDITOR)")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilterGql>,
    ) -> async_graphql::Result<BoxStream<'static, AuditEvent>> {
        let caller = key(ctx)?;
        let live = ctx
            .data_unchecked::<AuditService>()
            .live(caller, filter.unwrap_or_default().into())
            .await
            .map_err(ApiError)?;
        let mut stop = ctx.data_unchecked::<Shutdown>().0.clone();
        let stopped = async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        };
        Ok(live.take_until(stopped).map(AuditEvent).boxed())
    }
}

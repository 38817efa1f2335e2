//! Mutations of the tenant: keys and policy.

use super::*;

#[Object]
impl TenantMutation {
    /// Operator token only. Returns the tenant and its first ADMIN key (secret shown once).
    #[graphql(guard = "OperatorGuard")]
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<CreatedTenant> {
        let created = tenants(ctx)
            .create_tenant(&name, None, request(ctx))
            .await
            .map_err(ApiError)?;
        Ok(created.into())
    }

    /// ADMIN.
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn issue_api_key(
        &self,
        ctx: &Context<'_>,
        role: RoleGql,
        label: String,
    ) -> async_graphql::Result<IssuedApiKey> {
        let issued = tenants(ctx)
            .issue_api_key(call(ctx)?, role.into(), &label)
            .await
            .map_err(ApiError)?;
        Ok(issued.into())
    }

    /// ADMIN.
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn revoke_api_key(&self, ctx: &Context<'_>, key_id: ID) -> async_graphql::Result<ApiKey> {
        let view = tenants(ctx)
            .revoke_api_key(call(ctx)?, &key_id)
            .await
            .map_err(ApiError)?;
        Ok(ApiKey(view))
    }

    /// ADMIN. Fields left null keep their current value.
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn set_policy(
        &self,
        ctx: &Context<'_>,
        input: PolicyInput,
    ) -> async_graphql::Result<Policy> {
        if let Some(limits) = ctx.data_opt::<std::sync::Arc<crate::rate_limit::RateLimits>>() {
            limits.check_policy_rate(input.requests_per_second_per_key())?;
        }
        let policy = tenants(ctx)
            .set_policy(call(ctx)?, input.into())
            .await
            .map_err(ApiError)?;
        Ok(Policy(policy))
    }
}

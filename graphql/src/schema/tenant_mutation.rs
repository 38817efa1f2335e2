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

    /// ADMIN. The tenant's own SMTP server, SMS provider and sender name (credentials sealed,
    /// never returned). Replaces all earlier settings: a channel left null goes back to the
    /// service's provider. Hosts must be public (`https://`, SMTP with TLS or STARTTLS).
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn set_delivery_settings(
        &self,
        ctx: &Context<'_>,
        input: DeliverySettingsInput,
    ) -> async_graphql::Result<DeliverySettings> {
        let settings = ctx
            .data_unchecked::<DeliverySettingsService>()
            .set(call(ctx)?, input.into())
            .await
            .map_err(ApiError)?;
        Ok(DeliverySettings(settings))
    }

    /// ADMIN. Back to the service's providers for every channel. True when done (also when
    /// nothing was set).
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn clear_delivery_settings(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        ctx.data_unchecked::<DeliverySettingsService>()
            .clear(call(ctx)?)
            .await
            .map_err(ApiError)?;
        Ok(true)
    }

    /// ADMIN. Sends a test message now (not queued) through the tenant's own provider of
    /// `channel` to `destination` and answers what the provider said. At most 10 per hour per
    /// tenant; recorded in the audit history (`DeliveryTested`, the destination masked).
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn test_delivery(
        &self,
        ctx: &Context<'_>,
        channel: ChannelGql,
        destination: String,
    ) -> async_graphql::Result<TestDeliveryResult> {
        let outcome = ctx
            .data_unchecked::<DeliverySettingsService>()
            .test(call(ctx)?, channel.into(), &destination)
            .await
            .map_err(ApiError)?;
        Ok(outcome.into())
    }
}

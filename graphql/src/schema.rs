//! The schema: queries and mutations of `shared/api.graphql` built so far.

use async_graphql::{Context, EmptySubscription, Object, Schema, SchemaBuilder, ID};
use twofold_services::tenants::TenantService;
use twofold_services::RequestContext;

use crate::error::ApiError;
use crate::guard::{key, OperatorGuard, RoleGuard, ADMIN, ANY_KEY};
use crate::types::{ApiKey, CreatedTenant, IssuedApiKey, Policy, PolicyInput, RoleGql, Tenant};

/// The executable schema.
pub type TwofoldSchema = Schema<Query, Mutation, EmptySubscription>;

/// Queries.
pub struct Query;

/// Mutations.
pub struct Mutation;

fn tenants<'a>(ctx: &Context<'a>) -> &'a TenantService {
    ctx.data_unchecked::<TenantService>()
}

fn request<'a>(ctx: &Context<'a>) -> &'a RequestContext {
    ctx.data_unchecked::<RequestContext>()
}

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
}

#[Object]
impl Mutation {
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
            .issue_api_key(key(ctx)?, role.into(), &label, request(ctx))
            .await
            .map_err(ApiError)?;
        Ok(issued.into())
    }

    /// ADMIN.
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn revoke_api_key(&self, ctx: &Context<'_>, key_id: ID) -> async_graphql::Result<ApiKey> {
        let view = tenants(ctx)
            .revoke_api_key(key(ctx)?, &key_id, request(ctx))
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
        let policy = tenants(ctx)
            .set_policy(key(ctx)?, input.into(), request(ctx))
            .await
            .map_err(ApiError)?;
        Ok(Policy(policy))
    }
}

/// The schema with its limits but without services: enough to export the SDL.
pub fn schema_builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription)
        .limit_depth(16)
        .limit_complexity(2_000)
        .limit_recursive_depth(32)
        .limit_directives(16)
}

/// The schema with the services its resolvers use.
pub fn build_schema(tenants: TenantService) -> TwofoldSchema {
    schema_builder().data(tenants).finish()
}

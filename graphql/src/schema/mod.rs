//! The schema: its root types, one module each (queries and the subscription, the tenant's
//! mutations, a user's), the helpers they share, and the schema's limits.

mod hosted_mutation;
mod query;
mod tenant_mutation;
mod user_mutation;

use async_graphql::{Context, Object, Schema, SchemaBuilder, Subscription as GqlSubscription, ID};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::watch;
use twofold_services::audit::AuditService;
use twofold_services::compliance::ComplianceService;
use twofold_services::delivery_settings::DeliverySettingsService;
use twofold_services::overview::OverviewService;
use twofold_services::tenants::TenantService;
use twofold_services::users::{ProofInput, UserService, VerifyInput};
use twofold_services::{RequestContext, ServiceError};

use crate::error::ApiError;
use crate::guard::{
    call, key, OperatorGuard, RoleGuard, ADMIN, ADMIN_AUDITOR, ANY_KEY, APP, APP_ADMIN,
};
use crate::proof_input::ProofInputGql;
use crate::types::{
    ApiKey, AuditEvent, AuditEventConnection, AuditFilterGql, Challenge, ChannelGql,
    ComplianceReport, CreatedTenant, DeliverySettings, DeliverySettingsInput, IssuedApiKey,
    MethodGql, Policy, PolicyInput, RecoveryCodes, RoleGql, SignInRequirement, Tenant,
    TestDeliveryResult, TotpEnrollment, UserErasure, UserTwoFactor, Verification,
    WebAuthnChallenge,
};

/// The executable schema.
pub type TwofoldSchema = Schema<Query, Mutation, Subscription>;

/// Queries.
pub struct Query;

/// Mutations: tenant administration and end-user 2FA.
#[derive(async_graphql::MergedObject, Default)]
pub struct Mutation(TenantMutation, UserMutation, HostedMutation);

/// Subscriptions: the live audit stream.
pub struct Subscription;

/// Turns true when the service stops: live streams end, so open WebSockets do not hold up a
/// graceful shutdown.
#[derive(Clone)]
pub struct Shutdown(pub watch::Receiver<bool>);

/// Tenant administration mutations.
#[derive(Default)]
pub struct TenantMutation;

/// End-user 2FA mutations.
#[derive(Default)]
pub struct UserMutation;

/// The hosted pages' mutations.
#[derive(Default)]
pub struct HostedMutation;

fn tenants<'a>(ctx: &Context<'a>) -> &'a TenantService {
    ctx.data_unchecked::<TenantService>()
}

fn users<'a>(ctx: &Context<'a>) -> &'a UserService {
    ctx.data_unchecked::<UserService>()
}

fn request<'a>(ctx: &Context<'a>) -> &'a RequestContext {
    ctx.data_unchecked::<RequestContext>()
}

/// The factor a caller presents as `method`, `code` and `challengeId` arguments.
fn factor(method: MethodGql, code: String, challenge_id: Option<ID>) -> ProofInput {
    ProofInput {
        method: method.into(),
        code,
        challenge_id: challenge_id.map(|c| c.0),
    }
}

/// A page costs its size (what its resolver reads and returns), plus what each item selects
/// once: `auditEvents(first: 500)` costs about 500 of the 2,000 a document may spend.
fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    usize::try_from(first.unwrap_or(50))
        .unwrap_or(0)
        .saturating_add(child_complexity)
}

/// The schema with its limits but without services: enough to export the SDL.
pub fn schema_builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query, Mutation::default(), Subscription)
        .limit_depth(16)
        .limit_complexity(2_000)
        .limit_recursive_depth(32)
        .limit_directives(16)
        // "Did you mean ...?" would name fields and types to callers that introspection
        // refuses (it needs a key).
        .disable_suggestions()
        .extension(crate::extension::Checks)
}

/// The services the resolvers use.
#[derive(Clone)]
pub struct ApiServices {
    /// Tenants, keys, policy.
    pub tenants: TenantService,
    /// End users' 2FA.
    pub users: UserService,
    /// Compliance reports.
    pub compliance: ComplianceService,
    /// The audit history.
    pub audit: AuditService,
    /// Tenants' own delivery providers.
    pub delivery_settings: DeliverySettingsService,
    /// The tenant overview.
    pub overview: OverviewService,
    /// The hosted pages' links and results.
    pub hosted: twofold_services::hosted::HostedPages,
}

/// The schema with the services its resolvers use; `shutdown` ends live subscriptions.
pub fn build_schema(services: ApiServices, shutdown: watch::Receiver<bool>) -> TwofoldSchema {
    let limits = crate::rate_limit::RateLimits::new(
        crate::rate_limit::RateLimitSettings::from_env(),
        services.tenants.clone(),
    );
    schema_builder()
        .data(std::sync::Arc::new(limits))
        .data(services.tenants)
        .data(services.users)
        .data(services.compliance)
        .data(services.audit)
        .data(services.delivery_settings)
        .data(services.overview)
        .data(services.hosted)
        .data(Shutdown(shutdown))
        .finish()
}

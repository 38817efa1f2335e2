//! The schema: queries and mutations of `shared/api.graphql` built so far.

use async_graphql::{Context, Object, Schema, SchemaBuilder, Subscription as GqlSubscription, ID};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::watch;
use twofold_domain::Role;
use twofold_services::audit::AuditService;
use twofold_services::compliance::ComplianceService;
use twofold_services::tenants::TenantService;
use twofold_services::users::{ProofInput, UserService, VerifyInput};
use twofold_services::RequestContext;

use crate::error::ApiError;
use crate::guard::{call, key, OperatorGuard, RoleGuard, ADMIN, ANY_KEY};
use crate::proof_input::ProofInputGql;
use crate::types::{
    ApiKey, AuditEvent, AuditEventConnection, AuditFilterGql, Challenge, ChannelGql,
    ComplianceReport, CreatedTenant, IssuedApiKey, MethodGql, Policy, PolicyInput, RecoveryCodes,
    RoleGql, SignInRequirement, Tenant, TotpEnrollment, UserTwoFactor, Verification,
};

/// The tenant's backend.
const APP: &[Role] = &[Role::App];
/// The tenant's backend and administrators.
const APP_ADMIN: &[Role] = &[Role::App, Role::Admin];
/// Administrators and auditors.
const ADMIN_AUDITOR: &[Role] = &[Role::Admin, Role::Auditor];

/// The executable schema.
pub type TwofoldSchema = Schema<Query, Mutation, Subscription>;

/// Queries.
pub struct Query;

/// Mutations: tenant administration and end-user 2FA.
#[derive(async_graphql::MergedObject, Default)]
pub struct Mutation(TenantMutation, UserMutation);

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

#[Object]
impl UserMutation {
    /// ADMIN. Removes every factor, recovery code and trusted device of the user.
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn reset_two_factor(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        reason: String,
    ) -> async_graphql::Result<UserTwoFactor> {
        let status = users(ctx)
            .reset(call(ctx)?, &user_id, &reason)
            .await
            .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }

    /// ADMIN. Ends a lockout early.
    #[graphql(guard = "RoleGuard(ADMIN)")]
    async fn clear_lockout(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        reason: String,
    ) -> async_graphql::Result<UserTwoFactor> {
        let status = users(ctx)
            .clear_lockout(call(ctx)?, &user_id, &reason)
            .await
            .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }

    /// APP. Registers an email address and sends it a verification code. When the user already
    /// has a factor, `proof` must prove one; a verified address keeps working until the new one
    /// is confirmed.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn add_email(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        email: String,
        proof: Option<ProofInputGql>,
    ) -> async_graphql::Result<Challenge> {
        let proof = proof.map(Into::into);
        let c = users(ctx)
            .add_email(call(ctx)?, &user_id, &email, proof.as_ref())
            .await
            .map_err(ApiError)?;
        Ok(c.into())
    }

    /// APP. Registers a phone number in international form (+<country code><number>) and sends
    /// it a verification code by SMS. When the user already has a factor, `proof` must prove
    /// one; a verified number keeps working until the new one is confirmed.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn add_phone(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        phone: String,
        proof: Option<ProofInputGql>,
    ) -> async_graphql::Result<Challenge> {
        let proof = proof.map(Into::into);
        let c = users(ctx)
            .add_phone(call(ctx)?, &user_id, &phone, proof.as_ref())
            .await
            .map_err(ApiError)?;
        Ok(c.into())
    }

    /// APP. Confirms a channel with the code sent by addEmail/addPhone. Returns recovery codes
    /// if this enabled 2FA for the user (null otherwise).
    #[graphql(guard = "RoleGuard(APP)")]
    async fn confirm_channel(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        challenge_id: ID,
        code: String,
        proof: Option<ProofInputGql>,
    ) -> async_graphql::Result<Option<RecoveryCodes>> {
        let proof = proof.map(Into::into);
        let codes = users(ctx)
            .confirm_channel(call(ctx)?, &user_id, &challenge_id, &code, proof.as_ref())
            .await
            .map_err(ApiError)?;
        Ok(codes.map(Into::into))
    }

    /// APP.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn set_preferred_channel(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        channel: ChannelGql,
    ) -> async_graphql::Result<UserTwoFactor> {
        let status = users(ctx)
            .set_preferred_channel(call(ctx)?, &user_id, channel.into())
            .await
            .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }

    /// APP. Sends a sign-in code by the given channel, or the user's preferred one.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn send_code(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        channel: Option<ChannelGql>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<Challenge> {
        let c = users(ctx)
            .send_code(
                call(ctx)?,
                &user_id,
                channel.map(Into::into),
                idempotency_key.as_deref(),
            )
            .await
            .map_err(ApiError)?;
        Ok(c.into())
    }

    /// APP. Starts (or restarts) TOTP enrollment; the factor is active only after confirmation.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn start_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        account_label: Option<String>,
    ) -> async_graphql::Result<TotpEnrollment> {
        let enrollment = users(ctx)
            .start_totp_enrollment(call(ctx)?, &user_id, account_label.as_deref())
            .await
            .map_err(ApiError)?;
        Ok(enrollment.into())
    }

    /// APP. Activates TOTP. Returns ten recovery codes, shown this once, when TOTP is the user's
    /// first factor; an empty list when it joins or replaces another factor (the codes the user
    /// saved stay valid). When the user already has a factor, `proof` must prove one.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn confirm_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        code: String,
        proof: Option<ProofInputGql>,
    ) -> async_graphql::Result<RecoveryCodes> {
        let proof = proof.map(Into::into);
        let codes = users(ctx)
            .confirm_totp_enrollment(call(ctx)?, &user_id, &code, proof.as_ref())
            .await
            .map_err(ApiError)?;
        Ok(codes.into())
    }

    /// APP. Checks a second factor at sign-in. For EMAIL and SMS, challengeId is required.
    #[graphql(guard = "RoleGuard(APP)")]
    #[allow(clippy::too_many_arguments)] // one per GraphQL argument
    async fn verify(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        method: MethodGql,
        code: String,
        challenge_id: Option<ID>,
        #[graphql(default_with = "Some(false)")] trust_device: Option<bool>,
        #[graphql(desc = "With trustDevice: what the user calls the device (1 to 64 characters).")]
        device_label: Option<String>,
    ) -> async_graphql::Result<Verification> {
        let verified = users(ctx)
            .verify(
                call(ctx)?,
                &user_id,
                VerifyInput {
                    factor: factor(method, code, challenge_id),
                    trust_device: trust_device.unwrap_or(false),
                    device_label,
                },
            )
            .await
            .map_err(ApiError)?;
        Ok(verified.into())
    }

    /// APP. Needs a current TOTP, email/SMS (with challengeId) or recovery code. Old codes stop
    /// working.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn regenerate_recovery_codes(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        method: MethodGql,
        code: String,
        challenge_id: Option<ID>,
    ) -> async_graphql::Result<RecoveryCodes> {
        let codes = users(ctx)
            .regenerate_recovery_codes(call(ctx)?, &user_id, &factor(method, code, challenge_id))
            .await
            .map_err(ApiError)?;
        Ok(codes.into())
    }

    /// APP. Needs a current code or a recovery code. Refused with POLICY_VIOLATION while the
    /// tenant enforces 2FA.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn disable_two_factor(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        method: MethodGql,
        code: String,
        challenge_id: Option<ID>,
    ) -> async_graphql::Result<UserTwoFactor> {
        let status = users(ctx)
            .disable(call(ctx)?, &user_id, &factor(method, code, challenge_id))
            .await
            .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }

    /// APP. Removes one factor (TOTP, EMAIL or SMS) after checking `proof`, and revokes the
    /// user's trusted devices. Removing the last factor turns 2FA off, which a policy that
    /// enforces 2FA refuses (POLICY_VIOLATION).
    #[graphql(guard = "RoleGuard(APP)")]
    async fn remove_factor(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        method: MethodGql,
        proof: ProofInputGql,
    ) -> async_graphql::Result<UserTwoFactor> {
        let status = users(ctx)
            .remove_factor(call(ctx)?, &user_id, method.into(), &proof.into())
            .await
            .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }

    /// APP.
    #[graphql(guard = "RoleGuard(APP)")]
    async fn revoke_trusted_device(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        device_id: ID,
    ) -> async_graphql::Result<UserTwoFactor> {
        let status = users(ctx)
            .revoke_trusted_device(call(ctx)?, &user_id, &device_id)
            .await
            .map_err(ApiError)?;
        Ok(UserTwoFactor(status))
    }
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
        .extension(crate::input_check::InputCheck)
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
}

/// The schema with the services its resolvers use; `shutdown` ends live subscriptions.
pub fn build_schema(services: ApiServices, shutdown: watch::Receiver<bool>) -> TwofoldSchema {
    let limits = crate::rate_limit::RateLimits::new(
        crate::rate_limit::RateLimitSettings::from_env(),
        services.tenants.clone(),
    );
    schema_builder()
        .extension(crate::rate_limit::RateLimit)
        .data(std::sync::Arc::new(limits))
        .data(services.tenants)
        .data(services.users)
        .data(services.compliance)
        .data(services.audit)
        .data(Shutdown(shutdown))
        .extension(crate::syntax_error::OneLineSyntaxErrors)
        .extension(crate::introspection::IntrospectionNeedsKey)
        .finish()
}

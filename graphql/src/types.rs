//! GraphQL object types, named as in `shared/api.graphql`.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use twofold_services::ports::{ApiKeyView, TenantView};
use twofold_services::tenants::{CreatedTenant as CreatedTenantData, IssuedKey, TenantService};

use crate::error::ApiError;

/// Key roles.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Role", remote = "twofold_domain::Role")]
pub enum RoleGql {
    /// The tenant's backend, acting for its end users.
    App,
    /// Organisation administrators.
    Admin,
    /// Read-only auditors.
    Auditor,
}

/// Second-factor methods.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Method", remote = "twofold_domain::Method")]
pub enum MethodGql {
    /// Authenticator app.
    Totp,
    /// Code by email.
    Email,
    /// Code by SMS.
    Sms,
    /// Recovery code.
    RecoveryCode,
}

/// A tenant.
pub struct Tenant(pub TenantView);

#[Object]
impl Tenant {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn policy(&self) -> Policy {
        Policy(self.0.policy.clone())
    }
    /// The tenant's API keys, revoked ones included. Each read costs 200 toward a document's
    /// complexity limit (2,000).
    #[graphql(complexity = 200)]
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>, ApiError> {
        let service = ctx.data_unchecked::<TenantService>();
        Ok(service
            .api_keys(&self.0.id)
            .await?
            .into_iter()
            .map(ApiKey)
            .collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// An API key (never its secret).
pub struct ApiKey(pub ApiKeyView);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn role(&self) -> RoleGql {
        self.0.role.into()
    }
    async fn label(&self) -> &str {
        &self.0.label
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

/// A key with its secret, shown once.
#[derive(SimpleObject)]
pub struct IssuedApiKey {
    key: ApiKey,
    secret: String,
}

impl From<IssuedKey> for IssuedApiKey {
    fn from(k: IssuedKey) -> Self {
        Self {
            key: ApiKey(k.key),
            secret: k.secret,
        }
    }
}

/// A new tenant and its first ADMIN key.
#[derive(SimpleObject)]
pub struct CreatedTenant {
    tenant: Tenant,
    admin_key: IssuedApiKey,
}

impl From<CreatedTenantData> for CreatedTenant {
    fn from(c: CreatedTenantData) -> Self {
        Self {
            tenant: Tenant(c.tenant),
            admin_key: c.admin_key.into(),
        }
    }
}

/// The tenant's 2FA policy.
pub struct Policy(pub twofold_domain::Policy);

#[Object]
impl Policy {
    async fn enforce_two_factor(&self) -> bool {
        self.0.enforce_two_factor
    }
    /// Users without 2FA may still sign in until this long after the policy was set (or they
    /// were first seen).
    async fn enrollment_grace_period_days(&self) -> i32 {
        i32::from(self.0.enrollment_grace_period_days)
    }
    async fn allowed_methods(&self) -> Vec<MethodGql> {
        self.0.allowed_methods.iter().map(|m| (*m).into()).collect()
    }
    /// Country calling codes phones may use, e.g. ["995"]. Empty means any.
    async fn allowed_calling_codes(&self) -> Vec<String> {
        self.0
            .allowed_calling_codes
            .iter()
            .map(ToString::to_string)
            .collect()
    }
    /// Sign-ins through the tenant's SSO skip the second factor (seed: SSO replaces 2FA).
    async fn sso_bypasses_two_factor(&self) -> bool {
        self.0.sso_bypasses_two_factor
    }
    async fn trusted_device_days(&self) -> i32 {
        i32::from(self.0.trusted_device_days)
    }
    async fn code_digits(&self) -> i32 {
        i32::from(self.0.code_digits)
    }
    async fn code_ttl_seconds(&self) -> i32 {
        i32::try_from(self.0.code_ttl_seconds).unwrap_or(i32::MAX)
    }
    async fn totp_digits(&self) -> i32 {
        i32::from(self.0.totp_digits)
    }
    async fn totp_algorithm(&self) -> &'static str {
        self.0.totp_algorithm.as_str()
    }
    /// Most SMS codes the tenant may send per hour (a cap on SMS-pumping fraud).
    async fn sms_hourly_budget(&self) -> i32 {
        i32::try_from(self.0.sms_hourly_budget).unwrap_or(i32::MAX)
    }
    /// Most email codes the tenant may send per hour (a cap on mail bombing).
    async fn email_hourly_budget(&self) -> i32 {
        i32::try_from(self.0.email_hourly_budget).unwrap_or(i32::MAX)
    }
    /// Requests per second each API key may make (bursts of twice that); null: the service's
    /// default.
    async fn requests_per_second_per_key(&self) -> Option<i32> {
        self.0
            .requests_per_second_per_key
            .map(|v| i32::try_from(v).unwrap_or(i32::MAX))
    }
}

/// A policy change; fields left null keep their current value.
#[derive(InputObject, Debug, Default)]
pub struct PolicyInput {
    enforce_two_factor: Option<bool>,
    enrollment_grace_period_days: Option<i32>,
    allowed_methods: Option<Vec<MethodGql>>,
    allowed_calling_codes: Option<Vec<String>>,
    sso_bypasses_two_factor: Option<bool>,
    trusted_device_days: Option<i32>,
    code_digits: Option<i32>,
    code_ttl_seconds: Option<i32>,
    totp_digits: Option<i32>,
    totp_algorithm: Option<String>,
    sms_hourly_budget: Option<i32>,
    email_hourly_budget: Option<i32>,
    /// Requests per second per API key, within the operator's bounds; 0: the service's default.
    requests_per_second_per_key: Option<i32>,
}

impl PolicyInput {
    /// The requested per-key rate, if any (checked against the operator's bounds).
    pub fn requests_per_second_per_key(&self) -> Option<i32> {
        self.requests_per_second_per_key
    }
}

impl From<PolicyInput> for twofold_domain::PolicyChange {
    fn from(i: PolicyInput) -> Self {
        Self {
            enforce_two_factor: i.enforce_two_factor,
            enrollment_grace_period_days: i.enrollment_grace_period_days.map(i64::from),
            allowed_methods: i
                .allowed_methods
                .map(|ms| ms.into_iter().map(Into::into).collect()),
            allowed_calling_codes: i.allowed_calling_codes,
            sso_bypasses_two_factor: i.sso_bypasses_two_factor,
            trusted_device_days: i.trusted_device_days.map(i64::from),
            code_digits: i.code_digits.map(i64::from),
            code_ttl_seconds: i.code_ttl_seconds.map(i64::from),
            totp_digits: i.totp_digits.map(i64::from),
            totp_algorithm: i.totp_algorithm,
            sms_hourly_budget: i.sms_hourly_budget.map(i64::from),
            email_hourly_budget: i.email_hourly_budget.map(i64::from),
            requests_per_second_per_key: i.requests_per_second_per_key.map(i64::from),
        }
    }
}

/// Delivery channels.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Channel", remote = "twofold_domain::channel::Channel")]
pub enum ChannelGql {
    /// Email.
    Email,
    /// SMS.
    Sms,
}

/// A remembered device.
#[derive(SimpleObject)]
pub struct TrustedDevice {
    id: ID,
    label: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// One end user's 2FA status.
pub struct UserTwoFactor(pub twofold_services::users::UserStatus);

#[Object]
impl UserTwoFactor {
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.as_str().to_owned())
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    async fn methods(&self) -> Vec<MethodGql> {
        self.0.methods.iter().map(|m| (*m).into()).collect()
    }
    async fn totp_pending(&self) -> bool {
        self.0.totp_pending
    }
    /// Masked, e.g. j***@example.com
    async fn email(&self) -> Option<&str> {
        self.0.email.as_ref().map(|(m, _)| m.as_str())
    }
    async fn email_verified(&self) -> bool {
        self.0.email.as_ref().is_some_and(|(_, v)| *v)
    }
    /// Masked, e.g. +995 *** ** 12 34
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_ref().map(|(m, _)| m.as_str())
    }
    async fn phone_verified(&self) -> bool {
        self.0.phone.as_ref().is_some_and(|(_, v)| *v)
    }
    async fn preferred_channel(&self) -> Option<ChannelGql> {
        self.0.preferred_channel.map(Into::into)
    }
    async fn recovery_codes_remaining(&self) -> i32 {
        i32::try_from(self.0.recovery_codes_remaining).unwrap_or(i32::MAX)
    }
    async fn locked_until(&self) -> Option<DateTime<Utc>> {
        self.0.locked_until
    }
    async fn trusted_devices(&self) -> Vec<TrustedDevice> {
        self.0
            .trusted_devices
            .iter()
            .map(|d| TrustedDevice {
                id: ID(d.id.clone()),
                label: d.label.clone(),
                created_at: d.created_at,
                expires_at: d.expires_at,
            })
            .collect()
    }
    async fn last_verified_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_verified_at
    }
    /// The latest one-time codes sent (newest first), with where their delivery stands.
    async fn recent_challenges(&self) -> Vec<Challenge> {
        self.0
            .recent_challenges
            .iter()
            .cloned()
            .map(Challenge::from)
            .collect()
    }
}

/// What an authenticator app needs, shown once.
#[derive(SimpleObject)]
pub struct TotpEnrollment {
    /// Base32, for manual entry.
    secret: String,
    otpauth_uri: String,
    /// data:image/png;base64,...
    qr_png: String,
    qr_svg: String,
    algorithm: String,
    digits: i32,
    period: i32,
}

impl From<twofold_services::users::TotpEnrollment> for TotpEnrollment {
    fn from(e: twofold_services::users::TotpEnrollment) -> Self {
        Self {
            secret: e.provisioning.secret_base32,
            otpauth_uri: e.provisioning.uri,
            qr_png: e.provisioning.qr_png_data_uri,
            qr_svg: e.provisioning.qr_svg,
            algorithm: e.params.algorithm.as_str().to_owned(),
            digits: i32::from(e.params.digits),
            period: i32::try_from(e.params.period).unwrap_or(i32::MAX),
        }
    }
}

/// Recovery codes, shown once.
#[derive(SimpleObject)]
pub struct RecoveryCodes {
    codes: Vec<String>,
}

impl From<twofold_services::users::RecoveryCodes> for RecoveryCodes {
    fn from(c: twofold_services::users::RecoveryCodes) -> Self {
        Self { codes: c.0 }
    }
}

/// A successful second-factor check.
#[derive(SimpleObject)]
pub struct Verification {
    method: MethodGql,
    /// Set when trustDevice was true: present it as signInRequirement(deviceToken:) later.
    device_token: Option<String>,
    recovery_codes_remaining: i32,
}

impl From<twofold_services::users::Verified> for Verification {
    fn from(v: twofold_services::users::Verified) -> Self {
        Self {
            method: v.method.into(),
            device_token: v.device_token.map(|t| t.to_string()),
            recovery_codes_remaining: i32::try_from(v.recovery_codes_remaining).unwrap_or(i32::MAX),
        }
    }
}

/// Why a code was sent.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Purpose", remote = "twofold_domain::channel::Purpose")]
pub enum PurposeGql {
    /// A second factor at sign-in.
    SignIn,
    /// Proving a new email address or phone number.
    VerifyChannel,
}

/// A one-time code on its way.
#[derive(SimpleObject)]
pub struct Challenge {
    id: ID,
    channel: ChannelGql,
    purpose: PurposeGql,
    /// Masked destination
    sent_to: String,
    expires_at: DateTime<Utc>,
    /// Where the message is: PENDING, DELIVERED or FAILED (delivery happens after the request).
    delivery: DeliveryGql,
}

/// Delivery state of a one-time code.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "Delivery", remote = "twofold_domain::user::DeliveryState")]
pub enum DeliveryGql {
    /// Not yet accepted by the provider.
    Pending,
    /// Accepted by the provider.
    Delivered,
    /// Given up after retries, or refused.
    Failed,
}

impl From<twofold_services::users::ChallengeView> for Challenge {
    fn from(c: twofold_services::users::ChallengeView) -> Self {
        Self {
            id: ID(c.id),
            channel: c.channel.into(),
            purpose: c.purpose.into(),
            sent_to: c.sent_to,
            expires_at: c.expires_at,
            delivery: c.delivery.into(),
        }
    }
}

/// Whether a sign-in needs a second factor, and why.
pub struct SignInRequirement(pub twofold_domain::user::SignInDecision);

#[Object]
impl SignInRequirement {
    async fn required(&self) -> bool {
        self.0.required
    }
    async fn methods(&self) -> Vec<MethodGql> {
        self.0.methods.iter().map(|m| (*m).into()).collect()
    }
    /// One of: NOT_ENROLLED, ENROLLED, POLICY_ENFORCED, GRACE_PERIOD, TRUSTED_DEVICE, SSO_BYPASS, LOCKED_OUT, ENROLLMENT_REQUIRED
    async fn reason(&self) -> &'static str {
        self.0.reason.as_str()
    }
    async fn locked_until(&self) -> Option<DateTime<Utc>> {
        self.0.locked_until
    }
    /// When 2FA is enforced and the user has none: the end of their grace period.
    async fn grace_ends_at(&self) -> Option<DateTime<Utc>> {
        self.0.grace_ends_at
    }
    /// The trusted device that was recognised (its id, as in `UserTwoFactor.trustedDevices`).
    async fn trusted_device_id(&self) -> Option<ID> {
        self.0.trusted_device.clone().map(ID)
    }
}

/// A user without 2FA.
#[derive(SimpleObject)]
pub struct NonCompliantUser {
    user_id: ID,
    first_seen_at: DateTime<Utc>,
    grace_ends_at: Option<DateTime<Utc>>,
}

/// Who in the tenant has 2FA and who does not yet.
pub struct ComplianceReport(pub twofold_services::compliance::ComplianceReport);

#[Object]
impl ComplianceReport {
    async fn enforced(&self) -> bool {
        self.0.enforced
    }
    /// When enforcement was last turned on (null while not enforced).
    async fn enforced_since(&self) -> Option<DateTime<Utc>> {
        self.0.enforced_since
    }
    async fn total_users(&self) -> i32 {
        i32::try_from(self.0.total_users).unwrap_or(i32::MAX)
    }
    async fn enrolled_users(&self) -> i32 {
        i32::try_from(self.0.enrolled_users).unwrap_or(i32::MAX)
    }
    /// Users without 2FA, soonest grace end first (all of them, with a null graceEndsAt, while
    /// 2FA is not enforced).
    async fn non_compliant(&self) -> Vec<NonCompliantUser> {
        self.0
            .non_compliant
            .iter()
            .map(|u| NonCompliantUser {
                user_id: ID(u.user_id.as_str().to_owned()),
                first_seen_at: u.first_seen_at,
                grace_ends_at: u.grace_ends_at,
            })
            .collect()
    }
    async fn end_cursor(&self) -> Option<&str> {
        self.0.end_cursor.as_deref()
    }
    async fn has_next_page(&self) -> bool {
        self.0.has_next_page
    }
}

/// Which audit events to show. The tenant is always the key's own.
#[derive(InputObject, Debug, Default, Clone)]
#[graphql(name = "AuditFilter")]
pub struct AuditFilterGql {
    /// Only this user's events.
    pub user_id: Option<ID>,
    /// Only these event types (e.g. `CodeSent`); unknown names are INVALID_INPUT.
    pub event_types: Option<Vec<String>>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

impl From<AuditFilterGql> for twofold_services::audit::AuditFilterInput {
    fn from(f: AuditFilterGql) -> Self {
        Self {
            user_id: f.user_id.map(|id| id.0),
            event_types: f.event_types,
            from: f.from,
            to: f.to,
        }
    }
}

/// One recorded event, as an auditor may see it.
pub struct AuditEvent(pub twofold_services::audit::AuditRecord);

#[Object]
impl AuditEvent {
    /// The event's global position (a decimal number). Events come in commit-safe order
    /// (transaction, then position): an event that commits after a page was read never appears
    /// behind that page's cursor.
    async fn position(&self) -> String {
        self.0.position.to_string()
    }
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    async fn user_id(&self) -> Option<ID> {
        self.0.user_id.clone().map(ID)
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    /// { keyId, role } or { operator: true }; { system: true } for what the service records
    /// itself (the delivery worker's CodeDelivered and CodeDeliveryFailed).
    async fn actor(&self) -> async_graphql::Json<serde_json::Value> {
        async_graphql::Json(self.0.actor.clone())
    }
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
    /// Event fields with secrets, codes, hashes and raw PII removed or masked.
    async fn data(&self) -> async_graphql::Json<serde_json::Value> {
        async_graphql::Json(self.0.data.clone())
    }
}

/// A page of audit events.
pub struct AuditEventConnection(pub twofold_services::audit::AuditPage);

#[Object]
impl AuditEventConnection {
    async fn nodes(&self) -> Vec<AuditEvent> {
        self.0.records.iter().cloned().map(AuditEvent).collect()
    }
    async fn end_cursor(&self) -> Option<&str> {
        self.0.end_cursor.as_deref()
    }
    async fn has_next_page(&self) -> bool {
        self.0.has_next_page
    }
}

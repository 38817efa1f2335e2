//! The tenant, its keys and its policy.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use twofold_services::overview::OverviewService;
use twofold_services::ports::{ApiKeyView, TenantView};
use twofold_services::tenants::{CreatedTenant as CreatedTenantData, IssuedKey, TenantService};

use crate::error::ApiError;

use super::{MethodGql, RoleGql, WebAuthnInput, WebAuthnRelyingParty};

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
    /// ADMIN, AUDITOR. The tenant's own delivery providers, masked (never a credential); null
    /// when it uses the service's.
    #[graphql(guard = "crate::guard::RoleGuard(crate::guard::ADMIN_AUDITOR)")]
    async fn delivery_settings(&self) -> Option<super::DeliverySettings> {
        self.0.delivery.clone().map(super::DeliverySettings)
    }
    /// ADMIN, AUDITOR. Users seen, enrolled, in grace and locked out now, and sign-ins and
    /// wrong codes per UTC day for the last `days` days (1 to 90, today included). Each read
    /// costs 200 toward a document's complexity limit (2,000).
    #[graphql(
        guard = "crate::guard::RoleGuard(crate::guard::ADMIN_AUDITOR)",
        complexity = 200
    )]
    async fn overview(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 30)] days: Option<i32>,
    ) -> async_graphql::Result<super::TenantOverview> {
        // The caller's key names the tenant (the same one this object shows).
        let caller = crate::guard::key(ctx)?;
        let overview = ctx
            .data_unchecked::<OverviewService>()
            .overview(caller, i64::from(days.unwrap_or(30)))
            .await
            .map_err(ApiError)?;
        Ok(super::TenantOverview(overview))
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
    /// The relying party of passkeys and security keys; null until set.
    async fn web_authn(&self) -> Option<WebAuthnRelyingParty> {
        self.0.web_authn.clone().map(WebAuthnRelyingParty)
    }
    /// The language (BCP 47 tag) of codes and notices to users who chose none; null: English.
    async fn default_locale(&self) -> Option<&str> {
        self.0.default_locale.as_ref().map(|l| l.as_str())
    }
    /// The site users sign in on (an https origin); SMS codes end with its autofill line
    /// (`@host #123456`). Null: no autofill line.
    async fn web_origin(&self) -> Option<&str> {
        self.0.web_origin.as_ref().map(|o| o.as_str())
    }
    /// Users are told, at their verified email address (else phone number), when their 2FA
    /// changes: a factor added, replaced or removed, 2FA turned off or reset, a recovery code
    /// used, a device trusted, a lockout. On unless turned off.
    async fn security_notifications(&self) -> bool {
        self.0.security_notifications
    }
    /// Where the hosted pages may send users back (`createUserSession`'s `returnUrl` must be on
    /// one of these origins); empty: the hosted pages cannot be used.
    async fn return_origins(&self) -> Vec<&str> {
        self.0.return_origins.iter().map(|o| o.as_str()).collect()
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
    /// The relying party of passkeys and security keys (needed to allow WEBAUTHN).
    web_authn: Option<WebAuthnInput>,
    /// The language of users who chose none: a BCP 47 tag of a supported language (en, ka,
    /// de, fr, es; a region such as de-CH is kept); "" removes it (English).
    default_locale: Option<String>,
    /// The site users sign in on, an https origin such as https://login.example.com (a domain
    /// of at most 40 characters, no port or path): SMS codes then end with the one-time-code
    /// autofill line "@login.example.com #123456". "" removes it.
    web_origin: Option<String>,
    /// Send users security notices when their 2FA changes (on by default).
    security_notifications: Option<bool>,
    /// Where the hosted pages may send users back: origins such as https://app.example.com
    /// (https with a domain name, or http://localhost; at most 10). Replaces the list; []
    /// empties it.
    return_origins: Option<Vec<String>>,
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
            web_authn: i.web_authn.map(Into::into),
            default_locale: i.default_locale,
            web_origin: i.web_origin,
            security_notifications: i.security_notifications,
            return_origins: i.return_origins,
        }
    }
}

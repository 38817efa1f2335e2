//! Tenant use-cases: create a tenant, issue and revoke its keys, set its policy, read it back.

use std::sync::Arc;

use twofold_domain::tenant::{NewApiKey, Tenant, TenantCommand};
use twofold_domain::user::UserRef;
use twofold_domain::{
    ApiKeyId, KeyLabel, Policy, PolicyChange, Reason, Role, TenantId, TenantName,
};

use crate::auth::Authenticator;
use crate::commands::Commands;
use crate::encoding::base32_lower;
use crate::ports::{ApiKeyView, Clock, Entropy, Sealer, TenantDirectory, TenantView};
use crate::send_limits::BudgetCeilings;
use crate::{Actor, Call, RequestContext, ServiceError};

/// A key as issued: its view plus the secret, which is never retrievable again.
#[derive(Clone)]
pub struct IssuedKey {
    /// The stored view.
    pub key: ApiKeyView,
    /// The whole key.
    pub secret: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A new tenant with its first ADMIN key.
#[derive(Debug, Clone)]
pub struct CreatedTenant {
    pub tenant: TenantView,
    /// Its first ADMIN key.
    pub admin_key: IssuedKey,
}

/// Tenant use-cases.
#[derive(Clone)]
pub struct TenantService {
    commands: Commands<Tenant>,
    directory: Arc<dyn TenantDirectory>,
    auth: Arc<Authenticator>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    sealer: Arc<dyn Sealer>,
    ceilings: BudgetCeilings,
}

fn view_key(tenant: &TenantId, id: &ApiKeyId, state: &Tenant) -> Result<ApiKeyView, ServiceError> {
    let key = state
        .keys()
        .get(id)
        .ok_or_else(|| ServiceError::NotFound(format!("API key {id} not found")))?;
    Ok(ApiKeyView {
        id: id.clone(),
        tenant_id: tenant.clone(),
        role: key.role,
        label: key.label.to_string(),
        created_at: key.created_at,
        revoked_at: key.revoked_at,
    })
}

impl TenantService {
    /// Wires the use-cases to their ports.
    pub fn new(
        commands: Commands<Tenant>,
        directory: Arc<dyn TenantDirectory>,
        auth: Arc<Authenticator>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        sealer: Arc<dyn Sealer>,
    ) -> Self {
        Self {
            commands,
            directory,
            auth,
            clock,
            entropy,
            sealer,
            ceilings: BudgetCeilings::default(),
        }
    }

    /// Refuses hourly budgets above the operator's ceilings.
    pub fn with_budget_ceilings(mut self, ceilings: BudgetCeilings) -> Self {
        self.ceilings = ceilings;
        self
    }

    /// Erases a tenant (operator only: `twofold tenant erase`): revokes every API key and
    /// records `TenantErased`, then destroys the data keys of the tenant and all its users, so
    /// nothing sealed for them opens again. Returns how many data keys went; erasing again
    /// finishes a destruction that failed after the record.
    pub async fn erase_tenant(
        &self,
        tenant_id: &str,
        reason: &str,
        ctx: &RequestContext,
    ) -> Result<u64, ServiceError> {
        let tenant_id = TenantId::parse(tenant_id).map_err(ServiceError::invalid)?;
        let reason = Reason::parse(reason).map_err(ServiceError::invalid)?;
        self.commands
            .execute(
                &tenant_id.tenant_aggregate_id(),
                TenantCommand::Erase {
                    reason,
                    at: self.clock.now(),
                },
                ctx.metadata(&tenant_id, &Actor::Operator),
            )
            .await?;
        Ok(self.sealer.erase_tenant(&tenant_id).await?)
    }

    /// `twofold keys reseal` for one tenant, first half: every listed user's first-format
    /// seals, then the delivery settings, sealed again under the new keys. Returns how many
    /// moved. Safe to run while the service runs, and again.
    pub async fn reseal(
        &self,
        users: &crate::users::UserService,
        tenant: &TenantId,
        user_ids: &[twofold_domain::UserId],
        ctx: &RequestContext,
    ) -> Result<usize, ServiceError> {
        let mut moved = 0;
        for user in user_refs(tenant, user_ids) {
            moved += users.reseal(&user, ctx).await?;
        }
        Ok(moved + usize::from(self.reseal_settings(tenant, ctx).await?))
    }

    /// Second half: destroys the tenant's first-format key if nothing in use is sealed under it
    /// any more, so what the history holds sealed under it (old addresses and secrets, in events
    /// and snapshots) no longer opens either. `user_ids` must be listed afresh, after the first
    /// half (a user created meanwhile by an instance on an older version counts), and
    /// `unlisted` counts users whose id could not be read (each counts as one seal left).
    /// Returns what was left, and whether the key was destroyed.
    pub async fn retire_first_format_key(
        &self,
        users: &crate::users::UserService,
        tenant: &TenantId,
        user_ids: &[twofold_domain::UserId],
        unlisted: usize,
    ) -> Result<(usize, bool), ServiceError> {
        let mut left = unlisted;
        for user in user_refs(tenant, user_ids) {
            left += users.first_format_seals(&user).await?;
        }
        let state = self.load(tenant).await?;
        left += usize::from(
            state
                .delivery()
                .is_some_and(|d| self.sealer.needs_reseal(&d.sealed)),
        );
        if left > 0 {
            return Ok((left, false));
        }
        Ok((0, self.sealer.retire_first_format_key(tenant).await?))
    }

    /// The delivery settings sealed again under the tenant's new key, if they are in the first
    /// format (recorded as a change to the same settings).
    async fn reseal_settings(
        &self,
        tenant: &TenantId,
        ctx: &RequestContext,
    ) -> Result<bool, ServiceError> {
        let state = self.load(tenant).await?;
        let Some(delivery) = state
            .delivery()
            .filter(|d| self.sealer.needs_reseal(&d.sealed))
        else {
            return Ok(false);
        };
        let context = crate::delivery_settings::settings_context(tenant);
        let value = self.sealer.open(tenant, &context, &delivery.sealed).await?;
        let sealed = self.sealer.seal(tenant, &context, &value).await?;
        self.commands
            .execute(
                &tenant.tenant_aggregate_id(),
                TenantCommand::SetDeliverySettings {
                    settings: Some((delivery.facts.clone(), sealed)),
                    at: self.clock.now(),
                },
                ctx.metadata(tenant, &Actor::Operator),
            )
            .await?;
        Ok(true)
    }

    async fn load(&self, tenant: &TenantId) -> Result<Tenant, ServiceError> {
        self.commands
            .load(&tenant.tenant_aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)
    }

    /// Creates a tenant with a server-minted id (or `requested_id`, for the zero-config `demo`
    /// tenant and the CLI) and its first ADMIN key. Operator only: callers check that.
    pub async fn create_tenant(
        &self,
        name: &str,
        requested_id: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<CreatedTenant, ServiceError> {
        let name = TenantName::parse(name).map_err(ServiceError::invalid)?;
        let tenant_id = match requested_id {
            Some(id) => TenantId::parse(id).map_err(ServiceError::invalid)?,
            None => self.mint_tenant_id()?,
        };
        let minted = self.auth.mint_key()?;
        let label = KeyLabel::parse("first admin key").map_err(ServiceError::invalid)?;
        let command = TenantCommand::Register {
            tenant_id: tenant_id.clone(),
            name,
            first_admin_key: NewApiKey {
                id: minted.id.clone(),
                role: Role::Admin,
                label,
                hash: minted.hash,
            },
            at: self.clock.now(),
        };
        let executed = self
            .commands
            .execute(
                &tenant_id.tenant_aggregate_id(),
                command,
                ctx.metadata(&tenant_id, &Actor::Operator),
            )
            .await?;
        let state = executed.state;
        let tenant = TenantView {
            id: tenant_id.clone(),
            name: state.name().map(ToString::to_string).unwrap_or_default(),
            policy: state.policy().clone(),
            created_at: state.created_at().unwrap_or_else(|| self.clock.now()),
            enforced_since: state
                .policy()
                .enforce_two_factor
                .then(|| state.created_at().unwrap_or_else(|| self.clock.now())),
            delivery: None,
        };
        Ok(CreatedTenant {
            admin_key: IssuedKey {
                key: view_key(&tenant_id, &minted.id, &state)?,
                secret: minted.secret,
            },
            tenant,
        })
    }

    /// Issues a key of `role` in the caller's tenant.
    pub async fn issue_api_key(
        &self,
        call: &Call,
        role: Role,
        label: &str,
    ) -> Result<IssuedKey, ServiceError> {
        let label = KeyLabel::parse(label).map_err(ServiceError::invalid)?;
        let minted = self.auth.mint_key()?;
        let command = TenantCommand::IssueApiKey {
            key: NewApiKey {
                id: minted.id.clone(),
                role,
                label,
                hash: minted.hash,
            },
            at: self.clock.now(),
        };
        let state = self.run(call, command).await?;
        Ok(IssuedKey {
            key: view_key(call.tenant(), &minted.id, &state)?,
            secret: minted.secret,
        })
    }

    /// Revokes a key of the caller's tenant. A key of another tenant is simply not found.
    pub async fn revoke_api_key(
        &self,
        call: &Call,
        key_id: &str,
    ) -> Result<ApiKeyView, ServiceError> {
        let key_id = ApiKeyId::parse(key_id)
            .map_err(|_| ServiceError::NotFound("API key not found".into()))?;
        let command = TenantCommand::RevokeApiKey {
            key_id: key_id.clone(),
            at: self.clock.now(),
        };
        let state = self.run(call, command).await?;
        view_key(call.tenant(), &key_id, &state)
    }

    /// Changes the caller's tenant policy; all of `change` is applied or none of it.
    pub async fn set_policy(
        &self,
        call: &Call,
        change: PolicyChange,
    ) -> Result<Policy, ServiceError> {
        for (field, asked, ceiling) in [
            (
                "smsHourlyBudget",
                change.sms_hourly_budget,
                self.ceilings.sms,
            ),
            (
                "emailHourlyBudget",
                change.email_hourly_budget,
                self.ceilings.email,
            ),
        ] {
            if asked.is_some_and(|n| n > i64::from(ceiling)) {
                return Err(ServiceError::InvalidInput(format!(
                    "{field} may be at most {ceiling} (set by the operator)"
                )));
            }
        }
        let command = TenantCommand::SetPolicy {
            change: Box::new(change),
            at: self.clock.now(),
        };
        let state = self.run(call, command).await?;
        Ok(state.policy().clone())
    }

    /// The tenant, from the read model.
    pub async fn tenant(&self, id: &TenantId) -> Result<TenantView, ServiceError> {
        self.directory
            .tenant(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("tenant not found".into()))
    }

    /// The tenant's keys, from the read model.
    pub async fn api_keys(&self, id: &TenantId) -> Result<Vec<ApiKeyView>, ServiceError> {
        Ok(self.directory.api_keys(id).await?)
    }

    async fn run(&self, call: &Call, command: TenantCommand) -> Result<Tenant, ServiceError> {
        let tenant = call.tenant();
        let executed = self
            .commands
            .execute(&tenant.tenant_aggregate_id(), command, call.metadata())
            .await;
        // Whatever happened, this instance reads the tenant and its keys afresh from now on
        // (a revoked key stops working here before the response says it is revoked).
        self.directory.invalidate(tenant);
        Ok(Arc::unwrap_or_clone(executed?.state))
    }

    fn mint_tenant_id(&self) -> Result<TenantId, ServiceError> {
        let mut bytes = [0u8; 8];
        self.entropy.fill(&mut bytes);
        // "t" + 13 base32 characters: 64 random bits, always a valid tenant id.
        TenantId::parse(&format!("t{}", base32_lower(&bytes)))
            .map_err(|e| ServiceError::Internal(Box::new(e)))
    }
}

fn user_refs(tenant: &TenantId, user_ids: &[twofold_domain::UserId]) -> Vec<UserRef> {
    user_ids
        .iter()
        .map(|user| UserRef {
            tenant: tenant.clone(),
            user: user.clone(),
        })
        .collect()
}

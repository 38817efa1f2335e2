//! End-user 2FA use-cases, one file per flow: TOTP enrollment (`enrollment.rs`), email and SMS
//! channels and their codes (`channels.rs`), sign-in decisions and verification (`sign_in.rs`),
//! trusted devices (`devices.rs`), factor changes and recovery codes (`factors.rs`), the admin's
//! reset and lockout clearing (`admin.rs`), the delivery worker's side (`delivery.rs`), and
//! passkeys and security keys (`webauthn.rs`).
//! Every command goes through `run.rs`; what the aggregate needs from the outside is in
//! `crypto.rs`, what callers pass in `inputs.rs`, what queries return in `views.rs`, and how
//! refusals become API errors in `errors.rs`. `tests/` runs the flows without a database.

use std::sync::Arc;

use twofold_domain::user::{Proof, User, UserRef};
use twofold_domain::{Method, TenantId, UserId};

use crate::commands::Commands;
use crate::ports::{Clock, Entropy, SendLimiter, TenantDirectory, TenantView};
use crate::send_limits::{BudgetCeilings, SendLimits};
use crate::ServiceError;

mod admin;
pub use admin::Erasure;
mod channels;
mod crypto;
mod delivery;
mod devices;
mod enrollment;
mod errors;
mod factors;
mod inputs;
mod notices;
mod reseal;
mod run;
mod sign_in;
#[cfg(test)]
mod tests;
mod views;
mod webauthn;

pub use crypto::{contact_context, UserCrypto};
pub use inputs::{ProofInput, VerifyInput};
pub use views::{
    ChallengeView, QrPictures, RecoveryCodes, TotpEnrollment, TrustedDeviceView, UserStatus,
    Verified, WebAuthnCredentialView,
};
pub use webauthn::WebAuthnChallengeView;

/// User 2FA use-cases.
#[derive(Clone)]
pub struct UserService {
    commands: Commands<User>,
    crypto: Arc<UserCrypto>,
    tenants: Arc<dyn TenantDirectory>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    limits: SendLimits,
}

/// What [`UserService`] is wired to.
pub struct UserPorts {
    /// Runs commands on user aggregates.
    pub commands: Commands<User>,
    /// The same `UserCrypto` the command gateway hands the aggregate.
    pub crypto: Arc<UserCrypto>,
    /// Tenants and their policies.
    pub tenants: Arc<dyn TenantDirectory>,
    /// Command times, expiries.
    pub clock: Arc<dyn Clock>,
    /// Secrets, ids, recovery codes, device tokens.
    pub entropy: Arc<dyn Entropy>,
    /// Counts sends against the send caps.
    pub limiter: Arc<dyn SendLimiter>,
}

fn parse_user(tenant: &TenantId, user_id: &str) -> Result<UserRef, ServiceError> {
    Ok(UserRef {
        tenant: tenant.clone(),
        user: UserId::parse(user_id).map_err(ServiceError::invalid)?,
    })
}

fn proof(method: Method, code: &str, challenge_id: Option<&str>) -> Result<Proof, ServiceError> {
    // A WebAuthn assertion is the browser's JSON, not a typed code.
    let too_long = match method {
        Method::WebAuthn => code.len() > webauthn::MAX_WEBAUTHN_JSON_BYTES,
        _ => code.chars().count() > 64,
    };
    if too_long {
        return Err(ServiceError::InvalidInput("code is too long".into()));
    }
    Ok(Proof {
        method,
        code: code.to_owned(),
        challenge_id: challenge_id.map(str::to_owned),
    })
}

impl UserService {
    /// Wires the use-cases to their ports.
    pub fn new(ports: UserPorts) -> Self {
        let UserPorts {
            commands,
            crypto,
            tenants,
            clock,
            entropy,
            limiter,
        } = ports;
        Self {
            limits: SendLimits::new(limiter, crypto.hasher.clone()),
            commands,
            crypto,
            tenants,
            clock,
            entropy,
        }
    }

    /// Holds tenants' hourly budgets to the operator's ceilings.
    pub fn with_budget_ceilings(mut self, ceilings: BudgetCeilings) -> Self {
        self.limits.ceilings = ceilings;
        self
    }

    pub(super) async fn tenant(&self, id: &TenantId) -> Result<TenantView, ServiceError> {
        self.tenants
            .tenant(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("tenant not found".into()))
    }

    /// Refuses a method the tenant's policy does not allow (enrolling, sending or verifying).
    pub(super) async fn allowed(
        &self,
        tenant: &TenantId,
        method: Method,
    ) -> Result<TenantView, ServiceError> {
        let tenant = self.tenant(tenant).await?;
        Self::require_method(&tenant.policy, method)?;
        Ok(tenant)
    }

    pub(super) fn require_method(
        policy: &twofold_domain::Policy,
        method: Method,
    ) -> Result<(), ServiceError> {
        if policy.allows(method) {
            Ok(())
        } else {
            Err(ServiceError::PolicyViolation(format!(
                "the organisation's policy does not allow {method}"
            )))
        }
    }

    /// The user's status; `None` when the tenant has never enrolled anything for them.
    pub async fn status(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Option<UserStatus>, ServiceError> {
        let user = parse_user(tenant, user_id)?;
        let state = self
            .commands
            .load(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)?;
        Ok(state
            .exists()
            .then(|| UserStatus::of(&user.user, &state, self.clock.now())))
    }
}

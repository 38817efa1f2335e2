//! End-user 2FA use-cases: TOTP enrollment, sign-in verification, recovery codes, disabling,
//! and the admin's reset and lockout clearing.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use twofold_domain::secrets::{SealedSecret, TotpParams};
use twofold_domain::tenant::KeyedHash;
use twofold_domain::user::{
    normalize_recovery_code, Proof, ServicesError, User, UserAction, UserCommand, UserError,
    UserEvent, UserRef, UserServices, FAILURES_PER_LOCKOUT, RECOVERY_CODES,
};
use twofold_domain::{Method, Reason, TenantId, UserId};

use crate::auth::KeyPrincipal;
use crate::commands::Commands;
use crate::encoding::base32_lower;
use crate::ports::{
    Clock, Entropy, Sealer, SecretHasher, TenantDirectory, TenantView, TotpEngine, TotpProvisioning,
};
use crate::{RequestContext, ServiceError};

const RECOVERY_HASH_PURPOSE: &str = "recovery-code";
/// TOTP secrets are 160 bits (RFC 4226 §4 recommends it; what authenticator apps expect).
const TOTP_SECRET_BYTES: usize = 20;
/// Longest account label accepted.
const MAX_LABEL_CHARS: usize = 100;

/// The seal context of a user's TOTP secret: a sealed secret only opens for its own user.
fn totp_context(user: &UserRef) -> String {
    format!("{}/totp", user.aggregate_id())
}

/// What the user aggregate needs from the outside: sealing, TOTP and keyed hashing.
pub struct UserCrypto {
    sealer: Arc<dyn Sealer>,
    totp: Arc<dyn TotpEngine>,
    hasher: Arc<dyn SecretHasher>,
}

impl UserCrypto {
    /// Wires the aggregate's services.
    pub fn new(
        sealer: Arc<dyn Sealer>,
        totp: Arc<dyn TotpEngine>,
        hasher: Arc<dyn SecretHasher>,
    ) -> Self {
        Self {
            sealer,
            totp,
            hasher,
        }
    }
}

#[async_trait]
impl UserServices for UserCrypto {
    async fn totp_step(
        &self,
        user: &UserRef,
        secret: &SealedSecret,
        params: &TotpParams,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<u64>, ServicesError> {
        let secret = self
            .sealer
            .open(&user.tenant, &totp_context(user), secret)
            .await
            .map_err(|e| ServicesError(e.to_string()))?;
        let now = u64::try_from(at.timestamp()).unwrap_or(0);
        Ok(self.totp.matching_step(&secret, params, code, now))
    }

    fn recovery_code_hash(&self, user: &UserRef, normalized_code: &str) -> KeyedHash {
        let message = format!("{}\0{normalized_code}", user.aggregate_id());
        self.hasher
            .keyed_hash(RECOVERY_HASH_PURPOSE, message.as_bytes())
    }
}

/// A user's 2FA status as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserStatus {
    /// The tenant's id for the user.
    pub user_id: UserId,
    /// A second factor is active.
    pub enabled: bool,
    /// Methods usable now.
    pub methods: Vec<Method>,
    /// A TOTP enrollment awaits confirmation.
    pub totp_pending: bool,
    /// Unused recovery codes.
    pub recovery_codes_remaining: u32,
    /// End of the lockout in force.
    pub locked_until: Option<DateTime<Utc>>,
    /// Last successful verification.
    pub last_verified_at: Option<DateTime<Utc>>,
}

impl UserStatus {
    fn of(user_id: &UserId, user: &User, now: DateTime<Utc>) -> Self {
        Self {
            user_id: user_id.clone(),
            enabled: user.enabled(),
            methods: user.methods(),
            totp_pending: user.totp_pending(),
            recovery_codes_remaining: user.recovery_codes_remaining(),
            locked_until: user.locked_until(now),
            last_verified_at: user.last_verified_at(),
        }
    }
}

/// A started TOTP enrollment: what the app needs, shown once.
#[derive(Debug, Clone)]
pub struct TotpEnrollment {
    /// Secret, URI and QR codes.
    pub provisioning: TotpProvisioning,
    /// The parameters the codes use.
    pub params: TotpParams,
}

/// New recovery codes, shown once.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCodes(pub Vec<String>);

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryCodes(<{} redacted>)", self.0.len())
    }
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The method that succeeded.
    pub method: Method,
    /// Recovery codes left.
    pub recovery_codes_remaining: u32,
}

/// User 2FA use-cases.
#[derive(Clone)]
pub struct UserService {
    commands: Commands<User>,
    tenants: Arc<dyn TenantDirectory>,
    sealer: Arc<dyn Sealer>,
    totp: Arc<dyn TotpEngine>,
    hasher: Arc<dyn SecretHasher>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
}

/// Maps the aggregate's refusals to API errors.
impl From<UserError> for ServiceError {
    fn from(e: UserError) -> Self {
        let message = e.to_string();
        match e {
            UserError::LockedOut {
                until,
                admin_required,
            } => locked_out(until, admin_required, Utc::now()),
            UserError::NotEnrolled | UserError::MethodNotEnrolled(_) | UserError::UnknownUser => {
                ServiceError::NotFound(message)
            }
            UserError::NoPendingEnrollment => ServiceError::Conflict(message),
            UserError::PolicyEnforced => ServiceError::PolicyViolation(message),
            UserError::UnsupportedProof(_) => ServiceError::InvalidInput(message),
            UserError::BadRecoverySet | UserError::Services(_) => {
                ServiceError::Internal(Box::new(e))
            }
        }
    }
}

fn locked_out(until: DateTime<Utc>, admin_required: bool, now: DateTime<Utc>) -> ServiceError {
    let message = if admin_required {
        "too many failed attempts: the account is locked until an administrator unlocks it"
            .to_owned()
    } else {
        format!(
            "too many failed attempts: try again after {}",
            until.to_rfc3339()
        )
    };
    ServiceError::LockedOut {
        message,
        retry_after_seconds: (until - now).num_seconds().max(1),
    }
}

/// A verification's outcome, read from the events it recorded.
fn outcome(events: &[UserEvent], now: DateTime<Utc>) -> Result<(), ServiceError> {
    for event in events.iter().rev() {
        match event {
            UserEvent::UserLockedOut {
                until,
                admin_required,
                ..
            } => return Err(locked_out(*until, *admin_required, now)),
            UserEvent::VerificationFailed {
                consecutive_failures,
                ..
            } => {
                return Err(ServiceError::InvalidCode {
                    remaining_attempts: FAILURES_PER_LOCKOUT
                        - consecutive_failures % FAILURES_PER_LOCKOUT,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_user(tenant: &TenantId, user_id: &str) -> Result<UserRef, ServiceError> {
    Ok(UserRef {
        tenant: tenant.clone(),
        user: UserId::parse(user_id).map_err(ServiceError::invalid)?,
    })
}

fn proof(method: Method, code: &str) -> Result<Proof, ServiceError> {
    if code.chars().count() > 64 {
        return Err(ServiceError::InvalidInput("code is too long".into()));
    }
    Ok(Proof {
        method,
        code: code.to_owned(),
    })
}

impl UserService {
    /// Wires the use-cases to their ports.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        commands: Commands<User>,
        tenants: Arc<dyn TenantDirectory>,
        sealer: Arc<dyn Sealer>,
        totp: Arc<dyn TotpEngine>,
        hasher: Arc<dyn SecretHasher>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Self {
        Self {
            commands,
            tenants,
            sealer,
            totp,
            hasher,
            clock,
            entropy,
        }
    }

    async fn tenant(&self, id: &TenantId) -> Result<TenantView, ServiceError> {
        self.tenants
            .tenant(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("tenant not found".into()))
    }

    async fn run(
        &self,
        caller: &KeyPrincipal,
        user: &UserRef,
        action: UserAction,
        ctx: &RequestContext,
    ) -> Result<(User, Vec<UserEvent>, DateTime<Utc>), ServiceError> {
        let at = self.clock.now();
        let executed = self
            .commands
            .execute(
                &user.aggregate_id(),
                UserCommand {
                    user: user.clone(),
                    at,
                    action,
                },
                ctx.metadata(&user.tenant, &caller.actor()),
            )
            .await?;
        Ok((executed.state, executed.events, at))
    }

    /// Ten fresh recovery codes (80 bits each, `xxxx-xxxx-xxxx-xxxx`) and their keyed hashes.
    fn new_recovery_codes(&self, user: &UserRef) -> (RecoveryCodes, Vec<KeyedHash>) {
        let crypto = UserCrypto::new(self.sealer.clone(), self.totp.clone(), self.hasher.clone());
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        let mut hashes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let mut bytes = zeroize::Zeroizing::new([0u8; 10]);
            self.entropy.fill(bytes.as_mut());
            let raw = base32_lower(bytes.as_ref());
            let grouped = raw
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-");
            hashes.push(crypto.recovery_code_hash(user, &normalize_recovery_code(&grouped)));
            codes.push(grouped);
        }
        (RecoveryCodes(codes), hashes)
    }

    /// Starts (or restarts) TOTP enrollment with a fresh 160-bit secret.
    pub async fn start_totp_enrollment(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        account_label: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<TotpEnrollment, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let label = account_label
            .unwrap_or(user.user.as_str())
            .trim()
            .to_owned();
        if label.is_empty()
            || label.chars().count() > MAX_LABEL_CHARS
            || label.chars().any(char::is_control)
        {
            return Err(ServiceError::InvalidInput(format!(
                "accountLabel must be 1 to {MAX_LABEL_CHARS} printable characters"
            )));
        }
        let tenant = self.tenant(&caller.tenant_id).await?;
        if !tenant.policy.allows(Method::Totp) {
            return Err(ServiceError::PolicyViolation(
                "the organisation's policy does not allow authenticator apps (TOTP)".into(),
            ));
        }
        let params = TotpParams {
            algorithm: tenant.policy.totp_algorithm,
            digits: tenant.policy.totp_digits,
            period: TotpParams::PERIOD,
        };
        let mut secret = zeroize::Zeroizing::new([0u8; TOTP_SECRET_BYTES]);
        self.entropy.fill(secret.as_mut());
        let provisioning = self
            .totp
            .provision(secret.as_ref(), &params, &tenant.name, &label)
            .map_err(|e| ServiceError::Internal(Box::new(e)))?;
        let sealed = self
            .sealer
            .seal(&user.tenant, &totp_context(&user), secret.as_ref())
            .await?;
        self.run(
            caller,
            &user,
            UserAction::StartTotpEnrollment {
                secret: sealed,
                params,
                label,
            },
            ctx,
        )
        .await?;
        Ok(TotpEnrollment {
            provisioning,
            params,
        })
    }

    /// Confirms the pending TOTP with a code from the app; returns ten new recovery codes.
    pub async fn confirm_totp_enrollment(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<RecoveryCodes, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let (codes, hashes) = self.new_recovery_codes(&user);
        let (_, events, at) = self
            .run(
                caller,
                &user,
                UserAction::ConfirmTotp {
                    code: proof(Method::Totp, code)?.code,
                    recovery_codes: hashes,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        Ok(codes)
    }

    /// Checks a second factor at sign-in.
    pub async fn verify(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        method: Method,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<Verified, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let (state, events, at) = self
            .run(
                caller,
                &user,
                UserAction::Verify {
                    proof: proof(method, code)?,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        Ok(Verified {
            method,
            recovery_codes_remaining: state.recovery_codes_remaining(),
        })
    }

    /// Replaces the recovery codes after checking a current factor.
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        method: Method,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<RecoveryCodes, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let (codes, hashes) = self.new_recovery_codes(&user);
        let (_, events, at) = self
            .run(
                caller,
                &user,
                UserAction::RegenerateRecoveryCodes {
                    proof: proof(method, code)?,
                    recovery_codes: hashes,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        Ok(codes)
    }

    /// Turns 2FA off after checking a current factor, unless the tenant enforces it.
    pub async fn disable(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        method: Method,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let tenant = self.tenant(&caller.tenant_id).await?;
        let (state, events, at) = self
            .run(
                caller,
                &user,
                UserAction::Disable {
                    proof: proof(method, code)?,
                    policy_enforced: tenant.policy.enforce_two_factor,
                },
                ctx,
            )
            .await?;
        outcome(&events, at)?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    /// Removes every factor, recovery code and trusted device of the user (admin).
    pub async fn reset(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        reason: &str,
        ctx: &RequestContext,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let reason = Reason::parse(reason).map_err(ServiceError::invalid)?;
        let (state, _, at) = self
            .run(
                caller,
                &user,
                UserAction::Reset {
                    by: caller.key_id.clone(),
                    reason,
                },
                ctx,
            )
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    /// Ends a lockout early (admin).
    pub async fn clear_lockout(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        reason: &str,
        ctx: &RequestContext,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let reason = Reason::parse(reason).map_err(ServiceError::invalid)?;
        let (state, _, at) = self
            .run(
                caller,
                &user,
                UserAction::ClearLockout {
                    by: caller.key_id.clone(),
                    reason,
                },
                ctx,
            )
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
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

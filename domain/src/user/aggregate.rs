//! The user's decisions: which codes are accepted, what a failure costs, who may turn 2FA off.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::lockout::{lockout_duration, FAILURES_PER_LOCKOUT, MAX_FAILURES_WITHOUT_ADMIN};
use super::{
    normalize_recovery_code, Proof, ServicesError, UserAction, UserCommand, UserEvent, UserRef,
    UserServices, RECOVERY_CODES,
};
use crate::secrets::{SealedSecret, TotpParams};
use crate::tenant::KeyedHash;
use crate::Method;

/// Why a user command was refused outright (nothing recorded). A wrong code is not an error:
/// it is recorded as `VerificationFailed` and reported from the events.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UserError {
    /// Too many failures; no code is checked until `until`.
    #[error("too many failed attempts: locked until {until}")]
    LockedOut {
        /// End of the lockout.
        until: DateTime<Utc>,
        /// Only an admin can end it.
        admin_required: bool,
    },
    /// The user has no active second factor.
    #[error("the user has no active second factor")]
    NotEnrolled,
    /// The user has 2FA, but not with this method.
    #[error("{0} is not enabled for this user")]
    MethodNotEnrolled(Method),
    /// Confirm without a pending enrollment.
    #[error("there is no TOTP enrollment to confirm: call startTotpEnrollment first")]
    NoPendingEnrollment,
    /// Disable while the tenant enforces 2FA.
    #[error("the organisation requires two-factor authentication: it cannot be turned off")]
    PolicyEnforced,
    /// An admin action on a user the tenant has never enrolled.
    #[error("this user has no two-factor history")]
    UnknownUser,
    /// A proof method this command cannot take.
    #[error("{0} cannot be used here yet")]
    UnsupportedProof(Method),
    /// The command carried a malformed recovery code set (a programming error).
    #[error("a recovery code set must have {RECOVERY_CODES} codes")]
    BadRecoverySet,
    /// The services failed.
    #[error(transparent)]
    Services(#[from] ServicesError),
}

/// An active (or pending) TOTP factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotpFactor {
    /// The sealed secret.
    pub secret: SealedSecret,
    /// How codes are computed.
    pub params: TotpParams,
    /// Account label in the app.
    pub label: String,
    /// When started (pending) or enabled (active).
    pub since: DateTime<Utc>,
}

/// One recovery code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoverySlot {
    /// Its keyed hash.
    pub hash: KeyedHash,
    /// Spent.
    pub used: bool,
}

/// The user aggregate's state, rebuilt from events (or a snapshot plus later events).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    first_seen_at: Option<DateTime<Utc>>,
    totp: Option<TotpFactor>,
    pending_totp: Option<TotpFactor>,
    last_totp_step: Option<u64>,
    recovery: Vec<RecoverySlot>,
    consecutive_failures: u32,
    lockouts: u32,
    locked_until: Option<DateTime<Utc>>,
    admin_lock: bool,
    last_verified_at: Option<DateTime<Utc>>,
}

/// Result of checking a proof: the events to record either way.
enum Checked {
    Passed(Vec<UserEvent>),
    Failed(Vec<UserEvent>),
}

/// Constant-time equality of two hex hashes.
fn same_hash(a: &KeyedHash, b: &KeyedHash) -> bool {
    let (a, b) = (a.as_hex().as_bytes(), b.as_hex().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl User {
    /// Whether the tenant has ever enrolled anything for this user.
    pub fn exists(&self) -> bool {
        self.first_seen_at.is_some()
    }

    /// When the user was first seen.
    pub fn first_seen_at(&self) -> Option<DateTime<Utc>> {
        self.first_seen_at
    }

    /// Whether a second factor is active.
    pub fn enabled(&self) -> bool {
        self.totp.is_some()
    }

    /// The methods the user can verify with now.
    pub fn methods(&self) -> Vec<Method> {
        let mut methods = Vec::new();
        if self.totp.is_some() {
            methods.push(Method::Totp);
        }
        if self.enabled() && self.recovery_codes_remaining() > 0 {
            methods.push(Method::RecoveryCode);
        }
        methods
    }

    /// A TOTP enrollment is waiting for confirmation.
    pub fn totp_pending(&self) -> bool {
        self.pending_totp.is_some()
    }

    /// Unused recovery codes.
    pub fn recovery_codes_remaining(&self) -> u32 {
        u32::try_from(self.recovery.iter().filter(|s| !s.used).count()).unwrap_or(u32::MAX)
    }

    /// The end of the lockout in force at `at`, if any.
    pub fn locked_until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.locked_until.filter(|u| self.admin_lock || at < *u)
    }

    /// Last successful verification.
    pub fn last_verified_at(&self) -> Option<DateTime<Utc>> {
        self.last_verified_at
    }

    /// Consecutive failures since the last success or admin action.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    fn refuse_if_locked(&self, at: DateTime<Utc>) -> Result<(), UserError> {
        match self.locked_until(at) {
            Some(until) => Err(UserError::LockedOut {
                until,
                admin_required: self.admin_lock,
            }),
            None => Ok(()),
        }
    }

    pub(super) fn failure(&self, method: Method, at: DateTime<Utc>) -> Vec<UserEvent> {
        let n = self.consecutive_failures.saturating_add(1);
        let mut events = vec![UserEvent::VerificationFailed {
            method,
            consecutive_failures: n,
            at,
        }];
        if n.is_multiple_of(FAILURES_PER_LOCKOUT) {
            let lockout = self.lockouts + 1;
            let admin_required = n >= MAX_FAILURES_WITHOUT_ADMIN;
            let until = if admin_required {
                at + Duration::days(365 * 100)
            } else {
                at + lockout_duration(lockout)
            };
            events.push(UserEvent::UserLockedOut {
                until,
                lockout,
                admin_required,
                at,
            });
        }
        events
    }

    async fn totp_passes(
        &self,
        services: &dyn UserServices,
        user: &UserRef,
        factor: &TotpFactor,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<u64>, UserError> {
        let step = services
            .totp_step(user, &factor.secret, &factor.params, code, at)
            .await?;
        // RFC 6238 §5.2: a time step is accepted once; never one at or before the last.
        Ok(step.filter(|s| self.last_totp_step.is_none_or(|last| *s > last)))
    }

    async fn check(
        &self,
        services: &dyn UserServices,
        user: &UserRef,
        proof: &Proof,
        at: DateTime<Utc>,
    ) -> Result<Checked, UserError> {
        match proof.method {
            Method::Totp => {
                let factor = self
                    .totp
                    .as_ref()
                    .ok_or(UserError::MethodNotEnrolled(Method::Totp))?;
                Ok(
                    match self
                        .totp_passes(services, user, factor, &proof.code, at)
                        .await?
                    {
                        Some(step) => Checked::Passed(vec![UserEvent::CodeVerified {
                            method: Method::Totp,
                            totp_step: Some(step),
                            at,
                        }]),
                        None => Checked::Failed(self.failure(Method::Totp, at)),
                    },
                )
            }
            Method::RecoveryCode => {
                if self.recovery_codes_remaining() == 0 {
                    return Err(UserError::MethodNotEnrolled(Method::RecoveryCode));
                }
                let hash = services.recovery_code_hash(user, &normalize_recovery_code(&proof.code));
                // Compare against every slot, so timing does not tell which (if any) matched.
                let mut matched = None;
                for (i, slot) in self.recovery.iter().enumerate() {
                    if same_hash(&slot.hash, &hash) && !slot.used {
                        matched = Some(i);
                    }
                }
                Ok(match matched {
                    Some(index) => Checked::Passed(vec![UserEvent::RecoveryCodeUsed {
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                        remaining: self.recovery_codes_remaining() - 1,
                        at,
                    }]),
                    None => Checked::Failed(self.failure(Method::RecoveryCode, at)),
                })
            }
            other => Err(UserError::UnsupportedProof(other)),
        }
    }

    async fn decide(
        &self,
        command: UserCommand,
        services: &dyn UserServices,
    ) -> Result<Vec<UserEvent>, UserError> {
        let UserCommand { user, at, action } = command;
        match action {
            UserAction::StartTotpEnrollment {
                secret,
                params,
                label,
            } => Ok(vec![UserEvent::TotpEnrollmentStarted {
                secret,
                algorithm: params.algorithm,
                digits: params.digits,
                period: params.period,
                label,
                at,
            }]),
            UserAction::ConfirmTotp {
                code,
                recovery_codes,
            } => {
                let pending = self
                    .pending_totp
                    .as_ref()
                    .ok_or(UserError::NoPendingEnrollment)?;
                self.refuse_if_locked(at)?;
                if recovery_codes.len() != RECOVERY_CODES {
                    return Err(UserError::BadRecoverySet);
                }
                Ok(
                    match self
                        .totp_passes(services, &user, pending, &code, at)
                        .await?
                    {
                        Some(step) => vec![
                            UserEvent::TotpEnabled { step, at },
                            UserEvent::RecoveryCodesGenerated {
                                hashes: recovery_codes,
                                at,
                            },
                        ],
                        None => self.failure(Method::Totp, at),
                    },
                )
            }
            UserAction::Verify { proof } => {
                if !self.enabled() {
                    return Err(UserError::NotEnrolled);
                }
                self.refuse_if_locked(at)?;
                Ok(match self.check(services, &user, &proof, at).await? {
                    Checked::Passed(events) | Checked::Failed(events) => events,
                })
            }
            UserAction::RegenerateRecoveryCodes {
                proof,
                recovery_codes,
            } => {
                if !self.enabled() {
                    return Err(UserError::NotEnrolled);
                }
                self.refuse_if_locked(at)?;
                if recovery_codes.len() != RECOVERY_CODES {
                    return Err(UserError::BadRecoverySet);
                }
                Ok(match self.check(services, &user, &proof, at).await? {
                    Checked::Passed(mut events) => {
                        events.push(UserEvent::RecoveryCodesGenerated {
                            hashes: recovery_codes,
                            at,
                        });
                        events
                    }
                    Checked::Failed(events) => events,
                })
            }
            UserAction::Disable {
                proof,
                policy_enforced,
            } => {
                if !self.enabled() {
                    return Err(UserError::NotEnrolled);
                }
                if policy_enforced {
                    return Err(UserError::PolicyEnforced);
                }
                self.refuse_if_locked(at)?;
                let method = proof.method;
                Ok(match self.check(services, &user, &proof, at).await? {
                    Checked::Passed(mut events) => {
                        events.push(UserEvent::TwoFactorDisabled { method, at });
                        events
                    }
                    Checked::Failed(events) => events,
                })
            }
            UserAction::ClearLockout { by, reason } => {
                if !self.exists() {
                    return Err(UserError::UnknownUser);
                }
                if self.consecutive_failures == 0 && self.locked_until.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::LockoutCleared { by, reason, at }])
            }
            UserAction::Reset { by, reason } => {
                if !self.exists() {
                    return Err(UserError::UnknownUser);
                }
                Ok(vec![UserEvent::TwoFactorReset { by, reason, at }])
            }
        }
    }

    fn succeeded(&mut self, at: DateTime<Utc>) {
        self.consecutive_failures = 0;
        self.lockouts = 0;
        self.locked_until = None;
        self.admin_lock = false;
        self.last_verified_at = Some(at);
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = Arc<dyn UserServices>;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command, services.as_ref()).await? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        if self.first_seen_at.is_none() {
            self.first_seen_at = Some(event.at());
        }
        match event {
            UserEvent::TotpEnrollmentStarted {
                secret,
                algorithm,
                digits,
                period,
                label,
                at,
            } => {
                self.pending_totp = Some(TotpFactor {
                    secret,
                    params: TotpParams {
                        algorithm,
                        digits,
                        period,
                    },
                    label,
                    since: at,
                });
            }
            UserEvent::TotpEnabled { step, at } => {
                if let Some(mut factor) = self.pending_totp.take() {
                    factor.since = at;
                    self.totp = Some(factor);
                }
                self.last_totp_step = Some(self.last_totp_step.map_or(step, |l| l.max(step)));
                self.succeeded(at);
            }
            UserEvent::RecoveryCodesGenerated { hashes, .. } => {
                self.recovery = hashes
                    .into_iter()
                    .map(|hash| RecoverySlot { hash, used: false })
                    .collect();
            }
            UserEvent::CodeVerified { totp_step, at, .. } => {
                if let Some(step) = totp_step {
                    self.last_totp_step = Some(self.last_totp_step.map_or(step, |l| l.max(step)));
                }
                self.succeeded(at);
            }
            UserEvent::RecoveryCodeUsed { index, at, .. } => {
                if let Some(slot) = usize::try_from(index)
                    .ok()
                    .and_then(|i| self.recovery.get_mut(i))
                {
                    slot.used = true;
                }
                self.succeeded(at);
            }
            UserEvent::VerificationFailed {
                consecutive_failures,
                ..
            } => self.consecutive_failures = consecutive_failures,
            UserEvent::UserLockedOut {
                until,
                lockout,
                admin_required,
                ..
            } => {
                self.locked_until = Some(until);
                self.lockouts = lockout;
                self.admin_lock = admin_required;
            }
            UserEvent::LockoutCleared { .. } => {
                self.consecutive_failures = 0;
                self.lockouts = 0;
                self.locked_until = None;
                self.admin_lock = false;
            }
            UserEvent::TwoFactorDisabled { .. } => {
                self.totp = None;
                self.pending_totp = None;
                self.recovery.clear();
            }
            UserEvent::TwoFactorReset { .. } => {
                let first_seen_at = self.first_seen_at;
                let last_totp_step = self.last_totp_step;
                *self = User {
                    first_seen_at,
                    // Steps already used stay used, whatever secret comes next.
                    last_totp_step,
                    ..User::default()
                };
            }
        }
    }
}

impl UserEvent {
    /// When the event happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            UserEvent::TotpEnrollmentStarted { at, .. }
            | UserEvent::TotpEnabled { at, .. }
            | UserEvent::RecoveryCodesGenerated { at, .. }
            | UserEvent::CodeVerified { at, .. }
            | UserEvent::RecoveryCodeUsed { at, .. }
            | UserEvent::VerificationFailed { at, .. }
            | UserEvent::UserLockedOut { at, .. }
            | UserEvent::LockoutCleared { at, .. }
            | UserEvent::TwoFactorDisabled { at, .. }
            | UserEvent::TwoFactorReset { at, .. } => *at,
        }
    }
}

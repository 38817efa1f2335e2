//! The user's decisions: which codes are accepted, what a failure costs, who may turn 2FA off.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::factors::{verification_target, Authorized};
use super::lockout::{lockout_duration, FAILURES_PER_LOCKOUT, MAX_FAILURES_WITHOUT_ADMIN};
use super::{
    normalize_recovery_code, DeliveryOutcome, DeviceRevocation, NewChallenge, NewTrustedDevice,
    Proof, ServicesError, SignInAttempt, SignInDecision, SignInReason, UserAction, UserCommand,
    UserEvent, UserRef, UserServices, ATTEMPTS_PER_CHALLENGE, MAX_TRUSTED_DEVICES, RECOVERY_CODES,
    RESEND_WINDOW_SECONDS, SENDS_PER_WINDOW, SEND_WINDOW_MINUTES,
};
use crate::channel::{Channel, Purpose};
use crate::secrets::{SealedSecret, TotpParams};
use crate::tenant::KeyedHash;
use crate::{DeviceLabel, Method};

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
    /// The challenge can no longer be answered (expired, used, or too many wrong codes).
    #[error("{0}")]
    CodeExpired(&'static str),
    /// Too many codes sent to this destination recently.
    #[error("too many codes were sent to this destination: try again in {retry_after_seconds} s")]
    RateLimited {
        /// Seconds until another code may be sent.
        retry_after_seconds: i64,
    },
    /// No such challenge for this user (or it belongs to a replaced address or number).
    #[error("no such challenge for this user")]
    ChallengeNotFound,
    /// EMAIL and SMS codes are answered with the challenge they were sent with.
    #[error("challengeId is required for EMAIL and SMS codes")]
    ChallengeRequired,
    /// Adding, replacing or removing a factor on an enabled account needs a current factor in
    /// the same call.
    #[error(
        "the user already has two-factor authentication: pass `proof` with a current factor \
         (a TOTP code, a recovery code, or an email/SMS sign-in code with its challengeId) to \
         add, replace or remove one"
    )]
    ProofRequired,
    /// `removeFactor(method: RECOVERY_CODE)`.
    #[error(
        "recovery codes are not removed on their own: they go with the last factor, and \
         regenerateRecoveryCodes replaces them"
    )]
    RecoveryCodesNotAFactor,
    /// sendCode without a channel and without a preferred one.
    #[error("the user has no preferred channel: pass a channel")]
    NoPreferredChannel,
    /// No such trusted device for this user (never trusted, expired or already revoked).
    #[error("no such trusted device for this user")]
    DeviceNotFound,
}

/// A device the user chose to remember: sign-ins presenting its token skip the second factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustedDevice {
    /// Public id.
    pub id: String,
    /// Keyed hash of its token.
    pub token_hash: KeyedHash,
    /// What the user calls it.
    pub label: Option<DeviceLabel>,
    /// When trusted.
    pub created_at: DateTime<Utc>,
    /// End of trust as granted (a later, shorter policy lifetime also ends it).
    pub expires_at: DateTime<Utc>,
}

impl TrustedDevice {
    /// Whether the device is still trusted at `at` under a policy lifetime of `policy_days`
    /// (0 turns trusted devices off): tightening the policy applies to devices already trusted.
    pub fn valid(&self, policy_days: u16, at: DateTime<Utc>) -> bool {
        policy_days > 0
            && at < self.expires_at
            && at < self.created_at + Duration::days(i64::from(policy_days))
    }
}

/// A registered email address or phone number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactFactor {
    /// The sealed address or E.164 number.
    pub sealed: SealedSecret,
    /// Masked for display.
    pub masked: String,
    /// Proven with a code.
    pub verified: bool,
    /// When registered (challenges sent before belong to a replaced destination).
    pub since: DateTime<Utc>,
}

/// Where a challenge's message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryState {
    /// Not yet accepted by the provider.
    Pending,
    /// Accepted by the provider.
    Delivered,
    /// Given up.
    Failed,
}

/// A one-time code sent by email or SMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Challenge {
    /// Id.
    pub id: String,
    /// Email or SMS.
    pub channel: Channel,
    /// Why.
    pub purpose: Purpose,
    /// Code length.
    pub digits: u8,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// When sent.
    pub sent_at: DateTime<Utc>,
    /// Masked destination.
    pub sent_to: String,
    /// Wrong codes so far.
    pub attempts: u32,
    /// Answered correctly (spent).
    pub used: bool,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// Delivery state.
    pub delivery: DeliveryState,
}

/// Challenges kept in the state (older ones can no longer matter: they are long expired and
/// outside the rate-limit window).
const KEPT_CHALLENGES: usize = 32;

/// An active (or pending) TOTP factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotpFactor {
    /// The sealed secret.
    pub secret: SealedSecret,
    /// How codes are computed.
    pub params: TotpParams,
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
    #[serde(default)]
    email: Option<ContactFactor>,
    #[serde(default)]
    phone: Option<ContactFactor>,
    /// An address waiting to replace the verified `email`, which works until it is confirmed.
    #[serde(default)]
    email_pending: Option<ContactFactor>,
    /// A number waiting to replace the verified `phone`.
    #[serde(default)]
    phone_pending: Option<ContactFactor>,
    #[serde(default)]
    preferred: Option<Channel>,
    #[serde(default)]
    challenges: Vec<Challenge>,
    #[serde(default)]
    trusted_devices: Vec<TrustedDevice>,
}

/// Result of checking a proof: the events to record either way.
pub(super) enum Checked {
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
        self.totp.is_some() || self.verified(Channel::Email) || self.verified(Channel::Sms)
    }

    /// The registered address (Email) or number (Sms).
    pub fn contact(&self, channel: Channel) -> Option<&ContactFactor> {
        match channel {
            Channel::Email => self.email.as_ref(),
            Channel::Sms => self.phone.as_ref(),
        }
    }

    fn verified(&self, channel: Channel) -> bool {
        self.contact(channel).is_some_and(|f| f.verified)
    }

    pub(super) fn contact_verified(&self, channel: Channel) -> bool {
        self.verified(channel)
    }

    pub(super) fn totp_enabled(&self) -> bool {
        self.totp.is_some()
    }

    /// An address or number waiting to replace the verified one of `channel`.
    pub fn pending_contact(&self, channel: Channel) -> Option<&ContactFactor> {
        match channel {
            Channel::Email => self.email_pending.as_ref(),
            Channel::Sms => self.phone_pending.as_ref(),
        }
    }

    /// Where the code of `challenge` goes: a sign-in code to the verified address, a
    /// verification code to the address it verifies (a waiting replacement, or the current
    /// unverified one). `None` when that destination was replaced since.
    pub fn destination_of(&self, challenge: &Challenge) -> Option<&ContactFactor> {
        match challenge.purpose {
            Purpose::SignIn => self
                .contact(challenge.channel)
                .filter(|c| c.verified && challenge.sent_at >= c.since),
            Purpose::VerifyChannel => verification_target(
                self.contact(challenge.channel),
                self.pending_contact(challenge.channel),
                challenge.sent_at,
            )
            .map(|(c, _)| c),
        }
    }

    /// The default channel for sign-in codes.
    pub fn preferred_channel(&self) -> Option<Channel> {
        self.preferred
    }

    /// The challenges still kept, oldest first.
    pub fn challenges(&self) -> &[Challenge] {
        &self.challenges
    }

    /// A challenge by id.
    pub fn challenge(&self, id: &str) -> Option<&Challenge> {
        self.challenges.iter().find(|c| c.id == id)
    }

    /// The open challenge a new send request should get instead of a new code: the one with
    /// the same idempotency key, or one sent by the same channel for the same purpose less than
    /// [`RESEND_WINDOW_SECONDS`] ago.
    pub fn reusable_challenge(
        &self,
        channel: Channel,
        purpose: Purpose,
        idempotency_key: Option<&str>,
        at: DateTime<Utc>,
    ) -> Option<&Challenge> {
        // Only a challenge whose code went to the current destination: after a replacement, a
        // code still open at the old address must not stand in for a new one.
        let open = |c: &&Challenge| {
            !c.used
                && c.attempts < ATTEMPTS_PER_CHALLENGE
                && at < c.expires_at
                && self.destination_of(c).is_some()
        };
        if let Some(key) = idempotency_key {
            if let Some(c) = self
                .challenges
                .iter()
                .rev()
                .filter(open)
                .find(|c| c.idempotency_key.as_deref() == Some(key) && c.channel == channel)
            {
                return Some(c);
            }
        }
        self.challenges.iter().rev().filter(open).find(|c| {
            c.channel == channel
                && c.purpose == purpose
                && (at - c.sent_at).num_seconds() < RESEND_WINDOW_SECONDS
        })
    }

    /// The methods the user can verify with now.
    pub fn methods(&self) -> Vec<Method> {
        let mut methods = Vec::new();
        if self.totp.is_some() {
            methods.push(Method::Totp);
        }
        if self.verified(Channel::Email) {
            methods.push(Method::Email);
        }
        if self.verified(Channel::Sms) {
            methods.push(Method::Sms);
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

    /// Trusted devices whose trust has not ended by `at`, oldest first.
    pub fn trusted_devices(&self, at: DateTime<Utc>) -> impl Iterator<Item = &TrustedDevice> {
        self.trusted_devices
            .iter()
            .filter(move |d| at < d.expires_at)
    }

    /// The answer to "does this sign-in need a second factor?", from the user's state and the
    /// tenant's policy at `at`. The checks run in order of severity: a lockout wins over
    /// everything (a locked account is locked, whatever the route), then the SSO bypass, then
    /// enrollment; a trusted device only stands in for a factor the user actually has.
    pub fn sign_in_decision(&self, attempt: &SignInAttempt, at: DateTime<Utc>) -> SignInDecision {
        let policy = &attempt.policy;
        let own: Vec<Method> = self
            .methods()
            .into_iter()
            .filter(|m| policy.allowed_methods.contains(m))
            .collect();
        let device = attempt
            .device_token_hash
            .as_ref()
            .map(|hash| self.device_matching(hash, policy.trusted_device_days, at));
        let grace_ends_at = if self.enabled() {
            None
        } else {
            policy.grace_ends_at(self.first_seen_at.unwrap_or(at))
        };
        let rejected = matches!(device, Some(None));
        let decision = |required, reason, methods| SignInDecision {
            required,
            reason,
            methods,
            trusted_device: None,
            device_token_rejected: rejected,
            locked_until: None,
            grace_ends_at,
        };
        if let Some(until) = self.locked_until(at) {
            return SignInDecision {
                locked_until: Some(until),
                ..decision(true, SignInReason::LockedOut, vec![])
            };
        }
        if attempt.sso_login && policy.sso_bypass {
            return decision(false, SignInReason::SsoBypass, own);
        }
        if self.enabled() {
            if let Some(Some(id)) = device {
                return SignInDecision {
                    trusted_device: Some(id),
                    ..decision(false, SignInReason::TrustedDevice, own)
                };
            }
            return decision(true, SignInReason::Enrolled, own);
        }
        match grace_ends_at {
            None => decision(false, SignInReason::NotEnrolled, vec![]),
            Some(end) if at < end => decision(false, SignInReason::GracePeriod, vec![]),
            Some(_) => {
                let enrollable = [Method::Totp, Method::Email, Method::Sms]
                    .into_iter()
                    .filter(|m| policy.allowed_methods.contains(m))
                    .collect();
                decision(true, SignInReason::EnrollmentRequired, enrollable)
            }
        }
    }

    /// The id of the trusted device whose token hashes to `hash`, if it is still valid. Every
    /// device is compared, so timing does not tell which (if any) matched.
    fn device_matching(
        &self,
        hash: &KeyedHash,
        policy_days: u16,
        at: DateTime<Utc>,
    ) -> Option<String> {
        let mut matched = None;
        for device in &self.trusted_devices {
            if same_hash(&device.token_hash, hash) && device.valid(policy_days, at) {
                matched = Some(device.id.clone());
            }
        }
        matched
    }

    /// `DeviceTrustRevoked` for every device still trusted at `at`.
    pub(super) fn revoke_devices(
        &self,
        reason: DeviceRevocation,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        self.trusted_devices(at)
            .map(|d| UserEvent::DeviceTrustRevoked {
                device_id: d.id.clone(),
                reason,
                at,
            })
            .collect()
    }

    /// `DeviceTrusted` for a new device, after revoking the oldest if the user is at the limit.
    fn trust(&self, device: NewTrustedDevice, at: DateTime<Utc>) -> Vec<UserEvent> {
        let live: Vec<&TrustedDevice> = self.trusted_devices(at).collect();
        let excess = (live.len() + 1).saturating_sub(MAX_TRUSTED_DEVICES);
        let mut events: Vec<UserEvent> = live
            .iter()
            .take(excess)
            .map(|d| UserEvent::DeviceTrustRevoked {
                device_id: d.id.clone(),
                reason: DeviceRevocation::LimitReached,
                at,
            })
            .collect();
        events.push(UserEvent::DeviceTrusted {
            device_id: device.id,
            token_hash: device.token_hash,
            label: device.label,
            expires_at: at + Duration::days(i64::from(device.lifetime_days.max(1))),
            at,
        });
        events
    }

    /// Consecutive failures since the last success or admin action.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub(super) fn refuse_if_locked(&self, at: DateTime<Utc>) -> Result<(), UserError> {
        match self.locked_until(at) {
            Some(until) => Err(UserError::LockedOut {
                until,
                admin_required: self.admin_lock,
            }),
            None => Ok(()),
        }
    }

    pub(super) fn failure(&self, method: Method, at: DateTime<Utc>) -> Vec<UserEvent> {
        self.failure_on(method, None, at)
    }

    pub(super) fn failure_on(
        &self,
        method: Method,
        challenge_id: Option<String>,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        let n = self.consecutive_failures.saturating_add(1);
        let mut events = vec![UserEvent::VerificationFailed {
            method,
            challenge_id,
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

    pub(super) async fn check(
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
                            challenge_id: None,
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
            Method::Email | Method::Sms => {
                let channel = if proof.method == Method::Email {
                    Channel::Email
                } else {
                    Channel::Sms
                };
                let factor = self
                    .contact(channel)
                    .filter(|f| f.verified)
                    .ok_or(UserError::MethodNotEnrolled(proof.method))?;
                let id = proof
                    .challenge_id
                    .as_deref()
                    .ok_or(UserError::ChallengeRequired)?;
                let challenge = self.answerable(id, Purpose::SignIn, at)?;
                if challenge.channel != channel || challenge.sent_at < factor.since {
                    return Err(UserError::ChallengeNotFound);
                }
                Ok(
                    if services.challenge_code_matches(user, id, challenge.digits, &proof.code) {
                        Checked::Passed(vec![UserEvent::CodeVerified {
                            method: proof.method,
                            totp_step: None,
                            challenge_id: Some(id.to_owned()),
                            at,
                        }])
                    } else {
                        Checked::Failed(self.failure_on(proof.method, Some(id.to_owned()), at))
                    },
                )
            }
        }
    }

    /// A challenge that may still be answered.
    fn answerable(
        &self,
        id: &str,
        purpose: Purpose,
        at: DateTime<Utc>,
    ) -> Result<&Challenge, UserError> {
        let challenge = self
            .challenge(id)
            .filter(|c| c.purpose == purpose)
            .ok_or(UserError::ChallengeNotFound)?;
        if challenge.used {
            return Err(UserError::CodeExpired(
                "this code was already used: request a new one",
            ));
        }
        if challenge.attempts >= ATTEMPTS_PER_CHALLENGE {
            return Err(UserError::CodeExpired(
                "too many wrong codes for this challenge: request a new one",
            ));
        }
        if at >= challenge.expires_at {
            return Err(UserError::CodeExpired(
                "the code has expired: request a new one",
            ));
        }
        Ok(challenge)
    }

    /// A `CodeSent` for a new challenge, unless the destination had too many codes recently.
    fn issue(
        &self,
        channel: Channel,
        purpose: Purpose,
        challenge: NewChallenge,
        sent_to: String,
        at: DateTime<Utc>,
    ) -> Result<UserEvent, UserError> {
        let window = Duration::minutes(SEND_WINDOW_MINUTES);
        let recent: Vec<&Challenge> = self
            .challenges
            .iter()
            .filter(|c| c.channel == channel && at - c.sent_at < window)
            .collect();
        if recent.len() >= SENDS_PER_WINDOW {
            let oldest = recent.iter().map(|c| c.sent_at).min().unwrap_or(at);
            return Err(UserError::RateLimited {
                retry_after_seconds: (oldest + window - at).num_seconds().max(1),
            });
        }
        Ok(UserEvent::CodeSent {
            challenge_id: challenge.id,
            channel,
            purpose,
            digits: challenge.digits,
            expires_at: challenge.expires_at,
            sent_to,
            idempotency_key: challenge.idempotency_key,
            at,
        })
    }

    async fn decide(
        &self,
        command: UserCommand,
        services: &dyn UserServices,
    ) -> Result<Vec<UserEvent>, UserError> {
        let UserCommand { user, at, action } = command;
        match action {
            UserAction::StartTotpEnrollment { secret, params } => {
                Ok(vec![UserEvent::TotpEnrollmentStarted {
                    secret,
                    algorithm: params.algorithm,
                    digits: params.digits,
                    period: params.period,
                    at,
                }])
            }
            UserAction::ConfirmTotp {
                code,
                proof,
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
                self.require_proof(proof.as_ref())?;
                // The new code first: a typo must not cost the user the proof (a recovery
                // code, a sign-in code); a proof never checked was never accepted either.
                let Some(step) = self
                    .totp_passes(services, &user, pending, &code, at)
                    .await?
                else {
                    return Ok(self.failure(Method::Totp, at));
                };
                let mut events = match self
                    .authorize_change(services, &user, proof.as_ref(), at)
                    .await?
                {
                    Authorized::Proceed(events) => events,
                    Authorized::Refused(events) => return Ok(events),
                };
                events.push(UserEvent::TotpEnabled { step, at });
                if self.totp.is_some() {
                    // A replaced authenticator: the recovery codes the user saved stay valid.
                    events.extend(self.revoke_devices(DeviceRevocation::FactorReplaced, at));
                } else if !self.enabled() {
                    events.push(UserEvent::RecoveryCodesGenerated {
                        hashes: recovery_codes,
                        at,
                    });
                }
                Ok(events)
            }
            UserAction::Verify { proof, trust } => {
                if !self.enabled() {
                    return Err(UserError::NotEnrolled);
                }
                self.refuse_if_locked(at)?;
                Ok(match self.check(services, &user, &proof, at).await? {
                    Checked::Passed(mut events) => {
                        if let Some(device) = trust {
                            events.extend(self.trust(device, at));
                        }
                        events
                    }
                    Checked::Failed(events) => events,
                })
            }
            UserAction::EvaluateSignIn { attempt } => {
                let d = self.sign_in_decision(&attempt, at);
                Ok(vec![UserEvent::SignInEvaluated {
                    required: d.required,
                    reason: d.reason,
                    methods: d.methods,
                    trusted_device: d.trusted_device,
                    device_token_rejected: d.device_token_rejected,
                    sso_login: attempt.sso_login,
                    locked_until: d.locked_until,
                    grace_ends_at: d.grace_ends_at,
                    at,
                }])
            }
            UserAction::RevokeTrustedDevice { device_id } => {
                if !self.trusted_devices(at).any(|d| d.id == device_id) {
                    return Err(UserError::DeviceNotFound);
                }
                Ok(vec![UserEvent::DeviceTrustRevoked {
                    device_id,
                    reason: DeviceRevocation::Revoked,
                    at,
                }])
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
                        events.extend(
                            self.revoke_devices(DeviceRevocation::RecoveryCodesRegenerated, at),
                        );
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
                        events.extend(self.revoke_devices(DeviceRevocation::TwoFactorDisabled, at));
                        events.push(UserEvent::TwoFactorDisabled { method, at });
                        events
                    }
                    Checked::Failed(events) => events,
                })
            }
            UserAction::AddEmail {
                proof,
                email,
                masked,
                challenge,
            } => {
                self.refuse_if_locked(at)?;
                let mut events = match self
                    .authorize_change(services, &user, proof.as_ref(), at)
                    .await?
                {
                    Authorized::Proceed(events) => events,
                    Authorized::Refused(events) => return Ok(events),
                };
                let sent = self.issue(
                    Channel::Email,
                    Purpose::VerifyChannel,
                    challenge,
                    masked.clone(),
                    at,
                )?;
                events.push(UserEvent::EmailFactorAdded {
                    email,
                    masked,
                    replacing: self.replaces_verified(Channel::Email),
                    at,
                });
                events.push(sent);
                Ok(events)
            }
            UserAction::AddPhone {
                proof,
                phone,
                calling_code,
                region,
                masked,
                challenge,
            } => {
                self.refuse_if_locked(at)?;
                let mut events = match self
                    .authorize_change(services, &user, proof.as_ref(), at)
                    .await?
                {
                    Authorized::Proceed(events) => events,
                    Authorized::Refused(events) => return Ok(events),
                };
                let sent = self.issue(
                    Channel::Sms,
                    Purpose::VerifyChannel,
                    challenge,
                    masked.clone(),
                    at,
                )?;
                events.push(UserEvent::PhoneFactorAdded {
                    phone,
                    calling_code,
                    region,
                    masked,
                    replacing: self.replaces_verified(Channel::Sms),
                    at,
                });
                events.push(sent);
                Ok(events)
            }
            UserAction::ConfirmChannel {
                challenge_id,
                code,
                recovery_codes,
                proof,
            } => {
                self.refuse_if_locked(at)?;
                let challenge = self.answerable(&challenge_id, Purpose::VerifyChannel, at)?;
                let channel = challenge.channel;
                let (_, replacing) = verification_target(
                    self.contact(channel),
                    self.pending_contact(channel),
                    challenge.sent_at,
                )
                .ok_or(UserError::ChallengeNotFound)?;
                let digits = challenge.digits;
                self.require_proof(proof.as_ref())?;
                // The code first, as for TOTP: a typo costs an attempt, not the proof.
                if !services.challenge_code_matches(&user, &challenge_id, digits, &code) {
                    return Ok(self.failure_on(channel.method(), Some(challenge_id), at));
                }
                let mut events = match self
                    .authorize_change(services, &user, proof.as_ref(), at)
                    .await?
                {
                    Authorized::Proceed(events) => events,
                    Authorized::Refused(events) => return Ok(events),
                };
                events.push(UserEvent::ChannelVerified {
                    channel,
                    challenge_id,
                    at,
                });
                if replacing {
                    events.extend(self.revoke_devices(DeviceRevocation::FactorReplaced, at));
                }
                if !self.enabled() {
                    if recovery_codes.len() != RECOVERY_CODES {
                        return Err(UserError::BadRecoverySet);
                    }
                    events.push(UserEvent::RecoveryCodesGenerated {
                        hashes: recovery_codes,
                        at,
                    });
                }
                if self.preferred.is_none() {
                    events.push(UserEvent::PreferredChannelChosen { channel, at });
                }
                Ok(events)
            }
            UserAction::CheckProof { proof } => {
                self.decide_check_proof(services, &user, &proof, at).await
            }
            UserAction::RemoveFactor {
                method,
                proof,
                policy_enforced,
            } => {
                self.decide_remove_factor(services, &user, method, &proof, policy_enforced, at)
                    .await
            }
            UserAction::ChoosePreferredChannel { channel } => {
                if !self.verified(channel) {
                    return Err(UserError::MethodNotEnrolled(channel.method()));
                }
                if self.preferred == Some(channel) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::PreferredChannelChosen { channel, at }])
            }
            UserAction::SendCode { channel, challenge } => {
                if !self.enabled() {
                    return Err(UserError::NotEnrolled);
                }
                self.refuse_if_locked(at)?;
                let channel = channel
                    .or(self.preferred)
                    .ok_or(UserError::NoPreferredChannel)?;
                let factor = self
                    .contact(channel)
                    .filter(|f| f.verified)
                    .ok_or(UserError::MethodNotEnrolled(channel.method()))?;
                if self
                    .reusable_challenge(
                        channel,
                        Purpose::SignIn,
                        challenge.idempotency_key.as_deref(),
                        at,
                    )
                    .is_some()
                {
                    return Ok(vec![]);
                }
                Ok(vec![self.issue(
                    channel,
                    Purpose::SignIn,
                    challenge,
                    factor.masked.clone(),
                    at,
                )?])
            }
            UserAction::RecordDelivery {
                challenge_id,
                outcome,
            } => {
                let pending = self
                    .challenge(&challenge_id)
                    .is_some_and(|c| c.delivery == DeliveryState::Pending);
                if !pending {
                    // A repeat after a crash, or a challenge long gone: nothing new happened.
                    return Ok(vec![]);
                }
                Ok(vec![match outcome {
                    DeliveryOutcome::Delivered {
                        provider_message_id,
                    } => UserEvent::CodeDelivered {
                        challenge_id,
                        provider_message_id,
                        at,
                    },
                    DeliveryOutcome::Failed { error, attempts } => UserEvent::CodeDeliveryFailed {
                        challenge_id,
                        error,
                        attempts,
                        at,
                    },
                }])
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
                let mut events = self.revoke_devices(DeviceRevocation::TwoFactorReset, at);
                events.push(UserEvent::TwoFactorReset { by, reason, at });
                Ok(events)
            }
        }
    }

    /// A preferred channel whose address was replaced (and is not verified yet) gives way to
    /// the other verified channel, if any.
    fn repoint_preferred(&mut self) {
        if let Some(p) = self.preferred {
            if !self.verified(p) {
                let other = match p {
                    Channel::Email => Channel::Sms,
                    Channel::Sms => Channel::Email,
                };
                self.preferred = self.verified(other).then_some(other);
            }
        }
    }

    /// A new address or number: beside a verified one it waits (the verified one works until
    /// this is confirmed), otherwise it takes the place of whatever was there.
    fn contact_added(
        &mut self,
        channel: Channel,
        sealed: SealedSecret,
        masked: String,
        replacing: bool,
        at: DateTime<Utc>,
    ) {
        let added = ContactFactor {
            sealed,
            masked,
            verified: false,
            since: at,
        };
        let (current, pending) = match channel {
            Channel::Email => (&mut self.email, &mut self.email_pending),
            Channel::Sms => (&mut self.phone, &mut self.phone_pending),
        };
        if replacing {
            *pending = Some(added);
        } else {
            *current = Some(added);
            *pending = None;
        }
        self.repoint_preferred();
    }

    fn challenge_mut(&mut self, id: &str) -> Option<&mut Challenge> {
        self.challenges.iter_mut().find(|c| c.id == id)
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
                at,
            } => {
                self.pending_totp = Some(TotpFactor {
                    secret,
                    params: TotpParams {
                        algorithm,
                        digits,
                        period,
                    },
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
            UserEvent::CodeVerified {
                totp_step,
                challenge_id,
                at,
                ..
            } => {
                if let Some(c) = challenge_id.and_then(|id| self.challenge_mut(&id)) {
                    c.used = true;
                }
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
                challenge_id,
                ..
            } => {
                self.consecutive_failures = consecutive_failures;
                if let Some(c) = challenge_id.and_then(|id| self.challenge_mut(&id)) {
                    c.attempts += 1;
                }
            }
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
                self.trusted_devices.clear();
                self.totp = None;
                self.pending_totp = None;
                self.recovery.clear();
                self.email = None;
                self.phone = None;
                self.email_pending = None;
                self.phone_pending = None;
                self.preferred = None;
                self.challenges.clear();
            }
            UserEvent::EmailFactorAdded {
                email,
                masked,
                replacing,
                at,
            } => self.contact_added(Channel::Email, email, masked, replacing, at),
            UserEvent::PhoneFactorAdded {
                phone,
                masked,
                replacing,
                at,
                ..
            } => self.contact_added(Channel::Sms, phone, masked, replacing, at),
            UserEvent::FactorRemoved { method, .. } => {
                match method {
                    Method::Totp => {
                        self.totp = None;
                        self.pending_totp = None;
                    }
                    Method::Email => {
                        self.email = None;
                        self.email_pending = None;
                    }
                    Method::Sms => {
                        self.phone = None;
                        self.phone_pending = None;
                    }
                    Method::RecoveryCode => {}
                }
                self.repoint_preferred();
            }
            UserEvent::CodeSent {
                challenge_id,
                channel,
                purpose,
                digits,
                expires_at,
                sent_to,
                idempotency_key,
                at,
            } => {
                self.challenges.push(Challenge {
                    id: challenge_id,
                    channel,
                    purpose,
                    digits,
                    expires_at,
                    sent_at: at,
                    sent_to,
                    attempts: 0,
                    used: false,
                    idempotency_key,
                    delivery: DeliveryState::Pending,
                });
                let excess = self.challenges.len().saturating_sub(KEPT_CHALLENGES);
                self.challenges.drain(..excess);
            }
            UserEvent::CodeDelivered { challenge_id, .. } => {
                if let Some(c) = self.challenge_mut(&challenge_id) {
                    c.delivery = DeliveryState::Delivered;
                }
            }
            UserEvent::CodeDeliveryFailed { challenge_id, .. } => {
                if let Some(c) = self.challenge_mut(&challenge_id) {
                    c.delivery = DeliveryState::Failed;
                }
            }
            UserEvent::ChannelVerified {
                channel,
                challenge_id,
                at,
            } => {
                let sent_at = self.challenge(&challenge_id).map(|c| c.sent_at);
                let (current, pending) = match channel {
                    Channel::Email => (&mut self.email, &mut self.email_pending),
                    Channel::Sms => (&mut self.phone, &mut self.phone_pending),
                };
                let replacement = pending
                    .take_if(|p| sent_at.is_none_or(|sent| sent >= p.since))
                    // From now on: codes sent to the old number before the swap stop working.
                    .map(|p| ContactFactor {
                        verified: true,
                        since: at,
                        ..p
                    });
                match replacement {
                    Some(confirmed) => *current = Some(confirmed),
                    None => {
                        if let Some(f) = current.as_mut() {
                            f.verified = true;
                        }
                    }
                }
                if let Some(c) = self.challenge_mut(&challenge_id) {
                    c.used = true;
                }
                self.succeeded(at);
            }
            UserEvent::PreferredChannelChosen { channel, .. } => self.preferred = Some(channel),
            UserEvent::DeviceTrusted {
                device_id,
                token_hash,
                label,
                expires_at,
                at,
            } => {
                self.trusted_devices.retain(|d| at < d.expires_at);
                self.trusted_devices.push(TrustedDevice {
                    id: device_id,
                    token_hash,
                    label,
                    created_at: at,
                    expires_at,
                });
            }
            UserEvent::DeviceTrustRevoked { device_id, .. } => {
                self.trusted_devices.retain(|d| d.id != device_id);
            }
            UserEvent::SignInEvaluated { .. } => {}
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
            | UserEvent::FactorRemoved { at, .. }
            | UserEvent::TwoFactorReset { at, .. }
            | UserEvent::EmailFactorAdded { at, .. }
            | UserEvent::PhoneFactorAdded { at, .. }
            | UserEvent::CodeSent { at, .. }
            | UserEvent::CodeDelivered { at, .. }
            | UserEvent::CodeDeliveryFailed { at, .. }
            | UserEvent::ChannelVerified { at, .. }
            | UserEvent::PreferredChannelChosen { at, .. }
            | UserEvent::DeviceTrusted { at, .. }
            | UserEvent::DeviceTrustRevoked { at, .. }
            | UserEvent::SignInEvaluated { at, .. } => *at,
        }
    }
}

//! The sign-in decision: does this sign-in need a second factor, which methods may satisfy it,
//! and why. Decided by the user aggregate (it knows the factors, the lockout and the trusted
//! devices) from the tenant's policy as it stands, and recorded as `SignInEvaluated` so an
//! auditor can see why any sign-in did or did not need 2FA.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{User, UserEvent};
use crate::tenant::KeyedHash;
use crate::Method;

/// Why a sign-in does or does not need a second factor (the `reason` of the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SignInReason {
    /// No second factor, and the tenant does not enforce one: not required.
    NotEnrolled,
    /// The user has a second factor: required.
    Enrolled,
    /// Reserved by the API contract; not produced by the current decision table (every
    /// enforced case is `GracePeriod` or `EnrollmentRequired`, see docs/decisions.md).
    PolicyEnforced,
    /// Enforced, not enrolled, still within the grace period: not required yet.
    GracePeriod,
    /// A valid trusted-device token: not required.
    TrustedDevice,
    /// A sign-in through the tenant's SSO, which the tenant lets replace 2FA: not required.
    SsoBypass,
    /// Too many failures: the sign-in cannot complete until the lockout ends.
    LockedOut,
    /// Enforced, not enrolled, grace period over: the user must enroll before signing in.
    EnrollmentRequired,
}

impl SignInReason {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            SignInReason::NotEnrolled => "NOT_ENROLLED",
            SignInReason::Enrolled => "ENROLLED",
            SignInReason::PolicyEnforced => "POLICY_ENFORCED",
            SignInReason::GracePeriod => "GRACE_PERIOD",
            SignInReason::TrustedDevice => "TRUSTED_DEVICE",
            SignInReason::SsoBypass => "SSO_BYPASS",
            SignInReason::LockedOut => "LOCKED_OUT",
            SignInReason::EnrollmentRequired => "ENROLLMENT_REQUIRED",
        }
    }
}

impl std::fmt::Display for SignInReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parts of the tenant's policy a sign-in decision reads, as they stand at decision time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInPolicy {
    /// When enforcement was last turned on; `None` when the tenant does not enforce 2FA.
    pub enforced_since: Option<DateTime<Utc>>,
    /// Grace period, days, counted from `enforced_since` or the user's first sighting,
    /// whichever is later.
    pub grace_days: u16,
    /// SSO sign-ins skip the second factor.
    pub sso_bypass: bool,
    /// Trusted-device lifetime; 0 means trusted devices are off (and no token is honoured).
    pub trusted_device_days: u16,
    /// Methods the tenant allows.
    pub allowed_methods: BTreeSet<Method>,
}

impl SignInPolicy {
    /// When the grace period of a user first seen at `first_seen` ends, if 2FA is enforced:
    /// turning enforcement on starts every known user's grace period; users first seen later
    /// start theirs when first seen.
    pub fn grace_ends_at(&self, first_seen: DateTime<Utc>) -> Option<DateTime<Utc>> {
        grace_ends_at(self.enforced_since, self.grace_days, first_seen)
    }
}

/// When the grace period of a user first seen at `first_seen` ends under enforcement since
/// `enforced_since` (`None`: not enforced, no grace period): it starts at the later of the two.
pub fn grace_ends_at(
    enforced_since: Option<DateTime<Utc>>,
    grace_days: u16,
    first_seen: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    enforced_since.map(|since| since.max(first_seen) + Duration::days(i64::from(grace_days)))
}

/// What a sign-in presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInAttempt {
    /// The keyed hash of the trusted-device token presented, if any.
    pub device_token_hash: Option<KeyedHash>,
    /// The sign-in came through the tenant's SSO.
    pub sso_login: bool,
    /// The tenant's policy now.
    pub policy: SignInPolicy,
}

/// The answer to "does this sign-in need a second factor?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInDecision {
    /// A second factor is needed (or, for `EnrollmentRequired`, enrollment is).
    pub required: bool,
    /// Why.
    pub reason: SignInReason,
    /// The methods that can satisfy the requirement now: the user's own (allowed by the policy)
    /// or, when enrollment is required, the methods the user may enroll.
    pub methods: Vec<Method>,
    /// The trusted device that was recognised.
    pub trusted_device: Option<String>,
    /// A device token was presented but is unknown, expired or revoked.
    pub device_token_rejected: bool,
    /// End of the lockout, for `LockedOut`.
    pub locked_until: Option<DateTime<Utc>>,
    /// End of the grace period, when 2FA is enforced and the user has none.
    pub grace_ends_at: Option<DateTime<Utc>>,
}

impl User {
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

    /// `evaluateSignIn`: the decision, recorded whatever it is.
    pub(super) fn decide_evaluate_sign_in(
        &self,
        attempt: &SignInAttempt,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        let d = self.sign_in_decision(attempt, at);
        vec![UserEvent::SignInEvaluated {
            required: d.required,
            reason: d.reason,
            methods: d.methods,
            trusted_device: d.trusted_device,
            device_token_rejected: d.device_token_rejected,
            sso_login: attempt.sso_login,
            locked_until: d.locked_until,
            grace_ends_at: d.grace_ends_at,
            at,
        }]
    }
}

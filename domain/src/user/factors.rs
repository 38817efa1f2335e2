//! Changing the factors of an account that already has 2FA: every add, replace or remove needs
//! a current factor in the same call, a replaced factor keeps working until its replacement is
//! confirmed, and trusted devices go whenever a factor is replaced or removed.
//!
//! The proof is checked like a sign-in code: a wrong one is a recorded failure that counts toward
//! the lockout, a TOTP code used as proof is a used time step. It replaces the 10-minute window
//! after any verification that used to authorise changes, since a session hijacked right after
//! sign-in was always inside that window.

use chrono::{DateTime, Utc};

use super::aggregate::Context;
use super::verify::Checked;
#[cfg(doc)]
use super::UserAction;
use super::{ContactFactor, DeviceRevocation, Proof, User, UserError, UserEvent, RECOVERY_CODES};
use crate::channel::Channel;
use crate::tenant::KeyedHash;
use crate::Method;

/// What checking the proof of a change decided.
pub(super) enum Authorized {
    /// Go on; these events (the proof's success, if one was needed) come first.
    Proceed(Vec<UserEvent>),
    /// The proof was wrong: record these (the failure) and nothing else.
    Refused(Vec<UserEvent>),
}

impl User {
    /// Checks the proof of a factor change. A user without an active factor needs none (the
    /// first factor is what enrollment proves); one with a factor must prove it now.
    pub(super) async fn authorize_change(
        &self,
        cx: &Context<'_>,
        proof: Option<&Proof>,
    ) -> Result<Authorized, UserError> {
        if !self.enabled() {
            return Ok(Authorized::Proceed(vec![]));
        }
        let proof = proof.ok_or(UserError::ProofRequired)?;
        Ok(match self.check(cx, proof).await? {
            Checked::Passed(events) => Authorized::Proceed(events),
            Checked::Failed(events) => Authorized::Refused(events),
        })
    }

    /// Refuses a change on an enabled account that brings no proof, before anything is
    /// checked or recorded.
    pub(super) fn require_proof(&self, proof: Option<&Proof>) -> Result<(), UserError> {
        if self.enabled() && proof.is_none() {
            return Err(UserError::ProofRequired);
        }
        Ok(())
    }

    /// [`UserAction::CheckProof`]: the lockout, then the proof; only a failure is recorded.
    pub(super) async fn decide_check_proof(
        &self,
        cx: &Context<'_>,
        proof: &Proof,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self.enabled() {
            return Ok(vec![]);
        }
        self.refuse_if_locked(cx.at)?;
        Ok(match self.check(cx, proof).await? {
            Checked::Passed(_) => vec![],
            Checked::Failed(events) => events,
        })
    }

    /// `regenerateRecoveryCodes`: a current factor replaces every code, and the devices trusted
    /// under the old set go with it.
    pub(super) async fn decide_regenerate_recovery_codes(
        &self,
        cx: &Context<'_>,
        proof: &Proof,
        recovery_codes: Vec<KeyedHash>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self.enabled() {
            return Err(UserError::NotEnrolled);
        }
        self.refuse_if_locked(cx.at)?;
        if recovery_codes.len() != RECOVERY_CODES {
            return Err(UserError::BadRecoverySet);
        }
        Ok(match self.check(cx, proof).await? {
            Checked::Passed(mut events) => {
                events.push(UserEvent::RecoveryCodesGenerated {
                    hashes: recovery_codes,
                    at: cx.at,
                });
                events
                    .extend(self.revoke_devices(DeviceRevocation::RecoveryCodesRegenerated, cx.at));
                events
            }
            Checked::Failed(events) => events,
        })
    }

    /// `disableTwoFactor`: every factor goes, with a current one as proof, unless the tenant
    /// enforces 2FA.
    pub(super) async fn decide_disable(
        &self,
        cx: &Context<'_>,
        proof: &Proof,
        policy_enforced: bool,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self.enabled() {
            return Err(UserError::NotEnrolled);
        }
        if policy_enforced {
            return Err(UserError::PolicyEnforced);
        }
        self.refuse_if_locked(cx.at)?;
        Ok(match self.check(cx, proof).await? {
            Checked::Passed(mut events) => {
                events.extend(self.revoke_devices(DeviceRevocation::TwoFactorDisabled, cx.at));
                events.push(UserEvent::TwoFactorDisabled {
                    method: proof.method,
                    at: cx.at,
                });
                events
            }
            Checked::Failed(events) => events,
        })
    }

    /// Whether a new address or number for `channel` waits beside a verified one (which keeps
    /// working until the new one is confirmed) instead of taking its place at once.
    pub(super) fn replaces_verified(&self, channel: Channel) -> bool {
        self.contact(channel).is_some_and(|f| f.verified)
    }

    /// `removeFactor`: the factor goes, its trusted devices with it; the last factor takes the
    /// whole of 2FA with it (as `disableTwoFactor` would), which an enforcing policy forbids.
    pub(super) async fn decide_remove_factor(
        &self,
        cx: &Context<'_>,
        method: Method,
        proof: &Proof,
        policy_enforced: bool,
    ) -> Result<Vec<UserEvent>, UserError> {
        let at = cx.at;
        if !self.enabled() {
            return Err(UserError::NotEnrolled);
        }
        let has = match method {
            Method::Totp => self.totp.is_some(),
            Method::Email => self.contact(Channel::Email).is_some(),
            Method::Sms => self.contact(Channel::Sms).is_some(),
            Method::WebAuthn => !self.webauthn.credentials.is_empty(),
            Method::RecoveryCode => return Err(UserError::RecoveryCodesNotAFactor),
        };
        if !has {
            return Err(UserError::MethodNotEnrolled(method));
        }
        let last = self.methods_other_than(method) == 0;
        if last && policy_enforced {
            return Err(UserError::PolicyEnforced);
        }
        self.refuse_if_locked(at)?;
        let mut events = match self.check(cx, proof).await? {
            Checked::Passed(events) => events,
            Checked::Failed(events) => return Ok(events),
        };
        events.extend(self.revoke_devices(DeviceRevocation::FactorRemoved, at));
        events.push(UserEvent::FactorRemoved { method, at });
        if last {
            events.push(UserEvent::TwoFactorDisabled {
                method: proof.method,
                at,
            });
        }
        Ok(events)
    }

    /// Active factors other than `method` (recovery codes are not a factor of their own).
    pub(super) fn methods_other_than(&self, method: Method) -> usize {
        [
            (Method::Totp, self.totp.is_some()),
            (Method::Email, self.verified(Channel::Email)),
            (Method::Sms, self.verified(Channel::Sms)),
            (Method::WebAuthn, !self.webauthn.credentials.is_empty()),
        ]
        .into_iter()
        .filter(|(m, active)| *active && *m != method)
        .count()
    }
}

/// Where a verification challenge of `channel` sent at `sent_at` went: the address waiting to
/// replace the verified one, or the current one.
pub(super) fn verification_target<'a>(
    current: Option<&'a ContactFactor>,
    pending: Option<&'a ContactFactor>,
    sent_at: DateTime<Utc>,
) -> Option<(&'a ContactFactor, bool)> {
    match pending {
        Some(p) if sent_at >= p.since => Some((p, true)),
        _ => current
            .filter(|c| sent_at >= c.since && !c.verified)
            .map(|c| (c, false)),
    }
}

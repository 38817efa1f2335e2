//! Checking a code: a TOTP code (each time step once), a recovery code (each once), or an email
//! or SMS code answered with its challenge. Every flow that asks for a proof checks it here, so a
//! wrong code costs the same wherever it is typed.

use chrono::{DateTime, Utc};

use super::aggregate::Context;
use super::state::same_hash;
use super::{
    normalize_recovery_code, Challenge, NewTrustedDevice, Proof, TotpFactor, User, UserError,
    UserEvent, ATTEMPTS_PER_CHALLENGE,
};
use crate::channel::{Channel, Purpose};
use crate::Method;

/// Result of checking a proof: the events to record either way.
pub(super) enum Checked {
    Passed(Vec<UserEvent>),
    Failed(Vec<UserEvent>),
}

impl User {
    /// `verify`: a sign-in's second factor, and the device to trust if it passes.
    pub(super) async fn decide_verify(
        &self,
        cx: &Context<'_>,
        proof: &Proof,
        trust: Option<NewTrustedDevice>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self.enabled() {
            return Err(UserError::NotEnrolled);
        }
        self.refuse_if_locked(cx.at)?;
        Ok(match self.check(cx, proof).await? {
            Checked::Passed(mut events) => {
                if let Some(device) = trust {
                    events.extend(self.trust(device, cx.at));
                }
                events
            }
            Checked::Failed(events) => events,
        })
    }

    /// The time step `code` answers under `factor`, if it was not used already.
    pub(super) async fn totp_passes(
        &self,
        cx: &Context<'_>,
        factor: &TotpFactor,
        code: &str,
    ) -> Result<Option<u64>, UserError> {
        let step = cx
            .checker
            .totp_step(cx.user, &factor.secret, &factor.params, code, cx.at)
            .await?;
        // RFC 6238 §5.2: a time step is accepted once; never one at or before the last.
        Ok(step.filter(|s| self.last_totp_step.is_none_or(|last| *s > last)))
    }

    /// Checks `proof` against the user's active factors.
    pub(super) async fn check(
        &self,
        cx: &Context<'_>,
        proof: &Proof,
    ) -> Result<Checked, UserError> {
        let at = cx.at;
        match proof.method {
            Method::Totp => {
                let factor = self
                    .totp
                    .as_ref()
                    .ok_or(UserError::MethodNotEnrolled(Method::Totp))?;
                Ok(match self.totp_passes(cx, factor, &proof.code).await? {
                    Some(step) => Checked::Passed(vec![UserEvent::CodeVerified {
                        method: Method::Totp,
                        totp_step: Some(step),
                        challenge_id: None,
                        at,
                    }]),
                    None => Checked::Failed(self.failure(Method::Totp, at)),
                })
            }
            Method::RecoveryCode => self.check_recovery_code(cx, &proof.code),
            Method::Email | Method::Sms => self.check_challenge_code(cx, proof),
            Method::WebAuthn => self.check_webauthn(cx, proof).await,
        }
    }

    fn check_recovery_code(&self, cx: &Context<'_>, code: &str) -> Result<Checked, UserError> {
        if self.recovery_codes_remaining() == 0 {
            return Err(UserError::MethodNotEnrolled(Method::RecoveryCode));
        }
        let hash = cx
            .checker
            .recovery_code_hash(cx.user, &normalize_recovery_code(code));
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
                at: cx.at,
            }]),
            None => Checked::Failed(self.failure(Method::RecoveryCode, cx.at)),
        })
    }

    fn check_challenge_code(&self, cx: &Context<'_>, proof: &Proof) -> Result<Checked, UserError> {
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
        let challenge = self.answerable(id, Purpose::SignIn, cx.at)?;
        if challenge.channel != channel || challenge.sent_at < factor.since {
            return Err(UserError::ChallengeNotFound);
        }
        Ok(
            if cx
                .checker
                .challenge_code_matches(cx.user, id, challenge.digits, &proof.code)
            {
                Checked::Passed(vec![UserEvent::CodeVerified {
                    method: proof.method,
                    totp_step: None,
                    challenge_id: Some(id.to_owned()),
                    at: cx.at,
                }])
            } else {
                Checked::Failed(self.failure_on(proof.method, Some(id.to_owned()), cx.at))
            },
        )
    }

    /// A challenge for `purpose` that may still be answered at `at`.
    pub(super) fn answerable(
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
}

//! Email and SMS: registering an address or number (proven with a code sent to it), the
//! preferred channel, sending sign-in codes within the send limits, and their delivery.

use chrono::{DateTime, Duration, Utc};

use super::aggregate::Context;
use super::factors::{verification_target, Authorized};
use super::{
    Challenge, ContactFactor, DeliveryOutcome, DeliveryState, DeviceRevocation, NewChallenge,
    Proof, User, UserError, UserEvent, ATTEMPTS_PER_CHALLENGE, RECOVERY_CODES,
    RESEND_WINDOW_SECONDS, SENDS_PER_WINDOW, SEND_WINDOW_MINUTES,
};
use crate::channel::{Channel, Purpose};
use crate::locale::Locale;
use crate::tenant::KeyedHash;

/// A new address or number as `addEmail` and `addPhone` bring it.
pub(super) struct NewContact {
    pub(super) channel: Channel,
    pub(super) masked: String,
    pub(super) challenge: NewChallenge,
    pub(super) locale: Option<Locale>,
}

impl User {
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

    /// `addEmail` and `addPhone`: the proof of a current factor if there is one, then the new
    /// address (announced by `added`, told whether it waits beside a verified one) and the
    /// code that verifies it.
    pub(super) async fn decide_add_contact(
        &self,
        cx: &Context<'_>,
        proof: Option<&Proof>,
        contact: NewContact,
        added: impl FnOnce(bool) -> UserEvent,
    ) -> Result<Vec<UserEvent>, UserError> {
        self.refuse_if_locked(cx.at)?;
        let mut events = match self.authorize_change(cx, proof).await? {
            Authorized::Proceed(events) => events,
            Authorized::Refused(events) => return Ok(events),
        };
        let NewContact {
            channel,
            masked,
            challenge,
            locale,
        } = contact;
        let sent = self.issue(channel, Purpose::VerifyChannel, challenge, masked, cx.at)?;
        events.push(added(self.replaces_verified(channel)));
        events.extend(self.locale_change(locale, cx.at));
        events.push(sent);
        Ok(events)
    }

    /// `confirmChannel`: the code sent to the new address, then the proof of a current factor
    /// if there is one. The first verified factor brings the recovery codes and becomes the
    /// preferred channel.
    pub(super) async fn decide_confirm_channel(
        &self,
        cx: &Context<'_>,
        challenge_id: String,
        code: &str,
        proof: Option<&Proof>,
        recovery_codes: Vec<KeyedHash>,
    ) -> Result<Vec<UserEvent>, UserError> {
        let at = cx.at;
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
        self.require_proof(proof)?;
        // The code first, as for TOTP: a typo costs an attempt, not the proof.
        if !cx
            .checker
            .challenge_code_matches(cx.user, &challenge_id, digits, code)
        {
            return Ok(self.failure_on(channel.method(), Some(challenge_id), at));
        }
        let mut events = match self.authorize_change(cx, proof).await? {
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

    /// `choosePreferredChannel`: only a verified channel; choosing the current one again
    /// records nothing.
    pub(super) fn decide_choose_preferred(
        &self,
        channel: Channel,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self.verified(channel) {
            return Err(UserError::MethodNotEnrolled(channel.method()));
        }
        if self.preferred == Some(channel) {
            return Ok(vec![]);
        }
        Ok(vec![UserEvent::PreferredChannelChosen { channel, at }])
    }

    /// `sendCode`: a sign-in code by `channel` (or the preferred one), unless an open challenge
    /// can be answered instead.
    pub(super) fn decide_send_code(
        &self,
        channel: Option<Channel>,
        challenge: NewChallenge,
        locale: Option<Locale>,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
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
        let sent = self.issue(
            channel,
            Purpose::SignIn,
            challenge,
            factor.masked.clone(),
            at,
        )?;
        let mut events: Vec<UserEvent> = self.locale_change(locale, at).into_iter().collect();
        events.push(sent);
        Ok(events)
    }

    /// A `LocaleChanged` when a request brings a language other than the user's. It goes with
    /// the code the request sends (before its `CodeSent`, so that code is written in it) and
    /// only then: a refused request, or one answered with an open challenge, changes nothing.
    fn locale_change(&self, locale: Option<Locale>, at: DateTime<Utc>) -> Option<UserEvent> {
        let locale = locale?;
        (self.locale.as_ref() != Some(&locale)).then(|| UserEvent::LocaleChanged {
            locale: locale.as_str().to_owned(),
            at,
        })
    }

    /// The delivery worker's report on a challenge's message; only the first one counts.
    pub(super) fn decide_record_delivery(
        &self,
        challenge_id: String,
        outcome: DeliveryOutcome,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        let pending = self
            .challenge(&challenge_id)
            .is_some_and(|c| c.delivery == DeliveryState::Pending);
        if !pending {
            // A repeat after a crash, or a challenge long gone: nothing new happened.
            return vec![];
        }
        vec![match outcome {
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
        }]
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
}

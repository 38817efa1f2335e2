//! Folding events into the state, one function per family of events. Nothing here decides: an
//! event is a fact, applied the same way when it is recorded and when it is replayed.

use super::state::KEPT_CHALLENGES;
use super::{
    Challenge, ContactFactor, DeliveryState, RecoverySlot, TotpFactor, TrustedDevice, User,
    UserEvent,
};
use crate::channel::Channel;
use crate::locale::Locale;
use crate::secrets::{SealedSecret, TotpParams};
use crate::Method;
use chrono::{DateTime, Utc};

impl User {
    /// Folds one event into the state.
    pub(super) fn evolve(&mut self, event: UserEvent) {
        if self.first_seen_at.is_none() {
            self.first_seen_at = Some(event.at());
        }
        match event {
            UserEvent::TotpEnrollmentStarted { .. }
            | UserEvent::TotpEnabled { .. }
            | UserEvent::RecoveryCodesGenerated { .. } => self.apply_enrollment(event),
            UserEvent::CodeVerified { .. }
            | UserEvent::RecoveryCodeUsed { .. }
            | UserEvent::VerificationFailed { .. }
            | UserEvent::UserLockedOut { .. }
            | UserEvent::LockoutCleared { .. } => self.apply_verification(event),
            UserEvent::EmailFactorAdded { .. }
            | UserEvent::PhoneFactorAdded { .. }
            | UserEvent::ChannelVerified { .. }
            | UserEvent::PreferredChannelChosen { .. } => self.apply_channel(event),
            UserEvent::CodeSent { .. }
            | UserEvent::CodeDelivered { .. }
            | UserEvent::CodeDeliveryFailed { .. } => self.apply_challenge(event),
            UserEvent::DeviceTrusted { .. } | UserEvent::DeviceTrustRevoked { .. } => {
                self.apply_device(event)
            }
            UserEvent::FactorRemoved { .. }
            | UserEvent::TwoFactorDisabled { .. }
            | UserEvent::TwoFactorReset { .. }
            | UserEvent::UserErased { .. } => self.apply_removal(event),
            UserEvent::SignInEvaluated { .. } => {}
            UserEvent::SecretsResealed { seals, .. } => self.apply_resealed(seals),
            // A tag no longer supported reads as none: the tenant's default, else English.
            UserEvent::LocaleChanged { locale, .. } => self.locale = Locale::parse(&locale).ok(),
            UserEvent::WebAuthnRegistrationStarted { .. }
            | UserEvent::WebAuthnCredentialRegistered { .. }
            | UserEvent::WebAuthnAuthenticationStarted { .. }
            | UserEvent::WebAuthnCredentialUsed { .. }
            | UserEvent::WebAuthnCounterRegressed { .. }
            | UserEvent::WebAuthnCredentialRemoved { .. } => self.apply_webauthn(event),
            UserEvent::NotificationQueued { .. }
            | UserEvent::NotificationDelivered { .. }
            | UserEvent::NotificationDeliveryFailed { .. } => self.apply_notification(event),
        }
    }

    // Each family function below is called by `evolve` with its own events only; the catch-all
    // arms are never reached.

    fn apply_enrollment(&mut self, event: UserEvent) {
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
                self.step_used(step);
                self.succeeded(at);
            }
            UserEvent::RecoveryCodesGenerated { hashes, .. } => {
                self.recovery = hashes
                    .into_iter()
                    .map(|hash| RecoverySlot { hash, used: false })
                    .collect();
            }
            _ => {}
        }
    }

    fn apply_verification(&mut self, event: UserEvent) {
        match event {
            UserEvent::CodeVerified {
                totp_step,
                challenge_id,
                at,
                ..
            } => {
                if let Some(id) = challenge_id {
                    self.webauthn_challenge_spent(&id);
                    if let Some(c) = self.challenge_mut(&id) {
                        c.used = true;
                    }
                }
                if let Some(step) = totp_step {
                    self.step_used(step);
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
                method,
                consecutive_failures,
                challenge_id,
                ..
            } => {
                self.consecutive_failures = consecutive_failures;
                if let Some(id) = challenge_id {
                    // A WebAuthn ceremony answers once: a wrong assertion spends it.
                    if method == Method::WebAuthn {
                        self.webauthn_challenge_spent(&id);
                    }
                    if let Some(c) = self.challenge_mut(&id) {
                        c.attempts += 1;
                    }
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
            UserEvent::LockoutCleared { .. } => self.unlock(),
            _ => {}
        }
    }

    fn apply_channel(&mut self, event: UserEvent) {
        match event {
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
            UserEvent::ChannelVerified {
                channel,
                challenge_id,
                at,
            } => {
                let sent_at = self.challenge(&challenge_id).map(|c| c.sent_at);
                let (current, pending) = self.contact_slots(channel);
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
            _ => {}
        }
    }

    fn apply_challenge(&mut self, event: UserEvent) {
        match event {
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
            _ => {}
        }
    }

    fn apply_device(&mut self, event: UserEvent) {
        match event {
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
            _ => {}
        }
    }

    fn apply_removal(&mut self, event: UserEvent) {
        match event {
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
                    Method::WebAuthn => self.webauthn = Default::default(),
                    Method::RecoveryCode => {}
                }
                self.repoint_preferred();
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
                self.webauthn = Default::default();
            }
            UserEvent::TwoFactorReset { .. } => {
                *self = User {
                    first_seen_at: self.first_seen_at,
                    // A language is not a factor: the user still reads theirs.
                    locale: self.locale.take(),
                    // Steps already used stay used, whatever secret comes next.
                    last_totp_step: self.last_totp_step,
                    // Notices still on their way (one may tell of this very reset) go on.
                    notifications: std::mem::take(&mut self.notifications),
                    ..User::default()
                };
            }
            // A new start: only what keeps old codes from counting again survives. Notices
            // still queued are dropped, their address sealed under the destroyed key.
            UserEvent::UserErased { .. } => {
                *self = User {
                    first_seen_at: self.first_seen_at,
                    last_totp_step: self.last_totp_step,
                    ..User::default()
                };
            }
            _ => {}
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
        let (current, pending) = self.contact_slots(channel);
        if replacing {
            *pending = Some(added);
        } else {
            *current = Some(added);
            *pending = None;
        }
        self.repoint_preferred();
    }

    /// The current and the waiting address (or number) of `channel`.
    fn contact_slots(
        &mut self,
        channel: Channel,
    ) -> (&mut Option<ContactFactor>, &mut Option<ContactFactor>) {
        match channel {
            Channel::Email => (&mut self.email, &mut self.email_pending),
            Channel::Sms => (&mut self.phone, &mut self.phone_pending),
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

    fn challenge_mut(&mut self, id: &str) -> Option<&mut Challenge> {
        self.challenges.iter_mut().find(|c| c.id == id)
    }

    /// Time steps at or before the last accepted one are never accepted again.
    fn step_used(&mut self, step: u64) {
        self.last_totp_step = Some(self.last_totp_step.map_or(step, |l| l.max(step)));
    }

    /// A success ends the failure count and any lockout.
    pub(super) fn succeeded(&mut self, at: DateTime<Utc>) {
        self.unlock();
        self.last_verified_at = Some(at);
    }

    fn unlock(&mut self) {
        self.consecutive_failures = 0;
        self.lockouts = 0;
        self.locked_until = None;
        self.admin_lock = false;
    }
}

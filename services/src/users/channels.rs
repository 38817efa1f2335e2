//! Email and SMS: registering an address or number, confirming it with its code, the preferred
//! channel, and sending sign-in codes.

use twofold_domain::channel::{Channel, Purpose};
use twofold_domain::contact::{EmailAddress, PhoneNumber};
use twofold_domain::user::{NewChallenge, User, UserAction, UserEvent, UserRef};
use twofold_domain::{Locale, Method};

use super::crypto::contact_context;
use super::errors::outcome;
use super::run::CodeSend;
use super::views::challenge_view;
use super::{parse_user, proof, ChallengeView, ProofInput, RecoveryCodes, UserService, UserStatus};
use crate::encoding::base32_lower;
use crate::{Call, ServiceError};

/// The `locale` argument: a BCP 47 tag of a supported language (the domain's rule).
fn parse_locale(raw: Option<&str>) -> Result<Option<Locale>, ServiceError> {
    raw.map(Locale::parse)
        .transpose()
        .map_err(|e| ServiceError::InvalidInput(e.to_string()))
}

/// Longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 128;

impl UserService {
    pub(super) fn new_challenge(
        &self,
        policy: &twofold_domain::Policy,
        idempotency_key: Option<&str>,
    ) -> Result<NewChallenge, ServiceError> {
        if let Some(key) = idempotency_key {
            if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY {
                return Err(ServiceError::InvalidInput(format!(
                    "idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
                )));
            }
        }
        let mut id = [0u8; 16];
        self.entropy.fill(&mut id);
        Ok(NewChallenge {
            id: base32_lower(&id),
            digits: policy.code_digits,
            expires_at: self.clock.now()
                + chrono::Duration::seconds(i64::from(policy.code_ttl_seconds)),
            idempotency_key: idempotency_key.map(str::to_owned),
        })
    }

    /// Registers an email address (sealed) and sends it a verification code.
    pub async fn add_email(
        &self,
        call: &Call,
        user_id: &str,
        email: &str,
        change: Option<&ProofInput>,
        locale: Option<&str>,
    ) -> Result<ChallengeView, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let email = EmailAddress::parse(email).map_err(ServiceError::invalid)?;
        let locale = parse_locale(locale)?;
        let tenant = self.tenant(call.tenant()).await?;
        Self::require_method(&tenant.policy, Method::Email)?;
        let change = Self::change_proof(&tenant.policy, change)?;
        let challenge = self.new_challenge(&tenant.policy, None)?;
        let id = challenge.id.clone();
        let sealed = self
            .crypto
            .sealer
            .seal_for_user(
                &user,
                &contact_context(&user, Channel::Email),
                email.as_str().as_bytes(),
            )
            .await?;
        let (state, events, at) = self
            .run_send(
                call,
                &user,
                CodeSend {
                    tenant: &tenant,
                    channel: Channel::Email,
                    destination: email.as_str(),
                    challenge_id: &id,
                },
                UserAction::AddEmail {
                    proof: change,
                    email: sealed,
                    masked: email.masked(),
                    challenge,
                    locale,
                },
            )
            .await?;
        outcome(&events, at)?;
        challenge_view(&state, &id)
    }

    /// Registers a phone number (E.164, sealed) and sends it a verification code by SMS.
    pub async fn add_phone(
        &self,
        call: &Call,
        user_id: &str,
        phone: &str,
        change: Option<&ProofInput>,
        locale: Option<&str>,
    ) -> Result<ChallengeView, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let phone = PhoneNumber::parse(phone).map_err(ServiceError::invalid)?;
        let locale = parse_locale(locale)?;
        let tenant = self.tenant(call.tenant()).await?;
        Self::require_method(&tenant.policy, Method::Sms)?;
        let change = Self::change_proof(&tenant.policy, change)?;
        let allowed = &tenant.policy.allowed_calling_codes;
        if !allowed.is_empty() && !allowed.contains(&phone.calling_code()) {
            let list: Vec<String> = allowed.iter().map(|c| format!("+{c}")).collect();
            return Err(ServiceError::InvalidInput(format!(
                "phone numbers with country code +{} are not accepted here; allowed: {}",
                phone.calling_code(),
                list.join(", ")
            )));
        }
        let challenge = self.new_challenge(&tenant.policy, None)?;
        let id = challenge.id.clone();
        let sealed = self
            .crypto
            .sealer
            .seal_for_user(
                &user,
                &contact_context(&user, Channel::Sms),
                phone.e164().as_bytes(),
            )
            .await?;
        let (state, events, at) = self
            .run_send(
                call,
                &user,
                CodeSend {
                    tenant: &tenant,
                    channel: Channel::Sms,
                    destination: phone.e164(),
                    challenge_id: &id,
                },
                UserAction::AddPhone {
                    proof: change,
                    phone: sealed,
                    calling_code: phone.calling_code().to_string(),
                    region: phone.region().map(str::to_owned),
                    masked: phone.masked(),
                    challenge,
                    locale,
                },
            )
            .await?;
        outcome(&events, at)?;
        challenge_view(&state, &id)
    }

    /// Confirms a channel with its code; returns recovery codes if this enabled 2FA.
    pub async fn confirm_channel(
        &self,
        call: &Call,
        user_id: &str,
        challenge_id: &str,
        code: &str,
        change: Option<&ProofInput>,
    ) -> Result<Option<RecoveryCodes>, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let tenant = self.tenant(call.tenant()).await?;
        let change = Self::change_proof(&tenant.policy, change)?;
        let state = self
            .commands
            .load(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)?;
        if let Some(challenge) = state.challenge(challenge_id) {
            self.allowed(call.tenant(), challenge.channel.method())
                .await?;
        }
        let (codes, hashes) = self.new_recovery_codes(&user);
        let (_, events, at) = self
            .run(
                call,
                &user,
                UserAction::ConfirmChannel {
                    challenge_id: challenge_id.to_owned(),
                    code: proof(Method::Email, code, None)?.code,
                    recovery_codes: hashes,
                    proof: change,
                },
            )
            .await?;
        outcome(&events, at)?;
        let issued = events
            .iter()
            .any(|e| matches!(e, UserEvent::RecoveryCodesGenerated { .. }));
        Ok(issued.then_some(codes))
    }

    /// Chooses the default channel for sign-in codes.
    pub async fn set_preferred_channel(
        &self,
        call: &Call,
        user_id: &str,
        channel: Channel,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        self.allowed(call.tenant(), channel.method()).await?;
        let (state, _, at) = self
            .run(call, &user, UserAction::ChoosePreferredChannel { channel })
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    /// Sends a sign-in code by `channel` (or the preferred one); a retry with the same
    /// idempotency key, or a resend within 30 s, returns the open challenge without sending
    /// (and without recording `locale`).
    pub async fn send_code(
        &self,
        call: &Call,
        user_id: &str,
        channel: Option<Channel>,
        idempotency_key: Option<&str>,
        locale: Option<&str>,
    ) -> Result<ChallengeView, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let locale = parse_locale(locale)?;
        let tenant = self.tenant(call.tenant()).await?;
        if let Some(c) = channel {
            Self::require_method(&tenant.policy, c.method())?;
        }
        // The command decides again on the stored state; this read picks the destination
        // whose caps are reserved and a challenge to hand back.
        let current = self
            .commands
            .read(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)?;
        let effective = channel.or(current.preferred_channel());
        if let Some(c) = effective {
            // A retry or a resend gets the open challenge, whatever the budget says.
            let now = self.clock.now();
            if let Some(open) = current.reusable_challenge(c, Purpose::SignIn, idempotency_key, now)
            {
                return Ok(open.into());
            }
        }
        if let Some(c) = effective {
            Self::require_method(&tenant.policy, c.method())?;
        }
        let challenge = self.new_challenge(&tenant.policy, idempotency_key)?;
        let id = challenge.id.clone();
        let action = UserAction::SendCode {
            channel,
            challenge,
            locale,
        };
        // Without an address for the channel the aggregate refuses the send: nothing to count.
        let destination = match effective {
            Some(c) => self.destination(&user, &current, c).await?.map(|d| (c, d)),
            None => None,
        };
        let (state, events, at) = match &destination {
            Some((c, d)) => {
                let send = CodeSend {
                    tenant: &tenant,
                    channel: *c,
                    destination: d,
                    challenge_id: &id,
                };
                self.run_send(call, &user, send, action).await?
            }
            None => self.run(call, &user, action).await?,
        };
        if events.is_empty() {
            let channel = channel
                .or(state.preferred_channel())
                .unwrap_or(Channel::Email);
            let reused = state
                .reusable_challenge(channel, Purpose::SignIn, idempotency_key, at)
                .ok_or_else(|| ServiceError::Internal("no challenge to return".into()))?;
            return Ok(reused.into());
        }
        challenge_view(&state, &id)
    }

    /// The address or number registered for `channel`, opened from its seal.
    pub(super) async fn destination(
        &self,
        user: &UserRef,
        state: &User,
        channel: Channel,
    ) -> Result<Option<zeroize::Zeroizing<String>>, ServiceError> {
        let Some(contact) = state.contact(channel) else {
            return Ok(None);
        };
        let destination = self
            .crypto
            .open_contact(user, channel, &contact.sealed)
            .await?;
        Ok(Some(destination))
    }
}

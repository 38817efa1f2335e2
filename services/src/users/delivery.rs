//! The delivery worker's side of a user: what to send for a challenge, and how it went.

use twofold_domain::user::{DeliveryOutcome, Notifications, UserAction, UserCommand, UserRef};

use super::UserService;
use crate::{RequestContext, ServiceError};

impl UserService {
    /// Records how the delivery of a challenge ended (the delivery worker). `false`: nothing was
    /// recorded, because the outcome already was or the challenge is gone (a reset or a
    /// disable removed it while its code was on its way).
    pub async fn record_delivery(
        &self,
        user: &UserRef,
        challenge_id: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, ServiceError> {
        self.record_outcome(
            user,
            format!("delivery-{challenge_id}"),
            UserAction::RecordDelivery {
                challenge_id: challenge_id.to_owned(),
                outcome,
            },
        )
        .await
    }

    /// Runs the worker's record of an outcome as the system, under `request_id`.
    async fn record_outcome(
        &self,
        user: &UserRef,
        request_id: String,
        action: UserAction,
    ) -> Result<bool, ServiceError> {
        let at = self.clock.now();
        let ctx = RequestContext::system(request_id);
        let executed = self
            .commands
            .execute(
                &user.aggregate_id(),
                UserCommand {
                    user: user.clone(),
                    at,
                    action,
                    notifications: Notifications::default(),
                },
                ctx.metadata(&user.tenant, &crate::Actor::System),
            )
            .await?;
        Ok(!executed.events.is_empty())
    }

    /// The tenant's own delivery providers, if it set any (the delivery worker).
    pub(crate) async fn tenant_delivery(
        &self,
        tenant: &twofold_domain::TenantId,
    ) -> Result<Option<twofold_domain::tenant::TenantDelivery>, ServiceError> {
        Ok(self.tenant(tenant).await?.delivery)
    }

    /// What the delivery worker needs to send a challenge's code: the message, or `None` when
    /// there is nothing to send any more (the challenge is gone, spent, expired or already
    /// recorded as delivered).
    pub(crate) async fn outgoing(
        &self,
        user: &UserRef,
        challenge_id: &str,
    ) -> Result<Option<crate::ports::OutgoingCode>, ServiceError> {
        let state = self
            .commands
            .read(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)?;
        let now = self.clock.now();
        let Some(challenge) = state.challenge(challenge_id) else {
            return Ok(None);
        };
        let done = challenge.used
            || now >= challenge.expires_at
            || challenge.delivery != twofold_domain::user::DeliveryState::Pending;
        // A code goes where it was meant to: never to an address that replaced it since.
        let Some(contact) = state.destination_of(challenge).filter(|_| !done) else {
            return Ok(None);
        };
        let destination = self
            .crypto
            .open_contact(user, challenge.channel, &contact.sealed)
            .await?;
        let tenant = self.tenant(&user.tenant).await?;
        let tenant_name = tenant.sender_name().to_owned();
        let remaining = (challenge.expires_at - now).num_seconds().max(1);
        Ok(Some(crate::ports::OutgoingCode {
            challenge_id: challenge.id.clone(),
            tenant_name,
            channel: challenge.channel,
            purpose: challenge.purpose,
            destination,
            code: self
                .crypto
                .challenge_code(user, &challenge.id, challenge.digits),
            valid_seconds: u32::try_from(remaining).unwrap_or(u32::MAX),
            language: twofold_domain::Language::choose(
                state.locale(),
                tenant.policy.default_locale.as_ref(),
            ),
            web_host: tenant
                .policy
                .web_origin
                .as_ref()
                .map(|o| o.host().to_owned()),
        }))
    }
}

impl UserService {
    /// Records how the delivery of a security notice ended (the delivery worker); recorded
    /// once, whatever the worker retries.
    pub async fn record_notification(
        &self,
        user: &UserRef,
        notification_id: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, ServiceError> {
        self.record_outcome(
            user,
            format!("notice-{notification_id}"),
            UserAction::RecordNotification {
                notification_id: notification_id.to_owned(),
                outcome,
            },
        )
        .await
    }

    /// The notice to send for `notification_id`, written in the user's language; `None` when
    /// there is nothing to send any more (its outcome is recorded, or it is no longer kept).
    /// It goes to the destination it was queued with, whatever the user's contacts are now.
    pub(crate) async fn outgoing_notice(
        &self,
        user: &UserRef,
        notification_id: &str,
    ) -> Result<Option<crate::ports::OutgoingNotice>, ServiceError> {
        let state = self
            .commands
            .read(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)?;
        let Some(queued) = state.notification(notification_id) else {
            return Ok(None);
        };
        let destination = self
            .crypto
            .open_contact(user, queued.channel, &queued.destination)
            .await?;
        let tenant = self.tenant(&user.tenant).await?;
        let text = super::notices::NoticeText {
            language: super::notices::language(&state, &tenant),
            sender_name: tenant.sender_name(),
            kind: &queued.kind,
            at: queued.at,
        };
        let email = super::notices::email(&text);
        Ok(Some(crate::ports::OutgoingNotice {
            notification_id: queued.id.clone(),
            channel: queued.channel,
            destination,
            subject: email.subject,
            plain: email.plain,
            html: email.html,
            sms: super::notices::sms(&text),
        }))
    }
}

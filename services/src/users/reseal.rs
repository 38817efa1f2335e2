//! `twofold keys reseal`, for one user: what the state still holds under the tenant's
//! first-format key, sealed again under the user's own key, so that an erasure reaches it.

use twofold_domain::channel::Channel;
use twofold_domain::user::{Notifications, Resealed, SealSlot, UserAction, UserCommand, UserRef};

use super::crypto::{contact_context, totp_context, webauthn_credential_context};
use super::UserService;
use crate::{Actor, RequestContext, ServiceError};

/// The seal context of what a slot holds.
fn context(user: &UserRef, slot: &SealSlot) -> String {
    match slot {
        SealSlot::Totp | SealSlot::PendingTotp => totp_context(user),
        SealSlot::Email | SealSlot::PendingEmail => contact_context(user, Channel::Email),
        SealSlot::Phone | SealSlot::PendingPhone => contact_context(user, Channel::Sms),
        SealSlot::WebAuthnCredential(_) => webauthn_credential_context(user),
        SealSlot::Notification { channel, .. } => contact_context(user, *channel),
    }
}

impl UserService {
    /// Seals again under the user's own key what the state holds in the first format, and
    /// records the new seals (`SecretsResealed`, by the operator). Returns how many moved.
    pub async fn reseal(
        &self,
        user: &UserRef,
        ctx: &RequestContext,
    ) -> Result<usize, ServiceError> {
        let state = self
            .commands
            .load(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)?;
        let sealer = &self.crypto.sealer;
        let mut seals = vec![];
        for (slot, sealed) in state.seals() {
            if !sealer.needs_reseal(sealed) {
                continue;
            }
            let context = context(user, &slot);
            let value = sealer.open_for_user(user, &context, sealed).await?;
            let new = sealer.seal_for_user(user, &context, &value).await?;
            seals.push(Resealed {
                slot,
                old: sealed.clone(),
                new,
            });
        }
        if seals.is_empty() {
            return Ok(0);
        }
        let moved = seals.len();
        self.commands
            .execute(
                &user.aggregate_id(),
                UserCommand {
                    user: user.clone(),
                    at: self.clock.now(),
                    action: UserAction::Reseal { seals },
                    notifications: Notifications::default(),
                },
                ctx.metadata(&user.tenant, &Actor::Operator),
            )
            .await?;
        Ok(moved)
    }

    /// How many seals the user's state still holds in the first format.
    pub async fn first_format_seals(&self, user: &UserRef) -> Result<usize, ServiceError> {
        let state = self
            .commands
            .load(&user.aggregate_id())
            .await
            .map_err(crate::error::from_aggregate_error)?;
        Ok(state
            .seals()
            .into_iter()
            .filter(|(_, sealed)| self.crypto.sealer.needs_reseal(sealed))
            .count())
    }
}

//! What a tenant's administrator does for a user: reset their factors, clear a lockout, erase
//! them.

use chrono::{DateTime, Utc};
use twofold_domain::user::UserAction;
use twofold_domain::{Reason, UserId};

use super::{parse_user, UserService, UserStatus};
use crate::{Call, ServiceError};

impl UserService {
    /// Removes every factor, recovery code and trusted device of the user (admin).
    pub async fn reset(
        &self,
        call: &Call,
        user_id: &str,
        reason: &str,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let reason = Reason::parse(reason).map_err(ServiceError::invalid)?;
        let (state, _, at) = self
            .run(
                call,
                &user,
                UserAction::Reset {
                    by: call.key.key_id.clone(),
                    reason,
                },
            )
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    /// Erases the user (admin): records `UserErased`, then destroys the user's data keys, so
    /// every contact detail, TOTP secret and WebAuthn credential ever sealed for the user stops
    /// opening, in the event log, its snapshots and every backup of it. If the destruction
    /// fails after the record, the error says so and erasing again finishes it.
    pub async fn erase(
        &self,
        call: &Call,
        user_id: &str,
        reason: &str,
    ) -> Result<Erasure, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let reason = Reason::parse(reason).map_err(ServiceError::invalid)?;
        let (_, _, at) = self
            .run(
                call,
                &user,
                UserAction::Erase {
                    by: call.key.key_id.clone(),
                    reason,
                },
            )
            .await?;
        let keys_destroyed = self.crypto.sealer.erase_user(&user).await?;
        let sealer = &self.crypto.sealer;
        let complete = sealer.keys_apart() && !sealer.has_first_format_key(&user.tenant).await?;
        tracing::info!(keys_destroyed, complete, "user erased");
        Ok(Erasure {
            user_id: user.user,
            erased_at: at,
            keys_destroyed,
            complete,
        })
    }

    /// Ends a lockout early (admin).
    pub async fn clear_lockout(
        &self,
        call: &Call,
        user_id: &str,
        reason: &str,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let reason = Reason::parse(reason).map_err(ServiceError::invalid)?;
        let (state, _, at) = self
            .run(
                call,
                &user,
                UserAction::ClearLockout {
                    by: call.key.key_id.clone(),
                    reason,
                },
            )
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
    }
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    pub user_id: UserId,
    /// When `UserErased` was recorded.
    pub erased_at: DateTime<Utc>,
    /// Data keys destroyed: 1 for a user who had anything sealed, 0 when there was nothing
    /// (or an earlier erasure already destroyed it).
    pub keys_destroyed: u64,
    /// Whether nothing stored anywhere opens any more. False when the keys share the event
    /// database's server (a backup taken before the erasure holds the key), or while the
    /// tenant still has its key from before per-user keys (what was sealed before then opens
    /// until `twofold keys reseal` destroys it).
    pub complete: bool,
}

//! What a tenant's administrator does for a user: reset their factors, clear a lockout.

use twofold_domain::user::UserAction;
use twofold_domain::Reason;

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

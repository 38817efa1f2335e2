//! What a tenant's administrator does for a user: reset their factors, clear a lockout.

use twofold_domain::user::UserAction;
use twofold_domain::Reason;

use super::{parse_user, UserService, UserStatus};
use crate::auth::KeyPrincipal;
use crate::{RequestContext, ServiceError};

impl UserService {
    /// Removes every factor, recovery code and trusted device of the user (admin).
    pub async fn reset(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        reason: &str,
        ctx: &RequestContext,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let reason = Reason::parse(reason).map_err(ServiceError::invalid)?;
        let (state, _, at) = self
            .run(
                caller,
                &user,
                UserAction::Reset {
                    by: caller.key_id.clone(),
                    reason,
                },
                ctx,
            )
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
    }

    /// Ends a lockout early (admin).
    pub async fn clear_lockout(
        &self,
        caller: &KeyPrincipal,
        user_id: &str,
        reason: &str,
        ctx: &RequestContext,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(&caller.tenant_id, user_id)?;
        let reason = Reason::parse(reason).map_err(ServiceError::invalid)?;
        let (state, _, at) = self
            .run(
                caller,
                &user,
                UserAction::ClearLockout {
                    by: caller.key_id.clone(),
                    reason,
                },
                ctx,
            )
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
    }
}

//! What an admin does to a user's 2FA: end a lockout, reset everything so the user enrols
//! again, or erase the user. Each needs a user the tenant has seen, and each is recorded with
//! who and why.

use chrono::{DateTime, Utc};

use super::{DeviceRevocation, User, UserError, UserEvent};
use crate::{ApiKeyId, Reason};

impl User {
    /// `clearLockout`: ends the lockout and the failure count; nothing to clear records nothing.
    pub(super) fn decide_clear_lockout(
        &self,
        by: ApiKeyId,
        reason: Reason,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self.exists() {
            return Err(UserError::UnknownUser);
        }
        if self.consecutive_failures == 0 && self.locked_until.is_none() {
            return Ok(vec![]);
        }
        Ok(vec![UserEvent::LockoutCleared { by, reason, at }])
    }

    /// `resetTwoFactor`: every factor, code and trusted device goes.
    pub(super) fn decide_reset(
        &self,
        by: ApiKeyId,
        reason: Reason,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self.exists() {
            return Err(UserError::UnknownUser);
        }
        let mut events = self.revoke_devices(DeviceRevocation::TwoFactorReset, at);
        events.push(UserEvent::TwoFactorReset { by, reason, at });
        Ok(events)
    }
}

impl User {
    /// `eraseUser`: what a reset removes, plus the contact details and the language; no notice
    /// goes out (there is no address left to send it to). Erasing an erased user records it
    /// again: the service destroys the keys each time, so a retry after a failed destruction
    /// finishes the job.
    pub(super) fn decide_erase(
        &self,
        by: ApiKeyId,
        reason: Reason,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self.exists() {
            return Err(UserError::UnknownUser);
        }
        let mut events = self.revoke_devices(DeviceRevocation::UserErased, at);
        events.push(UserEvent::UserErased { by, reason, at });
        Ok(events)
    }
}

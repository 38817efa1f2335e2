//! What may be asked of a user's 2FA account. Secrets, hashes and times are decided before the
//! command (the domain has no clock or randomness).

use chrono::{DateTime, Utc};

use crate::secrets::{SealedSecret, TotpParams};
use crate::tenant::KeyedHash;
use crate::{ApiKeyId, Method, Reason, TenantId, UserId};

/// Which user (the aggregate does not know its own id; services need it to bind seals and
/// hashes to the user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    /// The tenant.
    pub tenant: TenantId,
    /// The tenant's id for the user.
    pub user: UserId,
}

impl UserRef {
    /// The aggregate id, `{tenant}/user/{user}`.
    pub fn aggregate_id(&self) -> String {
        self.tenant.user_aggregate_id(&self.user)
    }
}

/// A current factor presented to authorise a sensitive change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// TOTP or RECOVERY_CODE (email/SMS later).
    pub method: Method,
    /// The code as typed.
    pub code: String,
}

/// A command on one user's 2FA account.
#[derive(Debug, Clone, PartialEq)]
pub struct UserCommand {
    /// Which user.
    pub user: UserRef,
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub action: UserAction,
}

/// The actions.
#[derive(Debug, Clone, PartialEq)]
pub enum UserAction {
    /// Start (or restart) TOTP enrollment with a new sealed secret.
    StartTotpEnrollment {
        /// The sealed secret.
        secret: SealedSecret,
        /// Algorithm, digits, period (from the tenant policy).
        params: TotpParams,
        /// The account label shown in the authenticator app.
        label: String,
    },
    /// Confirm the pending TOTP with a code from the app; the new recovery codes are issued
    /// with it.
    ConfirmTotp {
        /// The code.
        code: String,
        /// Keyed hashes of the ten new recovery codes.
        recovery_codes: Vec<KeyedHash>,
    },
    /// A sign-in check.
    Verify {
        /// The factor used.
        proof: Proof,
    },
    /// Replace the recovery codes, proving a current factor.
    RegenerateRecoveryCodes {
        /// The current factor.
        proof: Proof,
        /// Keyed hashes of the ten new codes.
        recovery_codes: Vec<KeyedHash>,
    },
    /// Turn 2FA off, proving a current factor.
    Disable {
        /// The current factor.
        proof: Proof,
        /// Whether the tenant's policy enforces 2FA right now.
        policy_enforced: bool,
    },
    /// End a lockout early (admin).
    ClearLockout {
        /// The admin's key.
        by: ApiKeyId,
        /// Why.
        reason: Reason,
    },
    /// Remove every factor, recovery code and trusted device (admin).
    Reset {
        /// The admin's key.
        by: ApiKeyId,
        /// Why.
        reason: Reason,
    },
}

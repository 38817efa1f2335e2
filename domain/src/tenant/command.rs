//! What may be asked of a tenant. Ids, hashes and times are decided before the command (the
//! domain has no clock or randomness), so a retried command after a conflict decides again on
//! fresh state but with the same inputs.

use chrono::{DateTime, Utc};

use super::KeyedHash;
use crate::{ApiKeyId, KeyLabel, PolicyChange, Role, TenantId, TenantName};

/// A key about to be issued: its secret half exists only in the caller's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// Public id.
    pub id: ApiKeyId,
    /// Role it carries.
    pub role: Role,
    /// Admin-chosen label.
    pub label: KeyLabel,
    /// Keyed hash of the full key.
    pub hash: KeyedHash,
}

/// Commands on the tenant aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum TenantCommand {
    /// Create the tenant with its first ADMIN key (operator only).
    Register {
        /// Server-minted id.
        tenant_id: TenantId,
        /// Display name.
        name: TenantName,
        /// The first ADMIN key.
        first_admin_key: NewApiKey,
        /// When.
        at: DateTime<Utc>,
    },
    /// Issue another key.
    IssueApiKey {
        key: NewApiKey,
        /// When.
        at: DateTime<Utc>,
    },
    /// Revoke a key; it is refused from its next request on.
    RevokeApiKey {
        /// Which key.
        key_id: ApiKeyId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Change the 2FA policy.
    SetPolicy {
        /// Requested change, unvalidated (boxed: it is by far the largest command).
        change: Box<PolicyChange>,
        /// When.
        at: DateTime<Utc>,
    },
}

//! What may be asked of a tenant. Ids, hashes and times are decided before the command (the
//! domain has no clock or randomness), so a retried command after a conflict decides again on
//! fresh state but with the same inputs.

use chrono::{DateTime, Utc};

use super::KeyedHash;
use crate::channel::Channel;
use crate::console_session::SessionRef;
use crate::provider::DeliveryFacts;
use crate::secrets::SealedSecret;
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
    /// Set the tenant's own delivery providers (`None`: back to the service's).
    SetDeliverySettings {
        /// Validated settings: their shown facts and the sealed whole.
        settings: Option<(DeliveryFacts, SealedSecret)>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record a test message sent through the tenant's own providers.
    RecordDeliveryTest {
        /// The outcome (its destination masked).
        test: DeliveryTest,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record that a key signed in to the console (before its session exists).
    SignInToConsole {
        key_id: ApiKeyId,
        session: SessionRef,
        /// When.
        at: DateTime<Utc>,
    },
    /// Erase the tenant (operator only): revoke every key and refuse everything after.
    Erase {
        reason: crate::Reason,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record that the user of a session signed out.
    SignOutOfConsole {
        key_id: ApiKeyId,
        session: SessionRef,
        /// When.
        at: DateTime<Utc>,
    },
}

/// How a test message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTest {
    pub channel: Channel,
    /// Masked.
    pub destination: String,
    pub delivered: bool,
    pub provider_message_id: Option<String>,
    /// Redacted.
    pub error: Option<String>,
    pub retryable: bool,
}

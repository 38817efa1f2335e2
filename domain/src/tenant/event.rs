//! What happened to a tenant. These are the contract with the event store and the auditors:
//! fields may be added (with serde defaults), never renamed.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::KeyedHash;
use crate::channel::Channel;
use crate::console_session::SessionRef;
use crate::provider::DeliveryFacts;
use crate::secrets::SealedSecret;
use crate::{ApiKeyId, KeyLabel, Policy, Role, TenantId, TenantName};

/// Events of the tenant aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TenantEvent {
    /// The tenant exists, with the default policy.
    TenantRegistered {
        tenant_id: TenantId,
        /// Its display name.
        name: TenantName,
        /// The policy it starts with.
        policy: Policy,
        /// When.
        registered_at: DateTime<Utc>,
    },
    /// An API key was issued. Only the keyed hash of the key is recorded.
    ApiKeyIssued {
        /// Public id.
        key_id: ApiKeyId,
        role: Role,
        label: KeyLabel,
        /// Keyed hash of the whole key (removed from audit output).
        key_hash: KeyedHash,
        /// When.
        issued_at: DateTime<Utc>,
    },
    /// An API key was revoked.
    ApiKeyRevoked {
        /// Which key.
        key_id: ApiKeyId,
        /// When.
        revoked_at: DateTime<Utc>,
    },
    /// The 2FA policy changed; both versions are kept so auditors see what changed.
    TwoFactorPolicySet {
        /// The policy before.
        previous: Policy,
        /// The policy after.
        policy: Policy,
        /// When.
        set_at: DateTime<Utc>,
    },
    /// The tenant's own delivery providers were set, or cleared (`settings: None`: back to the
    /// service's). The credentials are only in `sealed`, under the tenant's data key.
    DeliverySettingsChanged {
        /// Counts the changes: senders built for an older version are not used any more.
        version: u64,
        /// What may be shown; `None` when cleared.
        settings: Option<DeliveryFacts>,
        /// The whole validated settings with their credentials, sealed (never shown).
        sealed: Option<SealedSecret>,
        /// When.
        changed_at: DateTime<Utc>,
    },
    /// An administrator sent a test message through the tenant's own providers.
    DeliveryTested {
        channel: Channel,
        /// The destination, masked.
        destination: String,
        /// Whether the provider accepted it.
        delivered: bool,
        provider_message_id: Option<String>,
        /// Why not (redacted).
        error: Option<String>,
        /// Whether the failure was temporary.
        #[serde(default)]
        retryable: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key signed in to the console. Only a reference to the session is recorded, never
    /// its token or the token's hash.
    ConsoleSignedIn {
        key_id: ApiKeyId,
        /// The key's role then (ADMIN or AUDITOR).
        role: Role,
        session: SessionRef,
        /// When.
        signed_in_at: DateTime<Utc>,
    },
    /// A console session was ended by its user. Sessions that time out, are pushed out by the
    /// key's newer ones, or end with their key's revocation record nothing more.
    ConsoleSignedOut {
        key_id: ApiKeyId,
        session: SessionRef,
        /// When.
        signed_out_at: DateTime<Utc>,
    },
    /// The operator erased the tenant (`twofold tenant erase`): every key was revoked with
    /// this, and the data keys of the tenant and its users were destroyed after it was
    /// recorded, so nothing sealed for them opens again. Nothing but another erasure is
    /// accepted after it.
    TenantErased {
        /// Why.
        reason: crate::Reason,
        /// When.
        erased_at: DateTime<Utc>,
    },
}

impl DomainEvent for TenantEvent {
    fn event_type(&self) -> String {
        match self {
            TenantEvent::TenantRegistered { .. } => "TenantRegistered",
            TenantEvent::ApiKeyIssued { .. } => "ApiKeyIssued",
            TenantEvent::ApiKeyRevoked { .. } => "ApiKeyRevoked",
            TenantEvent::TwoFactorPolicySet { .. } => "TwoFactorPolicySet",
            TenantEvent::DeliverySettingsChanged { .. } => "DeliverySettingsChanged",
            TenantEvent::DeliveryTested { .. } => "DeliveryTested",
            TenantEvent::ConsoleSignedIn { .. } => "ConsoleSignedIn",
            TenantEvent::ConsoleSignedOut { .. } => "ConsoleSignedOut",
            TenantEvent::TenantErased { .. } => "TenantErased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

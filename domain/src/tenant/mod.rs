//! The tenant aggregate (`{tenant_id}/tenant`): the organisation's name, its 2FA policy and its
//! API keys. Keys live here, not in a table of their own, so issuing and revoking them is part of
//! the same audited history as everything else the organisation decides.

mod aggregate;
mod command;
mod event;

pub use aggregate::{ApiKeyState, Tenant, TenantDelivery, TenantError, MAX_ACTIVE_KEYS};
pub use command::{DeliveryTest, NewApiKey, TenantCommand};
pub use event::TenantEvent;

use serde::{Deserialize, Serialize};

/// A keyed hash (HMAC-SHA256 under the server's pepper, hex) of a secret the server must
/// recognise later but never store: API keys now, recovery codes and device tokens later.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyedHash(String);

impl KeyedHash {
    /// Wraps a hash computed by the crypto adapter (64 lowercase hex characters).
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    /// The hash as hex, for storage and index lookups.
    pub fn as_hex(&self) -> &str {
        &self.0
    }
}

//! The user aggregate's state, rebuilt from events (or a snapshot plus later events), and what
//! can be read from it. The rules that change it live beside each flow; see `apply.rs`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::webauthn_state::WebAuthnState;
use crate::channel::{Channel, Purpose};
use crate::secrets::{SealedSecret, TotpParams};
use crate::tenant::KeyedHash;
use crate::{DeviceLabel, Method};

/// A device the user chose to remember: sign-ins presenting its token skip the second factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustedDevice {
    /// Public id.
    pub id: String,
    /// Keyed hash of its token.
    pub token_hash: KeyedHash,
    /// What the user calls it.
    pub label: Option<DeviceLabel>,
    /// When trusted.
    pub created_at: DateTime<Utc>,
    /// End of trust as granted (a later, shorter policy lifetime also ends it).
    pub expires_at: DateTime<Utc>,
}

/// A registered email address or phone number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactFactor {
    /// The sealed address or E.164 number.
    pub sealed: SealedSecret,
    /// Masked for display.
    pub masked: String,
    /// Proven with a code.
    pub verified: bool,
    /// When registered (challenges sent before belong to a replaced destination).
    pub since: DateTime<Utc>,
}

/// Where a challenge's message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryState {
    /// Not yet accepted by the provider.
    Pending,
    /// Accepted by the provider.
    Delivered,
    /// Given up.
    Failed,
}

/// A one-time code sent by email or SMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Challenge {
    pub id: String,
    /// Email or SMS.
    pub channel: Channel,
    /// Why.
    pub purpose: Purpose,
    /// Code length.
    pub digits: u8,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// When sent.
    pub sent_at: DateTime<Utc>,
    /// Masked destination.
    pub sent_to: String,
    /// Wrong codes so far.
    pub attempts: u32,
    /// Answered correctly (spent).
    pub used: bool,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// Delivery state.
    pub delivery: DeliveryState,
}

/// Challenges kept in the state (older ones can no longer matter: they are long expired and
/// outside the rate-limit window).
pub(super) const KEPT_CHALLENGES: usize = 32;

/// An active (or pending) TOTP factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotpFactor {
    /// The sealed secret.
    pub secret: SealedSecret,
    /// How codes are computed.
    pub params: TotpParams,
    /// When started (pending) or enabled (active).
    pub since: DateTime<Utc>,
}

/// One recovery code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoverySlot {
    /// Its keyed hash.
    pub hash: KeyedHash,
    /// Spent.
    pub used: bool,
}

/// The user aggregate's state. Its serialized form is the snapshot format: fields added later
/// carry `#[serde(default)]` so older snapshots still load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub(super) first_seen_at: Option<DateTime<Utc>>,
    pub(super) totp: Option<TotpFactor>,
    pub(super) pending_totp: Option<TotpFactor>,
    pub(super) last_totp_step: Option<u64>,
    pub(super) recovery: Vec<RecoverySlot>,
    pub(super) consecutive_failures: u32,
    pub(super) lockouts: u32,
    pub(super) locked_until: Option<DateTime<Utc>>,
    pub(super) admin_lock: bool,
    pub(super) last_verified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(super) email: Option<ContactFactor>,
    #[serde(default)]
    pub(super) phone: Option<ContactFactor>,
    /// An address waiting to replace the verified `email`, which works until it is confirmed.
    #[serde(default)]
    pub(super) email_pending: Option<ContactFactor>,
    /// A number waiting to replace the verified `phone`.
    #[serde(default)]
    pub(super) phone_pending: Option<ContactFactor>,
    #[serde(default)]
    pub(super) preferred: Option<Channel>,
    #[serde(default)]
    pub(super) challenges: Vec<Challenge>,
    #[serde(default)]
    pub(super) trusted_devices: Vec<TrustedDevice>,
    #[serde(default)]
    pub(super) webauthn: WebAuthnState,
    /// The language the user chose (`None`: the tenant's default, else English).
    #[serde(default, deserialize_with = "crate::locale::lenient")]
    pub(super) locale: Option<crate::locale::Locale>,
    /// Security notices queued and not yet recorded as delivered or failed.
    #[serde(default)]
    pub(super) notifications: Vec<super::QueuedNotification>,
}

impl User {
    /// The language the user chose, if any.
    pub fn locale(&self) -> Option<&crate::locale::Locale> {
        self.locale.as_ref()
    }

    /// Whether the tenant has ever enrolled anything for this user.
    pub fn exists(&self) -> bool {
        self.first_seen_at.is_some()
    }

    /// When the user was first seen.
    pub fn first_seen_at(&self) -> Option<DateTime<Utc>> {
        self.first_seen_at
    }

    /// Whether a second factor is active.
    pub fn enabled(&self) -> bool {
        self.totp.is_some()
            || self.verified(Channel::Email)
            || self.verified(Channel::Sms)
            || !self.webauthn.credentials.is_empty()
    }

    /// The registered address (Email) or number (Sms).
    pub fn contact(&self, channel: Channel) -> Option<&ContactFactor> {
        match channel {
            Channel::Email => self.email.as_ref(),
            Channel::Sms => self.phone.as_ref(),
        }
    }

    /// Whether the address or number of `channel` is registered and proven.
    pub(super) fn verified(&self, channel: Channel) -> bool {
        self.contact(channel).is_some_and(|f| f.verified)
    }

    /// An address or number waiting to replace the verified one of `channel`.
    pub fn pending_contact(&self, channel: Channel) -> Option<&ContactFactor> {
        match channel {
            Channel::Email => self.email_pending.as_ref(),
            Channel::Sms => self.phone_pending.as_ref(),
        }
    }

    /// The default channel for sign-in codes.
    pub fn preferred_channel(&self) -> Option<Channel> {
        self.preferred
    }

    /// The challenges still kept, oldest first.
    pub fn challenges(&self) -> &[Challenge] {
        &self.challenges
    }

    /// A challenge by id.
    pub fn challenge(&self, id: &str) -> Option<&Challenge> {
        self.challenges.iter().find(|c| c.id == id)
    }

    /// The methods the user can verify with now.
    pub fn methods(&self) -> Vec<Method> {
        let mut methods = Vec::new();
        if self.totp.is_some() {
            methods.push(Method::Totp);
        }
        if self.verified(Channel::Email) {
            methods.push(Method::Email);
        }
        if self.verified(Channel::Sms) {
            methods.push(Method::Sms);
        }
        if !self.webauthn.credentials.is_empty() {
            methods.push(Method::WebAuthn);
        }
        if self.enabled() && self.recovery_codes_remaining() > 0 {
            methods.push(Method::RecoveryCode);
        }
        methods
    }

    /// A TOTP enrollment is waiting for confirmation.
    pub fn totp_pending(&self) -> bool {
        self.pending_totp.is_some()
    }

    /// Unused recovery codes.
    pub fn recovery_codes_remaining(&self) -> u32 {
        u32::try_from(self.recovery.iter().filter(|s| !s.used).count()).unwrap_or(u32::MAX)
    }

    /// Last successful verification.
    pub fn last_verified_at(&self) -> Option<DateTime<Utc>> {
        self.last_verified_at
    }

    /// Consecutive failures since the last success or admin action.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

/// Constant-time equality of two hex hashes, so timing does not tell how much of a guess matched.
pub(super) fn same_hash(a: &KeyedHash, b: &KeyedHash) -> bool {
    let (a, b) = (a.as_hex().as_bytes(), b.as_hex().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

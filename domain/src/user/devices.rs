//! Trusted devices: a device the user chose to remember stands in for the second factor until
//! its trust ends (its own lifetime, or a shorter one the policy sets later), is revoked, or goes
//! with a factor change.

use chrono::{DateTime, Duration, Utc};

use super::state::same_hash;
use super::{
    DeviceRevocation, NewTrustedDevice, TrustedDevice, User, UserError, UserEvent,
    MAX_TRUSTED_DEVICES,
};
use crate::tenant::KeyedHash;
use crate::Reason;

impl TrustedDevice {
    /// Whether the device is still trusted at `at` under a policy lifetime of `policy_days`
    /// (0 turns trusted devices off): tightening the policy applies to devices already trusted.
    pub fn valid(&self, policy_days: u16, at: DateTime<Utc>) -> bool {
        policy_days > 0
            && at < self.expires_at
            && at < self.created_at + Duration::days(i64::from(policy_days))
    }
}

impl User {
    /// Trusted devices whose trust has not ended by `at`, oldest first.
    pub fn trusted_devices(&self, at: DateTime<Utc>) -> impl Iterator<Item = &TrustedDevice> {
        self.trusted_devices
            .iter()
            .filter(move |d| at < d.expires_at)
    }

    /// The id of the trusted device whose token hashes to `hash`, if it is still valid. Every
    /// device is compared, so timing does not tell which (if any) matched.
    pub(super) fn device_matching(
        &self,
        hash: &KeyedHash,
        policy_days: u16,
        at: DateTime<Utc>,
    ) -> Option<String> {
        let mut matched = None;
        for device in &self.trusted_devices {
            if same_hash(&device.token_hash, hash) && device.valid(policy_days, at) {
                matched = Some(device.id.clone());
            }
        }
        matched
    }

    /// `DeviceTrustRevoked` for every device still trusted at `at`.
    pub(super) fn revoke_devices(
        &self,
        reason: DeviceRevocation,
        at: DateTime<Utc>,
    ) -> Vec<UserEvent> {
        self.trusted_devices(at)
            .map(|d| UserEvent::DeviceTrustRevoked {
                device_id: d.id.clone(),
                reason,
                explanation: None,
                at,
            })
            .collect()
    }

    /// `DeviceTrusted` for a new device, after revoking the oldest if the user is at the limit.
    pub(super) fn trust(&self, device: NewTrustedDevice, at: DateTime<Utc>) -> Vec<UserEvent> {
        let live: Vec<&TrustedDevice> = self.trusted_devices(at).collect();
        let excess = (live.len() + 1).saturating_sub(MAX_TRUSTED_DEVICES);
        let mut events: Vec<UserEvent> = live
            .iter()
            .take(excess)
            .map(|d| UserEvent::DeviceTrustRevoked {
                device_id: d.id.clone(),
                reason: DeviceRevocation::LimitReached,
                explanation: None,
                at,
            })
            .collect();
        events.push(UserEvent::DeviceTrusted {
            device_id: device.id,
            token_hash: device.token_hash,
            label: device.label,
            expires_at: at + Duration::days(i64::from(device.lifetime_days.max(1))),
            at,
        });
        events
    }

    /// `revokeTrustedDevice`: only a device still trusted.
    pub(super) fn decide_revoke_device(
        &self,
        device_id: String,
        explanation: Option<Reason>,
        at: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserError> {
        if !self.trusted_devices(at).any(|d| d.id == device_id) {
            return Err(UserError::DeviceNotFound);
        }
        Ok(vec![UserEvent::DeviceTrustRevoked {
            device_id,
            reason: DeviceRevocation::Revoked,
            explanation,
            at,
        }])
    }
}

//! Trusted devices: minting a device's token, and revoking a device.

use twofold_domain::user::{NewTrustedDevice, UserAction, UserRef};
use twofold_domain::{DeviceLabel, Reason};

use super::{parse_user, UserService, UserStatus};
use crate::encoding::base32_lower;
use crate::{Call, ServiceError};

/// Trusted-device tokens: a prefix secret scanners can match, then 256 random bits.
const DEVICE_TOKEN_PREFIX: &str = "tfd_";
const DEVICE_TOKEN_BYTES: usize = 32;

impl UserService {
    /// A fresh device id and token (256 random bits); only the token's keyed hash is kept.
    pub(super) fn new_trusted_device(
        &self,
        user: &UserRef,
        label: Option<DeviceLabel>,
        lifetime_days: u16,
    ) -> (zeroize::Zeroizing<String>, NewTrustedDevice) {
        let mut id = [0u8; 10];
        self.entropy.fill(&mut id);
        let mut secret = zeroize::Zeroizing::new([0u8; DEVICE_TOKEN_BYTES]);
        self.entropy.fill(secret.as_mut());
        let token = zeroize::Zeroizing::new(format!(
            "{DEVICE_TOKEN_PREFIX}{}",
            base32_lower(secret.as_ref())
        ));
        let device = NewTrustedDevice {
            id: base32_lower(&id),
            token_hash: self.crypto.device_token_hash(user, &token),
            label,
            lifetime_days,
        };
        (token, device)
    }

    /// Stops trusting one of the user's devices; `explanation` is why, when an admin gives it
    /// (the console does; the API's `revokeTrustedDevice` does not), kept in the event.
    pub async fn revoke_trusted_device(
        &self,
        call: &Call,
        user_id: &str,
        device_id: &str,
        explanation: Option<&str>,
    ) -> Result<UserStatus, ServiceError> {
        let user = parse_user(call.tenant(), user_id)?;
        let explanation = explanation
            .map(Reason::parse)
            .transpose()
            .map_err(ServiceError::invalid)?;
        if device_id.is_empty() || device_id.len() > 64 {
            return Err(ServiceError::NotFound(
                "no such trusted device for this user".into(),
            ));
        }
        let (state, _, at) = self
            .run(
                call,
                &user,
                UserAction::RevokeTrustedDevice {
                    device_id: device_id.to_owned(),
                    explanation,
                },
            )
            .await?;
        Ok(UserStatus::of(&user.user, &state, at))
    }
}

//! What the user aggregate needs from the outside (sealing, TOTP, keyed hashing), and the
//! challenge codes derived under the server's key.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use twofold_domain::channel::Channel;
use twofold_domain::secrets::{SealedSecret, TotpParams};
use twofold_domain::tenant::KeyedHash;
use twofold_domain::user::{CodeChecker, ServicesError, UserRef};

use crate::ports::{Sealer, SecretHasher, TotpEngine};

const RECOVERY_HASH_PURPOSE: &str = "recovery-code";
const CHALLENGE_CODE_PURPOSE: &str = "challenge-code";
const DEVICE_TOKEN_PURPOSE: &str = "trusted-device";

/// The seal context of a user's email address or phone number.
pub fn contact_context(user: &UserRef, channel: Channel) -> String {
    format!(
        "{}/{}",
        user.aggregate_id(),
        channel.as_str().to_ascii_lowercase()
    )
}

/// The seal context of a user's TOTP secret: a sealed secret only opens for its own user.
pub(super) fn totp_context(user: &UserRef) -> String {
    format!("{}/totp", user.aggregate_id())
}

/// What the user aggregate needs from the outside: sealing, TOTP and keyed hashing.
/// Built once: the command gateway hands it to the aggregate, and `UserService` uses the same.
pub struct UserCrypto {
    pub(super) sealer: Arc<dyn Sealer>,
    pub(super) totp: Arc<dyn TotpEngine>,
    pub(super) hasher: Arc<dyn SecretHasher>,
}

impl UserCrypto {
    /// Wires the aggregate's services.
    pub fn new(
        sealer: Arc<dyn Sealer>,
        totp: Arc<dyn TotpEngine>,
        hasher: Arc<dyn SecretHasher>,
    ) -> Self {
        Self {
            sealer,
            totp,
            hasher,
        }
    }
}

#[async_trait]
impl CodeChecker for UserCrypto {
    async fn totp_step(
        &self,
        user: &UserRef,
        secret: &SealedSecret,
        params: &TotpParams,
        code: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<u64>, ServicesError> {
        let secret = self
            .sealer
            .open(&user.tenant, &totp_context(user), secret)
            .await
            .map_err(|e| ServicesError(e.to_string()))?;
        let now = u64::try_from(at.timestamp()).unwrap_or(0);
        Ok(self.totp.matching_step(&secret, params, code, now))
    }

    fn recovery_code_hash(&self, user: &UserRef, normalized_code: &str) -> KeyedHash {
        let message = format!("{}\0{normalized_code}", user.aggregate_id());
        self.hasher
            .keyed_hash(RECOVERY_HASH_PURPOSE, message.as_bytes())
    }

    fn challenge_code_matches(
        &self,
        user: &UserRef,
        challenge_id: &str,
        digits: u8,
        code: &str,
    ) -> bool {
        let expected = self.challenge_code(user, challenge_id, digits);
        let given: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes()).into()
    }
}

impl UserCrypto {
    /// The one-time code of a challenge: HMAC(pepper, purpose, user, challenge id) reduced to
    /// `digits` decimal digits. Deriving it means no code is ever stored, in clear or sealed:
    /// the delivery worker and the verifier compute the same value from the challenge id.
    pub fn challenge_code(
        &self,
        user: &UserRef,
        challenge_id: &str,
        digits: u8,
    ) -> zeroize::Zeroizing<String> {
        let message = format!("{}\0{challenge_id}", user.aggregate_id());
        let hash = self
            .hasher
            .keyed_hash(CHALLENGE_CODE_PURPOSE, message.as_bytes());
        // 64 bits of the MAC modulo 10^digits: bias below 10^-10.
        let value = u64::from_str_radix(&hash.as_hex()[..16], 16).unwrap_or(0);
        let digits = u32::from(digits.clamp(6, 8));
        zeroize::Zeroizing::new(format!(
            "{:0width$}",
            value % 10u64.pow(digits),
            width = digits as usize
        ))
    }

    /// The keyed hash of a trusted-device token, bound to its user: a token only ever works
    /// for the user it was issued to.
    pub fn device_token_hash(&self, user: &UserRef, token: &str) -> KeyedHash {
        let message = format!("{}\0{token}", user.aggregate_id());
        self.hasher
            .keyed_hash(DEVICE_TOKEN_PURPOSE, message.as_bytes())
    }
}

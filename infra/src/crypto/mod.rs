//! Crypto adapters: keyed hashing (HMAC-SHA256 under the pepper), the OS CSPRNG, the wall clock,
//! sealing under per-tenant data keys ([`seal`]), RFC 6238 TOTP ([`totp`]), QR codes ([`qr`]) and
//! WebAuthn ceremonies ([`webauthn`]).

pub mod qr;
pub mod seal;
pub mod totp;
pub mod webauthn;

pub use seal::{PgSealer, SealError};
pub use totp::RfcTotp;
pub use webauthn::RsWebAuthn;

use chrono::{DateTime, SubsecRound, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use twofold_domain::tenant::KeyedHash;
use twofold_services::ports::{Clock, Entropy, SecretHasher};

use crate::config::Key32;

/// HMAC-SHA256 keyed by the configured pepper. Without the pepper, stored hashes of 256-bit
/// keys are useless, and of short codes cannot be brute-forced offline.
pub struct HmacHasher {
    pepper: Key32,
}

impl HmacHasher {
    /// Uses `pepper` (TWOFOLD_HASH_PEPPER).
    pub fn new(pepper: Key32) -> Self {
        Self { pepper }
    }
}

impl SecretHasher for HmacHasher {
    fn keyed_hash(&self, purpose: &str, secret: &[u8]) -> KeyedHash {
        // Purpose, a separator and the secret: hashes of different purposes never collide.
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.pepper.expose()) {
            Ok(mac) => mac,
            Err(_) => unreachable_invalid_length(),
        };
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(secret);
        KeyedHash::from_hex(hex::encode(mac.finalize().into_bytes()))
    }
}

/// HMAC accepts keys of any length, so this cannot happen.
#[cold]
fn unreachable_invalid_length() -> ! {
    panic!("HMAC rejected a 32-byte key")
}

/// The operating system's CSPRNG.
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        rand::rngs::OsRng.fill_bytes(buf);
    }
}

/// The wall clock, at microsecond precision: what PostgreSQL stores, so a time answered from
/// a command's result and the same time read back from a view are the same string.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_depend_on_pepper_purpose_and_secret() {
        let a = HmacHasher::new(Key32::from_bytes([7; 32]));
        let b = HmacHasher::new(Key32::from_bytes([8; 32]));
        let h = a.keyed_hash("api-key", b"secret");
        assert_eq!(h, a.keyed_hash("api-key", b"secret"));
        assert_eq!(h.as_hex().len(), 64);
        assert_ne!(h, a.keyed_hash("recovery-code", b"secret"));
        assert_ne!(h, b.keyed_hash("api-key", b"secret"));
        assert_ne!(h, a.keyed_hash("api-key", b"secreT"));
    }

    #[test]
    fn entropy_is_not_constant() {
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        OsEntropy.fill(&mut x);
        OsEntropy.fill(&mut y);
        assert_ne!(x, y);
    }
}

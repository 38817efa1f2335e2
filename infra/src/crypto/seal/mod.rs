//! Sealing of secrets and PII under per-tenant data keys (DESIGN.md section 3, "Secrets").
//!
//! Two layers of AES-256-GCM, one byte format:
//! - each tenant has a data key (32 bytes from the OS CSPRNG), stored in `tenant_data_keys`
//!   wrapped under the master key (`TWOFOLD_MASTER_KEY`) with the tenant id as associated data;
//! - a value is sealed under its tenant's data key with `tenant id || 0x00 || context` as
//!   associated data, so a seal copied to another tenant, user or purpose does not open.
//!
//! Both layers write `version (0x01) || 12-byte random nonce || ciphertext and 16-byte tag`;
//! a [`SealedSecret`] is that, in standard base64. Deleting a tenant's row in
//! `tenant_data_keys` crypto-shreds everything sealed for it while the events stay immutable.

mod master;
mod rotate;
mod sealer;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore;
use twofold_domain::secrets::SealedSecret;
use twofold_domain::TenantId;
use zeroize::Zeroizing;

use crate::config::Key32;

pub use master::{master_key_id, MasterKeys};
pub use rotate::{rotate_master_key, Rotation};
pub use sealer::PgSealer;

/// The format version written as the first byte of every seal and wrapped key, so the format
/// can change later without guessing what an old value is.
pub const SEAL_VERSION: u8 = 0x01;

/// AES-GCM nonce length (96 bits, random per seal).
pub const NONCE_LEN: usize = 12;

/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// Why sealing or opening failed. No variant carries key material or plaintext: these end up in
/// server logs.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The value is not base64, or too short to hold a version, a nonce and a tag.
    #[error("sealed value is malformed")]
    Malformed,
    /// The first byte names a format this build does not know.
    #[error("sealed value has unknown format version {0}")]
    UnknownVersion(u8),
    /// Authentication failed: the value was altered, or sealed for another tenant, context or
    /// key.
    #[error("sealed value does not open: altered, or sealed for another tenant, context or key")]
    Rejected,
    /// AES-GCM refused the input (longer than it can seal, about 64 GiB).
    #[error("value too long to seal")]
    TooLong,
    /// The tenant has no data key: nothing was ever sealed for it, or its key was shredded.
    #[error("tenant {0} has no data key (nothing sealed for it yet, or its key was shredded)")]
    NoDataKey(String),
    /// The stored data key was wrapped under a master key that is neither
    /// `TWOFOLD_MASTER_KEY` nor `TWOFOLD_MASTER_KEY_PREVIOUS`.
    #[error(
        "the data key of tenant {tenant} is wrapped under master key id {id}, which is neither \
         TWOFOLD_MASTER_KEY nor TWOFOLD_MASTER_KEY_PREVIOUS"
    )]
    UnknownMasterKey { tenant: String, id: String },
    /// The stored data key does not open under the configured master key.
    #[error(
        "the data key of tenant {0} does not open under the master key \
         (wrong TWOFOLD_MASTER_KEY, or a corrupt tenant_data_keys row)"
    )]
    DataKeyRejected(String),
}

/// Seals `plaintext` under `key` with associated data `aad` and the given `nonce`, returning
/// `version || nonce || ciphertext+tag`. The nonce is a parameter so tests are deterministic;
/// production callers pass a fresh random one ([`random_nonce`]), never a repeated one.
pub fn seal_with(
    key: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, SealError> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| SealError::TooLong)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(SEAL_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal_with`] produced under the same `key` and `aad`. Fails on an unknown
/// version and on any alteration of nonce, ciphertext or tag, or a different key or `aad`.
pub fn open_with(
    key: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let (&version, rest) = sealed.split_first().ok_or(SealError::Malformed)?;
    if version != SEAL_VERSION {
        return Err(SealError::UnknownVersion(version));
    }
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(SealError::Malformed);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Rejected)
}

/// A fresh nonce from the OS CSPRNG. Random 96-bit nonces keep the collision risk negligible
/// for far more seals than one tenant will ever make under one key.
pub fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// The associated data of a seal: `tenant id || 0x00 || context`. Tenant ids never contain a
/// NUL byte, so distinct (tenant, context) pairs never produce the same bytes.
pub fn seal_aad(tenant: &TenantId, context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tenant.as_str().len() + 1 + context.len());
    aad.extend_from_slice(tenant.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(context.as_bytes());
    aad
}

/// Wraps a tenant's data key under the master key, bound to the tenant id, for storage in
/// `tenant_data_keys`.
pub fn wrap_data_key(
    master: &Key32,
    tenant: &TenantId,
    data_key: &[u8; 32],
) -> Result<Vec<u8>, SealError> {
    seal_with(
        master.expose(),
        tenant.as_str().as_bytes(),
        data_key,
        random_nonce(),
    )
}

/// Unwraps what [`wrap_data_key`] produced for the same tenant under the same master key.
pub fn unwrap_data_key(
    master: &Key32,
    tenant: &TenantId,
    wrapped: &[u8],
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let rejected = || SealError::DataKeyRejected(tenant.as_str().to_owned());
    let bytes =
        open_with(master.expose(), tenant.as_str().as_bytes(), wrapped).map_err(|_| rejected())?;
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != key.len() {
        return Err(rejected());
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// The text form of a seal: standard base64, no line breaks.
fn encode(sealed: &[u8]) -> SealedSecret {
    SealedSecret::from_encoded(BASE64.encode(sealed))
}

/// The bytes of a seal's text form.
fn decode(sealed: &SealedSecret) -> Result<Vec<u8>, SealError> {
    BASE64
        .decode(sealed.as_encoded())
        .map_err(|_| SealError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const KEY: [u8; 32] = [0x42; 32];
    pub(super) const NONCE: [u8; NONCE_LEN] = [7; NONCE_LEN];

    pub(super) fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    fn aad(t: &str, context: &str) -> Vec<u8> {
        seal_aad(&tenant(t), context)
    }

    #[test]
    fn round_trip_and_layout() {
        let a = aad("acme", "acme/user/alice/totp");
        let sealed = seal_with(&KEY, &a, b"top secret", NONCE).unwrap();
        assert_eq!(sealed[0], SEAL_VERSION);
        assert_eq!(&sealed[1..13], &NONCE);
        assert_eq!(sealed.len(), 1 + NONCE_LEN + b"top secret".len() + TAG_LEN);
        assert_eq!(&open_with(&KEY, &a, &sealed).unwrap()[..], b"top secret");
        // The empty plaintext seals too (tag only).
        let empty = seal_with(&KEY, &a, b"", NONCE).unwrap();
        assert!(open_with(&KEY, &a, &empty).unwrap().is_empty());
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let a = aad("acme", "ctx");
        let sealed = seal_with(&KEY, &a, b"+995 555 12 34 56", NONCE).unwrap();
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[byte] ^= 1 << bit;
                let err = open_with(&KEY, &a, &bad).unwrap_err();
                if byte == 0 {
                    assert!(matches!(err, SealError::UnknownVersion(_)), "{err}");
                } else {
                    assert!(matches!(err, SealError::Rejected), "{err}");
                }
            }
        }
    }

    #[test]
    fn truncated_values_are_malformed() {
        let a = aad("acme", "ctx");
        let sealed = seal_with(&KEY, &a, b"x", NONCE).unwrap();
        assert!(matches!(
            open_with(&KEY, &a, &[]),
            Err(SealError::Malformed)
        ));
        assert!(matches!(
            open_with(&KEY, &a, &sealed[..NONCE_LEN + TAG_LEN]),
            Err(SealError::Malformed)
        ));
        assert!(matches!(
            open_with(&KEY, &a, &sealed[..sealed.len() - 1]),
            Err(SealError::Rejected)
        ));
    }

    #[test]
    fn other_tenant_context_or_key_is_rejected() {
        let sealed = seal_with(&KEY, &aad("acme", "acme/user/a/totp"), b"s", NONCE).unwrap();
        for wrong in [
            aad("other", "acme/user/a/totp"),
            aad("acme", "acme/user/b/totp"),
            aad("acme", "acme/user/a/phone"),
            // The separator matters: "ac" + "me..." is not "acme" + "...".
            b"acme/user/a/totp".to_vec(),
        ] {
            assert!(matches!(
                open_with(&KEY, &wrong, &sealed),
                Err(SealError::Rejected)
            ));
        }
        let mut other_key = KEY;
        other_key[31] ^= 1;
        assert!(matches!(
            open_with(&other_key, &aad("acme", "acme/user/a/totp"), &sealed),
            Err(SealError::Rejected)
        ));
    }

    #[test]
    fn random_nonces_make_every_seal_different() {
        let a = aad("acme", "ctx");
        let one = seal_with(&KEY, &a, b"same", random_nonce()).unwrap();
        let two = seal_with(&KEY, &a, b"same", random_nonce()).unwrap();
        assert_ne!(one, two);
        assert_ne!(one[1..13], two[1..13]);
        assert_eq!(
            open_with(&KEY, &a, &one).unwrap(),
            open_with(&KEY, &a, &two).unwrap()
        );
    }

    #[test]
    fn data_keys_are_bound_to_master_key_and_tenant() {
        let master = Key32::from_bytes([1; 32]);
        let data_key = [9u8; 32];
        let wrapped = wrap_data_key(&master, &tenant("acme"), &data_key).unwrap();
        assert_eq!(
            *unwrap_data_key(&master, &tenant("acme"), &wrapped).unwrap(),
            data_key
        );
        let err = unwrap_data_key(&master, &tenant("other"), &wrapped).unwrap_err();
        assert!(matches!(err, SealError::DataKeyRejected(_)));
        let err =
            unwrap_data_key(&Key32::from_bytes([2; 32]), &tenant("acme"), &wrapped).unwrap_err();
        assert!(err.to_string().contains("TWOFOLD_MASTER_KEY"), "{err}");
        // A wrapped value of the wrong length is refused, not truncated or padded.
        let short = seal_with(master.expose(), b"acme", &[9u8; 16], NONCE).unwrap();
        assert!(unwrap_data_key(&master, &tenant("acme"), &short).is_err());
    }

    #[test]
    fn text_form_is_single_line_standard_base64() {
        let sealed = seal_with(&KEY, b"", &[0xfb; 100], NONCE).unwrap();
        let text = encode(&sealed);
        assert!(!text.as_encoded().contains('\n'));
        assert!(text
            .as_encoded()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
        assert_eq!(decode(&text).unwrap(), sealed);
        let bad = SealedSecret::from_encoded("not base64!".into());
        assert!(matches!(decode(&bad), Err(SealError::Malformed)));
    }
}

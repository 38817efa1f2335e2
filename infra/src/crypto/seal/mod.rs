//! Sealing of secrets and PII under data keys (DESIGN.md section 3, "Secrets"; decision 160).
//!
//! Two layers of AES-256-GCM:
//! - each owner (a tenant, or one user of a tenant) has a data key (32 bytes from the OS
//!   CSPRNG), stored in `data_keys` under a random key id, wrapped under the master key
//!   (`TWOFOLD_MASTER_KEY`) with the owner and the key id as associated data;
//! - a value is sealed under its owner's data key with the key id, the tenant id and a context
//!   (`"{aggregate id}/totp"`) as associated data, so a seal copied to another tenant, user or
//!   purpose does not open, and it carries the key id, so it names the one key that opens it.
//!
//! A seal is `0x02 || 16-byte key id || 12-byte random nonce || ciphertext and 16-byte tag`, in
//! standard base64 (a [`SealedSecret`]). Deleting a user's row in `data_keys` crypto-shreds
//! everything ever sealed for that user while the events stay immutable (`eraseUser`).
//!
//! The first format (`0x01`, no key id, one key per tenant in `tenant_data_keys`) is still
//! opened, for values sealed before per-user keys; `twofold keys reseal` moves what is still
//! in use to the new keys and then destroys those tenant keys.

mod current;
mod first_format;
mod keys;
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

pub use first_format::{tenants_with_first_format_keys, users_of};
pub use master::{master_key_id, MasterKeys};
pub use rotate::{rotate_master_key, Rotation};
pub use sealer::PgSealer;

/// The first format's version byte: every seal and wrapped key of `tenant_data_keys`.
pub const SEAL_VERSION: u8 = 0x01;

/// The version byte of a seal that names its data key (and of the keys in `data_keys`).
pub const SEAL_VERSION_KEYED: u8 = 0x02;

/// Bytes of a data key's id in a seal.
const KEY_ID_LEN: usize = 16;

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
    /// The seal names a data key that is not there: erased (`eraseUser`, `twofold tenant
    /// erase`), or sealed for another owner.
    #[error("the data key this value was sealed under is gone (erased)")]
    Erased,
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

/// The associated data of a seal that names its key: the key id first (fixed length), then
/// [`seal_aad`].
fn keyed_seal_aad(key_id: &uuid::Uuid, tenant: &TenantId, context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + KEY_ID_LEN + tenant.as_str().len() + 1 + context.len());
    aad.push(SEAL_VERSION_KEYED);
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(&seal_aad(tenant, context));
    aad
}

/// Seals under the data key `key_id` names: `0x02 || key id || nonce || ciphertext+tag`.
pub(super) fn seal_keyed(
    key: &[u8; 32],
    key_id: &uuid::Uuid,
    tenant: &TenantId,
    context: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let inner = seal_with(
        key,
        &keyed_seal_aad(key_id, tenant, context),
        plaintext,
        random_nonce(),
    )?;
    let mut out = Vec::with_capacity(1 + KEY_ID_LEN + inner.len() - 1);
    out.push(SEAL_VERSION_KEYED);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&inner[1..]);
    Ok(out)
}

/// The key id a [`seal_keyed`] value names.
pub(super) fn sealed_key_id(sealed: &[u8]) -> Result<uuid::Uuid, SealError> {
    match sealed.first() {
        Some(&SEAL_VERSION_KEYED) => {}
        Some(&v) => return Err(SealError::UnknownVersion(v)),
        None => return Err(SealError::Malformed),
    }
    let id = sealed.get(1..1 + KEY_ID_LEN).ok_or(SealError::Malformed)?;
    uuid::Uuid::from_slice(id).map_err(|_| SealError::Malformed)
}

/// Opens what [`seal_keyed`] produced, under the key its id names.
pub(super) fn open_keyed(
    key: &[u8; 32],
    tenant: &TenantId,
    context: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let key_id = sealed_key_id(sealed)?;
    let mut inner = Vec::with_capacity(sealed.len() - KEY_ID_LEN);
    inner.push(SEAL_VERSION);
    inner.extend_from_slice(&sealed[1 + KEY_ID_LEN..]);
    open_with(key, &keyed_seal_aad(&key_id, tenant, context), &inner)
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

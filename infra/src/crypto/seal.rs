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

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore;
use sqlx::PgPool;
use twofold_domain::secrets::SealedSecret;
use twofold_domain::TenantId;
use twofold_services::ports::Sealer;
use twofold_services::StoreError;
use zeroize::Zeroizing;

use crate::config::Key32;

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

/// A tenant's unwrapped data key, shared by the cache and the callers using it; zeroed when
/// the last holder drops it.
type DataKey = Arc<Zeroizing<[u8; 32]>>;

/// The [`Sealer`] of the service: per-tenant data keys in PostgreSQL (`tenant_data_keys`),
/// wrapped under the master key, unwrapped once per process and kept in memory so sealing and
/// opening do no database round trip after a tenant's first use.
pub struct PgSealer {
    pool: PgPool,
    master_key: Key32,
    keys: RwLock<HashMap<TenantId, DataKey>>,
}

impl PgSealer {
    /// A sealer over `pool` (migrated, so `tenant_data_keys` exists) with `master_key`
    /// (TWOFOLD_MASTER_KEY).
    pub fn new(pool: PgPool, master_key: Key32) -> Self {
        Self {
            pool,
            master_key,
            keys: RwLock::new(HashMap::new()),
        }
    }

    /// Crypto-shreds a tenant: deletes its data key, so nothing sealed for it opens again, and
    /// drops it from this process's cache. Returns whether there was a key. Other processes
    /// sharing the database keep their cached copy until they restart.
    pub async fn shred(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM tenant_data_keys WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .execute(&self.pool)
            .await
            .map_err(StoreError::new)?
            .rows_affected();
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(tenant);
        Ok(deleted > 0)
    }

    fn cached(&self, tenant: &TenantId) -> Option<DataKey> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .cloned()
    }

    async fn load(&self, tenant: &TenantId) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT wrapped_key FROM tenant_data_keys WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)
    }

    /// Stores a new random data key for `tenant` unless one exists. Concurrent first seals
    /// (in this process or another) race here; `ON CONFLICT DO NOTHING` keeps the first and
    /// every caller then reads that one.
    async fn create(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        let wrapped = wrap_data_key(&self.master_key, tenant, &key).map_err(StoreError::new)?;
        sqlx::query(
            "INSERT INTO tenant_data_keys (tenant_id, wrapped_key) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(wrapped)
        .execute(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(())
    }

    /// The tenant's data key: from the cache, else from the database (created first when
    /// `create` is set and there is none).
    async fn data_key(&self, tenant: &TenantId, create: bool) -> Result<DataKey, StoreError> {
        if let Some(key) = self.cached(tenant) {
            return Ok(key);
        }
        let wrapped = match self.load(tenant).await? {
            Some(wrapped) => wrapped,
            None if create => {
                self.create(tenant).await?;
                self.load(tenant).await?.ok_or_else(|| {
                    StoreError::new(SealError::NoDataKey(tenant.as_str().to_owned()))
                })?
            }
            None => {
                return Err(StoreError::new(SealError::NoDataKey(
                    tenant.as_str().to_owned(),
                )))
            }
        };
        let key =
            Arc::new(unwrap_data_key(&self.master_key, tenant, &wrapped).map_err(StoreError::new)?);
        // Another task may have cached the same key meanwhile; either copy is the one stored.
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        Ok(keys.entry(tenant.clone()).or_insert(key).clone())
    }
}

impl std::fmt::Debug for PgSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgSealer(<redacted>)")
    }
}

#[async_trait]
impl Sealer for PgSealer {
    async fn seal(
        &self,
        tenant: &TenantId,
        context: &str,
        plaintext: &[u8],
    ) -> Result<SealedSecret, StoreError> {
        let key = self.data_key(tenant, true).await?;
        let sealed = seal_with(&key, &seal_aad(tenant, context), plaintext, random_nonce())
            .map_err(StoreError::new)?;
        Ok(encode(&sealed))
    }

    async fn open(
        &self,
        tenant: &TenantId,
        context: &str,
        sealed: &SealedSecret,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let bytes = decode(sealed).map_err(StoreError::new)?;
        let key = self.data_key(tenant, false).await?;
        open_with(&key, &seal_aad(tenant, context), &bytes).map_err(StoreError::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [0x42; 32];
    const NONCE: [u8; NONCE_LEN] = [7; NONCE_LEN];

    fn tenant(id: &str) -> TenantId {
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

    /// The database part, on a private throwaway PostgreSQL cluster.
    mod pg {
        use super::*;
        use twofold_pg_local::{LocalPgOptions, LocalPostgres};

        struct Cluster {
            pg: LocalPostgres,
            dir: std::path::PathBuf,
        }

        impl Drop for Cluster {
            fn drop(&mut self) {
                let _ = self.pg.stop();
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }

        async fn cluster() -> Cluster {
            use std::os::unix::fs::PermissionsExt;
            let dir = std::env::temp_dir().join(format!(
                "twofold-sealer-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            let d = dir.clone();
            let pg = tokio::task::spawn_blocking(move || {
                LocalPostgres::start(
                    &d,
                    &LocalPgOptions {
                        ephemeral: true,
                        statement_stats: false,
                    },
                )
            })
            .await
            .unwrap()
            .unwrap();
            pg.stop_when_process_exits(std::process::id()).unwrap();
            Cluster { pg, dir }
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn seals_with_lazily_created_per_tenant_keys_and_shreds() {
            let cluster = cluster().await;
            let pool = crate::pg::connect(&cluster.pg.url("postgres"), 8)
                .await
                .unwrap();
            crate::pg::migrate(&pool).await.unwrap();
            let master = Key32::from_bytes([3; 32]);
            let acme = tenant("acme");
            let other = tenant("other");

            // Opening for a tenant without a data key is an error.
            let sealer = PgSealer::new(pool.clone(), master.clone());
            let foreign = SealedSecret::from_encoded(
                BASE64.encode(seal_with(&KEY, &seal_aad(&acme, "c"), b"x", NONCE).unwrap()),
            );
            let err = sealer.open(&acme, "c", &foreign).await.unwrap_err();
            assert!(format!("{err:?}").contains("NoDataKey"), "{err:?}");

            // Concurrent first seals from two sealers agree on one key.
            let second = PgSealer::new(pool.clone(), master.clone());
            let (a, b) = tokio::join!(
                sealer.seal(&acme, "acme/user/u/totp", b"secret-a"),
                second.seal(&acme, "acme/user/u/totp", b"secret-b"),
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(
                &second.open(&acme, "acme/user/u/totp", &a).await.unwrap()[..],
                b"secret-a"
            );
            assert_eq!(
                &sealer.open(&acme, "acme/user/u/totp", &b).await.unwrap()[..],
                b"secret-b"
            );
            let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_data_keys")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(rows, 1);

            // The stored key is wrapped, never the raw key.
            let wrapped: Vec<u8> = sqlx::query_scalar(
                "SELECT wrapped_key FROM tenant_data_keys WHERE tenant_id = 'acme'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(wrapped.len(), 1 + NONCE_LEN + 32 + TAG_LEN);

            // Wrong context, and another tenant (which gets its own key), do not open.
            assert!(sealer.open(&acme, "acme/user/v/totp", &a).await.is_err());
            let o = sealer.seal(&other, "c", b"o").await.unwrap();
            assert!(sealer.open(&other, "acme/user/u/totp", &a).await.is_err());
            assert!(sealer.open(&acme, "c", &o).await.is_err());

            // A restarted process (empty cache) opens through the database.
            let fresh = PgSealer::new(pool.clone(), master.clone());
            assert_eq!(
                &fresh.open(&acme, "acme/user/u/totp", &a).await.unwrap()[..],
                b"secret-a"
            );
            // The wrong master key cannot unwrap the data key; the error names no key.
            let wrong = PgSealer::new(pool.clone(), Key32::from_bytes([4; 32]));
            let err = wrong.open(&acme, "acme/user/u/totp", &a).await.unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("DataKeyRejected"), "{shown}");
            assert!(!shown.contains("secret-a"), "{shown}");

            // Shredding makes every seal of the tenant unreadable; the other tenant is intact.
            assert!(sealer.shred(&acme).await.unwrap());
            assert!(sealer.open(&acme, "acme/user/u/totp", &a).await.is_err());
            let fresh = PgSealer::new(pool.clone(), master.clone());
            assert!(fresh.open(&acme, "acme/user/u/totp", &a).await.is_err());
            assert_eq!(&fresh.open(&other, "c", &o).await.unwrap()[..], b"o");
            // A new seal after shredding gets a new key; the old seals stay dead.
            let new = sealer.seal(&acme, "acme/user/u/totp", b"n").await.unwrap();
            assert_eq!(
                &fresh.open(&acme, "acme/user/u/totp", &new).await.unwrap()[..],
                b"n"
            );
            assert!(fresh.open(&acme, "acme/user/u/totp", &a).await.is_err());
            pool.close().await;
        }
    }
}

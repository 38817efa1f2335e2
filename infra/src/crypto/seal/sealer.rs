//! `PgSealer`: the per-tenant data keys in PostgreSQL, and the cache that spares a round trip.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use rand::RngCore;
use sqlx::PgPool;
use twofold_domain::secrets::SealedSecret;
use twofold_domain::TenantId;
use twofold_services::ports::Sealer;
use twofold_services::StoreError;
use zeroize::Zeroizing;

use super::{
    decode, encode, open_with, random_nonce, seal_aad, seal_with, wrap_data_key, MasterKeys,
    SealError,
};
use crate::config::Key32;

/// A tenant's unwrapped data key, shared by the cache and the callers using it; zeroed when
/// the last holder drops it.
type DataKey = Arc<Zeroizing<[u8; 32]>>;

/// The [`Sealer`] of the service: per-tenant data keys in PostgreSQL (`tenant_data_keys`),
/// wrapped under the master key, unwrapped once per process and kept in memory so sealing and
/// opening do no database round trip after a tenant's first use.
pub struct PgSealer {
    pool: PgPool,
    master: MasterKeys,
    keys: RwLock<HashMap<TenantId, DataKey>>,
}

impl PgSealer {
    /// A sealer over `pool` (migrated, so `tenant_data_keys` exists) with `master_key`
    /// (TWOFOLD_MASTER_KEY).
    pub fn new(pool: PgPool, master_key: Key32) -> Self {
        Self::with_master_keys(pool, MasterKeys::new(master_key, None))
    }

    /// A sealer that also opens data keys still wrapped under the previous master key, while a
    /// rotation is under way (`TWOFOLD_MASTER_KEY_PREVIOUS`).
    pub fn with_master_keys(pool: PgPool, master: MasterKeys) -> Self {
        Self {
            pool,
            master,
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

    async fn load(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        sqlx::query_as::<_, (Vec<u8>, Option<String>)>(
            "SELECT wrapped_key, master_key_id FROM tenant_data_keys WHERE tenant_id = $1",
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
        let wrapped =
            wrap_data_key(self.master.current(), tenant, &key).map_err(StoreError::new)?;
        sqlx::query(
            "INSERT INTO tenant_data_keys (tenant_id, wrapped_key, master_key_id) \
             VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(wrapped)
        .bind(self.master.current_id())
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
        let (wrapped, id) = match self.load(tenant).await? {
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
        let (key, _) = self
            .master
            .unwrap(tenant, &wrapped, id.as_deref())
            .map_err(StoreError::new)?;
        let key = Arc::new(key);
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

/// The database part, on a private throwaway PostgreSQL cluster.
#[cfg(test)]
mod tests {
    use super::super::tests::{tenant, KEY, NONCE};
    use super::super::{NONCE_LEN, TAG_LEN};
    use super::*;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
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
        let wrapped: Vec<u8> =
            sqlx::query_scalar("SELECT wrapped_key FROM tenant_data_keys WHERE tenant_id = 'acme'")
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
        assert!(shown.contains("UnknownMasterKey"), "{shown}");
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

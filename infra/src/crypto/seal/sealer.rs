//! `PgSealer`: the data keys in PostgreSQL, and the caches that spare a round trip.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::PgPool;
use twofold_domain::secrets::SealedSecret;
use twofold_domain::user::UserRef;
use twofold_domain::TenantId;
use twofold_services::ports::Sealer;
use twofold_services::StoreError;
use zeroize::Zeroizing;

use super::current::{self, CurrentKeys};
use super::keys::{self, DataKey, KeyCache, Owner};
use super::{
    decode, encode, open_keyed, open_with, seal_aad, seal_keyed, sealed_key_id, MasterKeys,
    SealError, SEAL_VERSION,
};
use crate::config::Key32;

/// The [`Sealer`] of the service. New seals go under the owner's key in `data_keys` (a tenant's
/// own, or one per user) and name it; the first format's per-tenant keys (`tenant_data_keys`)
/// still open what was sealed before. Keys are unwrapped on first use and kept in memory, so
/// opening does no round trip while warm; sealing always reads the owner's current key, so a
/// key erased by another instance is never sealed under again.
pub struct PgSealer {
    pool: PgPool,
    master: MasterKeys,
    keys: Arc<KeyCache>,
    /// Writes and reads owners' current keys, first seals sharing statements.
    current: CurrentKeys,
    /// The task listening for erasures, ended with the sealer (it holds a pooled connection).
    listener: tokio::task::AbortHandle,
    /// The keys live on another server than the events (so their backups hold no key).
    keys_apart: bool,
}

impl Drop for PgSealer {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgSealer {
    /// A sealer over `pool` (migrated, so the key tables exist) with `master_key`
    /// (TWOFOLD_MASTER_KEY).
    pub fn new(pool: PgPool, master_key: Key32) -> Self {
        Self::with_master_keys(pool, MasterKeys::new(master_key, None))
    }

    /// A sealer that also opens data keys still wrapped under the previous master key, while a
    /// rotation is under way (`TWOFOLD_MASTER_KEY_PREVIOUS`). It listens for erasures on one
    /// of `pool`'s connections (in a task that ends when the sealer is dropped), so a key
    /// erased by any instance is forgotten by all at once.
    pub fn with_master_keys(pool: PgPool, master: MasterKeys) -> Self {
        let keys = Arc::new(KeyCache::new());
        let listener = tokio::spawn(keys::listen(Arc::downgrade(&keys), pool.clone()));
        Self {
            current: CurrentKeys::new(&pool, current::TIMING),
            pool,
            master,
            keys,
            listener: listener.abort_handle(),
            keys_apart: false,
        }
    }

    /// Says the keys live on another server than the events: an erasure then reaches the event
    /// database's backups (`Sealer::keys_apart`).
    pub fn with_keys_apart(mut self, apart: bool) -> Self {
        self.keys_apart = apart;
        self
    }

    async fn seal_for(
        &self,
        owner: Owner<'_>,
        context: &str,
        plaintext: &[u8],
    ) -> Result<SealedSecret, StoreError> {
        let generation = self.keys.generation();
        let (key_id, key) = self
            .current
            .current(&self.pool, &self.master, owner)
            .await?;
        self.keys.put(generation, owner, key_id, key.clone());
        let sealed =
            seal_keyed(&key, &key_id, owner.tenant, context, plaintext).map_err(StoreError::new)?;
        Ok(encode(&sealed))
    }

    async fn open_for(
        &self,
        owner: Owner<'_>,
        context: &str,
        sealed: &SealedSecret,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let bytes = decode(sealed).map_err(StoreError::new)?;
        if bytes.first() == Some(&SEAL_VERSION) {
            // The first format: under the tenant's one key, whoever the owner.
            let key = self.tenant_key(owner.tenant).await?;
            return open_with(&key, &seal_aad(owner.tenant, context), &bytes)
                .map_err(StoreError::new);
        }
        let key_id = sealed_key_id(&bytes).map_err(StoreError::new)?;
        let key = match self.keys.get(owner, &key_id) {
            Some(key) => key,
            None => {
                let generation = self.keys.generation();
                let key = keys::by_id(&self.pool, &self.master, owner, &key_id)
                    .await?
                    .ok_or_else(|| StoreError::new(SealError::Erased))?;
                self.keys.put(generation, owner, key_id, key.clone());
                key
            }
        };
        open_keyed(&key, owner.tenant, context, &bytes).map_err(StoreError::new)
    }

    /// The tenant's first-format key, which only opens: nothing is sealed under it any more.
    async fn tenant_key(&self, tenant: &TenantId) -> Result<DataKey, StoreError> {
        if let Some(key) = self.keys.tenant_key(tenant) {
            return Ok(key);
        }
        let generation = self.keys.generation();
        let (wrapped, id) = sqlx::query_as::<_, (Vec<u8>, Option<String>)>(
            "SELECT wrapped_key, master_key_id FROM tenant_data_keys WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?
        .ok_or_else(|| StoreError::new(SealError::NoDataKey(tenant.as_str().to_owned())))?;
        let (key, _) = self
            .master
            .unwrap(tenant, &wrapped, id.as_deref())
            .map_err(StoreError::new)?;
        let key = Arc::new(key);
        self.keys.put_tenant_key(generation, tenant, key.clone());
        Ok(key)
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
        let owner = Owner { tenant, user: None };
        self.seal_for(owner, context, plaintext).await
    }

    async fn open(
        &self,
        tenant: &TenantId,
        context: &str,
        sealed: &SealedSecret,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let owner = Owner { tenant, user: None };
        self.open_for(owner, context, sealed).await
    }

    async fn seal_for_user(
        &self,
        user: &UserRef,
        context: &str,
        plaintext: &[u8],
    ) -> Result<SealedSecret, StoreError> {
        let owner = Owner {
            tenant: &user.tenant,
            user: Some(&user.user),
        };
        self.seal_for(owner, context, plaintext).await
    }

    async fn open_for_user(
        &self,
        user: &UserRef,
        context: &str,
        sealed: &SealedSecret,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let owner = Owner {
            tenant: &user.tenant,
            user: Some(&user.user),
        };
        self.open_for(owner, context, sealed).await
    }

    async fn erase_user(&self, user: &UserRef) -> Result<u64, StoreError> {
        let erased = keys::erase(&self.pool, &user.tenant, Some(&user.user)).await?;
        // Not waiting for the announcement to come back: this process forgets at once.
        self.keys
            .forget_announced(&format!("tenant:{}", user.tenant.as_str()));
        Ok(erased)
    }

    fn keys_apart(&self) -> bool {
        self.keys_apart
    }

    fn needs_reseal(&self, sealed: &SealedSecret) -> bool {
        decode(sealed).is_ok_and(|bytes| bytes.first() == Some(&SEAL_VERSION))
    }

    async fn has_first_format_key(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenant_data_keys WHERE tenant_id = $1)")
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::new)
    }

    async fn retire_first_format_key(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        keys::retire_first_format_key(&self.pool, tenant).await
    }

    async fn erase_tenant(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let erased = keys::erase(&self.pool, tenant, None).await?;
        self.keys
            .forget_announced(&format!("tenant:{}", tenant.as_str()));
        Ok(erased)
    }
}

/// The database part, on a private throwaway PostgreSQL cluster.
#[cfg(test)]
pub(super) mod tests {
    use super::super::seal_with;
    use super::super::tests::{tenant, NONCE};
    use super::*;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use twofold_pg_local::{LocalPgOptions, LocalPostgres};

    pub(in crate::crypto::seal) struct Cluster {
        pub(in crate::crypto::seal) pg: LocalPostgres,
        dir: std::path::PathBuf,
    }

    impl Drop for Cluster {
        fn drop(&mut self) {
            let _ = self.pg.stop();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    pub(in crate::crypto::seal) async fn cluster() -> Cluster {
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

    pub(in crate::crypto::seal) fn user(tenant: &str, id: &str) -> UserRef {
        UserRef {
            tenant: super::super::tests::tenant(tenant),
            user: twofold_domain::UserId::parse(id).unwrap(),
        }
    }

    async fn count(pool: &PgPool, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn seals_under_per_owner_keys_and_erases_one_user_or_a_tenant() {
        let cluster = cluster().await;
        let pool = crate::pg::connect(&cluster.pg.url("postgres"), 8)
            .await
            .unwrap();
        crate::pg::migrate(&pool).await.unwrap();
        let master = Key32::from_bytes([3; 32]);
        let acme = tenant("acme");
        let (alice, bob) = (user("acme", "alice"), user("acme", "bob"));
        let ctx = |u: &UserRef| format!("{}/totp", u.aggregate_id());

        // Concurrent first seals from two instances agree on one key per owner.
        let sealer = PgSealer::new(pool.clone(), master.clone());
        let second = PgSealer::new(pool.clone(), master.clone());
        let alice_ctx = ctx(&alice);
        let (a, b) = tokio::join!(
            sealer.seal_for_user(&alice, &alice_ctx, b"secret-a"),
            second.seal_for_user(&alice, &alice_ctx, b"secret-b"),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            &*second
                .open_for_user(&alice, &ctx(&alice), &a)
                .await
                .unwrap(),
            b"secret-a"
        );
        assert_eq!(
            &*sealer
                .open_for_user(&alice, &ctx(&alice), &b)
                .await
                .unwrap(),
            b"secret-b"
        );
        let bob_seal = sealer
            .seal_for_user(&bob, &ctx(&bob), b"secret-bob")
            .await
            .unwrap();
        let tenant_seal = sealer
            .seal(&acme, "settings", b"smtp password")
            .await
            .unwrap();
        assert_eq!(count(&pool, "SELECT count(*) FROM data_keys").await, 3);
        // Each key is stored wrapped, never raw, and no first-format key is made any more.
        assert_eq!(
            count(
                &pool,
                "SELECT count(*) FROM data_keys WHERE length(wrapped_key) = 61"
            )
            .await,
            3
        );
        assert_eq!(
            count(&pool, "SELECT count(*) FROM tenant_data_keys").await,
            0
        );

        // A seal names its key and opens only for its owner and context.
        let raw = BASE64.decode(a.as_encoded()).unwrap();
        assert_eq!(raw[0], 0x02);
        assert!(sealer.open_for_user(&bob, &ctx(&alice), &a).await.is_err());
        assert!(sealer.open_for_user(&alice, &ctx(&bob), &a).await.is_err());
        assert!(sealer.open(&acme, &ctx(&alice), &a).await.is_err());
        assert!(sealer
            .open_for_user(&alice, "settings", &tenant_seal)
            .await
            .is_err());
        assert!(sealer
            .open_for_user(&user("other", "alice"), &ctx(&alice), &a)
            .await
            .is_err());
        // A seal whose key id was swapped for another owner's does not open either.
        let bob_raw = BASE64.decode(bob_seal.as_encoded()).unwrap();
        let mut swapped = raw.clone();
        swapped[1..17].copy_from_slice(&bob_raw[1..17]);
        let swapped = SealedSecret::from_encoded(BASE64.encode(&swapped));
        assert!(sealer
            .open_for_user(&alice, &ctx(&alice), &swapped)
            .await
            .is_err());
        assert!(sealer
            .open_for_user(&bob, &ctx(&alice), &swapped)
            .await
            .is_err());

        // A restarted process opens through the database; the wrong master key does not, and
        // its error names neither key nor user.
        let fresh = PgSealer::new(pool.clone(), master.clone());
        assert_eq!(
            &*fresh.open_for_user(&alice, &ctx(&alice), &a).await.unwrap(),
            b"secret-a"
        );
        let wrong = PgSealer::new(pool.clone(), Key32::from_bytes([4; 32]));
        let err = wrong
            .open_for_user(&alice, &ctx(&alice), &a)
            .await
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("UnknownMasterKey"), "{shown}");
        assert!(
            !shown.contains("secret-a") && !shown.contains("alice"),
            "{shown}"
        );

        // Erasing alice: her seals are dead everywhere (a warm cache in the erasing process,
        // a cold one elsewhere); bob and the tenant are intact.
        assert_eq!(sealer.erase_user(&alice).await.unwrap(), 1);
        // (An instance holding her key warm forgets it within the cache's TTL.)
        for s in [&sealer, &PgSealer::new(pool.clone(), master.clone())] {
            let err = s.open_for_user(&alice, &ctx(&alice), &a).await.unwrap_err();
            assert!(format!("{err:?}").contains("Erased"), "{err:?}");
        }
        assert_eq!(
            &*fresh
                .open_for_user(&bob, &ctx(&bob), &bob_seal)
                .await
                .unwrap(),
            b"secret-bob"
        );
        assert_eq!(
            &*fresh.open(&acme, "settings", &tenant_seal).await.unwrap(),
            b"smtp password"
        );
        // A new start: a new key, and the old seals stay dead.
        let new = second
            .seal_for_user(&alice, &ctx(&alice), b"n")
            .await
            .unwrap();
        assert_eq!(
            &*sealer
                .open_for_user(&alice, &ctx(&alice), &new)
                .await
                .unwrap(),
            b"n"
        );
        assert!(sealer
            .open_for_user(&alice, &ctx(&alice), &a)
            .await
            .is_err());
        assert_eq!(sealer.erase_user(&user("acme", "nobody")).await.unwrap(), 0);

        // A first-format seal (under the tenant's one key) still opens, for its user too.
        let legacy_key = [7u8; 32];
        sqlx::query(
            "INSERT INTO tenant_data_keys (tenant_id, wrapped_key, master_key_id) \
             VALUES ('acme', $1, $2)",
        )
        .bind(super::super::wrap_data_key(&master, &acme, &legacy_key).unwrap())
        .bind(super::super::master_key_id(&master))
        .execute(&pool)
        .await
        .unwrap();
        let old = SealedSecret::from_encoded(BASE64.encode(
            seal_with(&legacy_key, &seal_aad(&acme, &ctx(&bob)), b"old-bob", NONCE).unwrap(),
        ));
        assert_eq!(
            &*fresh.open_for_user(&bob, &ctx(&bob), &old).await.unwrap(),
            b"old-bob"
        );

        // Erasing the tenant takes every key of it, the first-format one too.
        let other = tenant("other");
        let kept = sealer.seal(&other, "c", b"o").await.unwrap();
        assert_eq!(fresh.erase_tenant(&acme).await.unwrap(), 4);
        assert!(fresh
            .open_for_user(&bob, &ctx(&bob), &bob_seal)
            .await
            .is_err());
        assert!(fresh.open_for_user(&bob, &ctx(&bob), &old).await.is_err());
        assert!(fresh.open(&acme, "settings", &tenant_seal).await.is_err());
        assert_eq!(&*fresh.open(&other, "c", &kept).await.unwrap(), b"o");
        pool.close().await;
    }
}

//! The data keys of the second format (`data_keys`): one per tenant and one per user, each
//! named by a random id that every seal made under it carries, and the bounded in-memory copy
//! that spares the hot path a round trip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use twofold_domain::{TenantId, UserId};
use twofold_services::StoreError;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{open_with, random_nonce, seal_with, MasterKeys, SealError};
use crate::config::Key32;

/// An unwrapped data key, shared by the cache and the callers using it; zeroed when the last
/// holder drops it.
pub(super) type DataKey = Arc<Zeroizing<[u8; 32]>>;

/// Whose key: a tenant's own (its delivery settings, links, cursors), or one user's (contact
/// details, TOTP secret, WebAuthn material). The user column is empty for a tenant's key; a
/// user id is never empty.
#[derive(Clone, Copy)]
pub(super) struct Owner<'a> {
    pub tenant: &'a TenantId,
    pub user: Option<&'a UserId>,
}

impl Owner<'_> {
    pub(super) fn user_column(&self) -> &str {
        self.user.map_or("", UserId::as_str)
    }

    /// What an error names: the tenant, never the user (user ids can be email addresses, and
    /// errors end up in logs).
    pub(super) fn label(&self) -> String {
        match self.user {
            None => self.tenant.as_str().to_owned(),
            Some(_) => format!("{} (a user's key)", self.tenant.as_str()),
        }
    }

    /// The associated data a key is wrapped with: the format, the owner and the key id, so a
    /// wrapped key moved to another row does not open.
    fn wrap_aad(&self, key_id: &Uuid) -> Vec<u8> {
        let mut aad = b"twofold/data-key/v2\0".to_vec();
        aad.extend_from_slice(self.tenant.as_str().as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.user_column().as_bytes());
        aad.push(0);
        aad.extend_from_slice(key_id.as_bytes());
        aad
    }
}

/// Wraps a data key under `master` for `owner`'s row `key_id`.
pub(super) fn wrap(
    master: &Key32,
    owner: Owner<'_>,
    key_id: &Uuid,
    key: &[u8; 32],
) -> Result<Vec<u8>, SealError> {
    seal_with(
        master.expose(),
        &owner.wrap_aad(key_id),
        key,
        random_nonce(),
    )
}

/// Unwraps what [`wrap`] produced for the same owner and key id under any configured master
/// key (the one `master_key_id` names). Returns the key and whether it was under the current
/// master key.
pub(super) fn unwrap(
    master: &MasterKeys,
    owner: Owner<'_>,
    key_id: &Uuid,
    wrapped: &[u8],
    master_key_id: &str,
) -> Result<(Zeroizing<[u8; 32]>, bool), SealError> {
    let aad = owner.wrap_aad(key_id);
    master.unwrap_by(&owner.label(), Some(master_key_id), |m| {
        let rejected = || SealError::DataKeyRejected(owner.label());
        let bytes = open_with(m.expose(), &aad, wrapped).map_err(|_| rejected())?;
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return Err(rejected());
        }
        key.copy_from_slice(&bytes);
        Ok(key)
    })
}

/// The data key `key_id`, if it is still stored and belongs to `owner`.
pub(super) async fn by_id(
    pool: &PgPool,
    master: &MasterKeys,
    owner: Owner<'_>,
    key_id: &Uuid,
) -> Result<Option<DataKey>, StoreError> {
    let row: Option<(Vec<u8>, String)> = sqlx::query_as(
        "SELECT wrapped_key, master_key_id FROM data_keys \
         WHERE key_id = $1::uuid AND tenant_id = $2 AND user_id = $3",
    )
    .bind(key_id.to_string())
    .bind(owner.tenant.as_str())
    .bind(owner.user_column())
    .fetch_optional(pool)
    .await
    .map_err(StoreError::new)?;
    let Some((wrapped, master_id)) = row else {
        return Ok(None);
    };
    let (key, _) = unwrap(master, owner, key_id, &wrapped, &master_id).map_err(StoreError::new)?;
    Ok(Some(Arc::new(key)))
}

/// How long an unwrapped key is kept in memory, so a key does not stay in memory for as long as
/// the process runs even if an erasure announcement were missed.
pub(super) const CACHE_TTL: Duration = Duration::from_secs(300);

/// Most keys kept in memory (about 150 bytes each, 20 MiB in all): a user's key is read by
/// every sign-in that opens their secret, so this is the users an instance serves within
/// [`CACHE_TTL`] without a key read each. The least useful go first (quick_cache's S3-FIFO);
/// until issue 21 a full cache started over, and 100,000 users signing in made nearly every
/// sign-in read its key.
pub(super) const CACHE_CAPACITY: usize = 131_072;

struct Cached {
    tenant: TenantId,
    user: String,
    key: DataKey,
    fetched: Instant,
}

/// The channel an erasure is announced on, so every instance forgets the keys at once.
pub(super) const ERASED_CHANNEL: &str = "twofold_data_keys_erased";

/// Unwrapped keys by id, for at most [`CACHE_TTL`] each and [`CACHE_CAPACITY`] in all, used
/// only while this instance listens for erasures (otherwise every open reads the key).
pub(super) struct KeyCache {
    keys: quick_cache::sync::Cache<Uuid, Arc<Cached>>,
    /// Held for writing by whatever stores or forgets keys, so an erasure heard cannot slip
    /// between a store's generation check and its insert.
    guard: RwLock<()>,
    /// The first format's per-tenant keys (`tenant_data_keys`), which only open.
    tenant_keys: RwLock<HashMap<TenantId, DataKey>>,
    /// Bumped by every erasure heard: a key read before it is not kept after it.
    generation: AtomicU64,
    listening: AtomicBool,
}

impl KeyCache {
    pub(super) fn new() -> Self {
        Self {
            keys: quick_cache::sync::Cache::new(CACHE_CAPACITY),
            guard: RwLock::new(()),
            tenant_keys: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            listening: AtomicBool::new(false),
        }
    }

    /// Where the cache stands; pass it to [`KeyCache::put`] with a key read after it.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(super) fn get(&self, owner: Owner<'_>, key_id: &Uuid) -> Option<DataKey> {
        if !self.listening.load(Ordering::SeqCst) {
            return None;
        }
        let cached = self.keys.get(key_id)?;
        let mine = &cached.tenant == owner.tenant && cached.user == owner.user_column();
        (mine && cached.fetched.elapsed() < CACHE_TTL).then(|| cached.key.clone())
    }

    /// Keeps a key read at `generation`, unless an erasure was heard since.
    pub(super) fn put(&self, generation: u64, owner: Owner<'_>, key_id: Uuid, key: DataKey) {
        let _guard = self.guard.write().unwrap_or_else(PoisonError::into_inner);
        if !self.listening.load(Ordering::SeqCst) || self.generation() != generation {
            return;
        }
        self.keys.insert(
            key_id,
            Arc::new(Cached {
                tenant: owner.tenant.clone(),
                user: owner.user_column().to_owned(),
                key,
                fetched: Instant::now(),
            }),
        );
    }

    pub(super) fn tenant_key(&self, tenant: &TenantId) -> Option<DataKey> {
        if !self.listening.load(Ordering::SeqCst) {
            return None;
        }
        let keys = self
            .tenant_keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        keys.get(tenant).cloned()
    }

    pub(super) fn put_tenant_key(&self, generation: u64, tenant: &TenantId, key: DataKey) {
        // Held as in `put`: an announcement cannot slip between the check and the insert.
        let guard = self.guard.write().unwrap_or_else(PoisonError::into_inner);
        if !self.listening.load(Ordering::SeqCst) || self.generation() != generation {
            return;
        }
        let mut tenant_keys = self
            .tenant_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        tenant_keys.insert(tenant.clone(), key);
        drop(guard);
    }

    /// Forgets what an erasure announcement (`keys:<id>,<id>`, `first-format:<tenant>` or
    /// `tenant:<id>`) names, and
    /// everything when it names nothing this build understands.
    pub(super) fn forget_announced(&self, payload: &str) {
        let _guard = self.guard.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        let keys = &self.keys;
        if let Some(ids) = payload.strip_prefix("keys:") {
            for id in ids.split(',').filter_map(|id| Uuid::parse_str(id).ok()) {
                keys.remove(&id);
            }
        } else if let Some(tenant) = payload.strip_prefix("first-format:") {
            self.tenant_keys
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|t, _| t.as_str() != tenant);
        } else if let Some(tenant) = payload.strip_prefix("tenant:") {
            keys.retain(|_, c| c.tenant.as_str() != tenant);
            self.tenant_keys
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|t, _| t.as_str() != tenant);
        } else {
            keys.clear();
            self.tenant_keys
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    fn stop_listening(&self) {
        let _guard = self.guard.write().unwrap_or_else(PoisonError::into_inner);
        self.listening.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.keys.clear();
        self.tenant_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Follows the erasure channel on `pool`; the cache is used only while this runs connected,
/// and starts empty each time it connects (what was erased meanwhile is unknown).
pub(super) async fn listen(cache: Weak<KeyCache>, pool: PgPool) {
    // A connection of its own, so listening takes none of the pool's working connections.
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(pool.connect_options().as_ref().clone());
    loop {
        if pool.is_closed() || cache.strong_count() == 0 {
            return;
        }
        let connected = async {
            let mut listener = PgListener::connect_with(&own).await?;
            listener.listen(ERASED_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for erasures; not caching data keys");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Some(cache) = cache.upgrade() {
            cache.stop_listening();
            cache.listening.store(true, Ordering::SeqCst);
        }
        loop {
            let received = listener.try_recv().await;
            let Some(cache) = cache.upgrade() else {
                return;
            };
            match received {
                Ok(Some(notification)) => cache.forget_announced(notification.payload()),
                Ok(None) | Err(_) => {
                    cache.stop_listening();
                    break;
                }
            }
        }
    }
}

/// Deletes one user's keys (`Some`), or every key of a tenant, its users' and its first-format
/// key (`None`), and announces it in the same transaction. Returns how many rows went.
pub(super) async fn erase(
    pool: &PgPool,
    tenant: &TenantId,
    user: Option<&UserId>,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await.map_err(StoreError::new)?;
    let ids: Vec<String> = match user {
        Some(user) => {
            sqlx::query_scalar(
                "DELETE FROM data_keys WHERE tenant_id = $1 AND user_id = $2 \
                 RETURNING key_id::text",
            )
            .bind(tenant.as_str())
            .bind(user.as_str())
            .fetch_all(&mut *tx)
            .await
        }
        None => {
            sqlx::query_scalar("DELETE FROM data_keys WHERE tenant_id = $1 RETURNING key_id::text")
                .bind(tenant.as_str())
                .fetch_all(&mut *tx)
                .await
        }
    }
    .map_err(StoreError::new)?;
    let mut erased = ids.len() as u64;
    let announcement = match user {
        Some(_) => format!("keys:{}", ids.join(",")),
        None => {
            erased += sqlx::query("DELETE FROM tenant_data_keys WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::new)?
                .rows_affected();
            format!("tenant:{}", tenant.as_str())
        }
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(ERASED_CHANNEL)
        .bind(announcement)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
    tx.commit().await.map_err(StoreError::new)?;
    Ok(erased)
}

/// Deletes the tenant's first-format key and announces it (every instance forgets it).
pub(super) async fn retire_first_format_key(
    pool: &PgPool,
    tenant: &TenantId,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(StoreError::new)?;
    let deleted = sqlx::query("DELETE FROM tenant_data_keys WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?
        .rows_affected();
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(ERASED_CHANNEL)
        .bind(format!("first-format:{}", tenant.as_str()))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
    tx.commit().await.map_err(StoreError::new)?;
    Ok(deleted > 0)
}

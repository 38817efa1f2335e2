//! The data keys of the second format (`data_keys`): one per tenant and one per user, each
//! named by a random id that every seal made under it carries, and the bounded in-memory copy
//! that spares the hot path a round trip.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rand::RngCore;
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
    fn user_column(&self) -> &str {
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

/// The owner's current data key and its id, created on first use. One statement: it inserts a
/// fresh key unless the owner has one, and returns whichever is stored.
pub(super) async fn current(
    pool: &PgPool,
    master: &MasterKeys,
    owner: Owner<'_>,
) -> Result<(Uuid, DataKey), StoreError> {
    let fresh_id = Uuid::new_v4();
    let mut fresh = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(fresh.as_mut());
    let wrapped = wrap(master.current(), owner, &fresh_id, &fresh).map_err(StoreError::new)?;
    // The second branch sees a key committed before this statement began; one committed by a
    // racing first seal during it is found by the plain read below.
    // Key ids cross the wire as text: the uuid type keeps the column honest without a driver
    // feature for it.
    let row: Option<(String, Vec<u8>, String)> = sqlx::query_as(
        "WITH created AS ( \
             INSERT INTO data_keys (key_id, tenant_id, user_id, wrapped_key, master_key_id) \
             VALUES ($1::uuid, $2, $3, $4, $5) ON CONFLICT (tenant_id, user_id) DO NOTHING \
             RETURNING key_id, wrapped_key, master_key_id) \
         SELECT key_id::text, wrapped_key, master_key_id FROM created \
         UNION ALL \
         SELECT key_id::text, wrapped_key, master_key_id FROM data_keys \
         WHERE tenant_id = $2 AND user_id = $3 \
         LIMIT 1",
    )
    .bind(fresh_id.to_string())
    .bind(owner.tenant.as_str())
    .bind(owner.user_column())
    .bind(&wrapped)
    .bind(master.current_id())
    .fetch_optional(pool)
    .await
    .map_err(StoreError::new)?;
    let (id, wrapped, master_id) = match row {
        Some(row) => row,
        None => sqlx::query_as(
            "SELECT key_id::text, wrapped_key, master_key_id FROM data_keys \
             WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(owner.tenant.as_str())
        .bind(owner.user_column())
        .fetch_optional(pool)
        .await
        .map_err(StoreError::new)?
        .ok_or_else(|| StoreError::new(SealError::Erased))?,
    };
    let id = Uuid::parse_str(&id).map_err(StoreError::new)?;
    if id == fresh_id {
        return Ok((id, Arc::new(fresh)));
    }
    let (key, _) = unwrap(master, owner, &id, &wrapped, &master_id).map_err(StoreError::new)?;
    Ok((id, Arc::new(key)))
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

/// How long an unwrapped key is kept in memory: an instance that did not do an erasure itself
/// forgets the erased key within this, even for a user it served a moment before.
pub(super) const CACHE_TTL: Duration = Duration::from_secs(300);

/// Most keys kept in memory (about 150 bytes each).
pub(super) const CACHE_CAPACITY: usize = 65_536;

struct Cached {
    tenant: TenantId,
    user: String,
    key: DataKey,
    fetched: Instant,
}

/// Unwrapped keys by id, for at most [`CACHE_TTL`] each and [`CACHE_CAPACITY`] in all.
pub(super) struct KeyCache {
    keys: RwLock<HashMap<Uuid, Cached>>,
}

impl KeyCache {
    pub(super) fn new() -> Self {
        Self {
            keys: RwLock::new(HashMap::new()),
        }
    }

    pub(super) fn get(&self, owner: Owner<'_>, key_id: &Uuid) -> Option<DataKey> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let cached = keys.get(key_id)?;
        let mine = &cached.tenant == owner.tenant && cached.user == owner.user_column();
        (mine && cached.fetched.elapsed() < CACHE_TTL).then(|| cached.key.clone())
    }

    pub(super) fn put(&self, owner: Owner<'_>, key_id: Uuid, key: DataKey) {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= CACHE_CAPACITY {
            keys.retain(|_, c| c.fetched.elapsed() < CACHE_TTL);
            if keys.len() >= CACHE_CAPACITY {
                // Rare (that many distinct users within the TTL): start over rather than track
                // recency on every read.
                keys.clear();
            }
        }
        keys.insert(
            key_id,
            Cached {
                tenant: owner.tenant.clone(),
                user: owner.user_column().to_owned(),
                key,
                fetched: Instant::now(),
            },
        );
    }

    /// Forgets the keys of one user (`Some`), or of a whole tenant and its users (`None`).
    pub(super) fn forget(&self, tenant: &TenantId, user: Option<&UserId>) {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        keys.retain(|_, c| &c.tenant != tenant || user.is_some_and(|u| c.user != u.as_str()));
    }
}

/// Deletes one user's keys (`Some`), or every key of a tenant, its users' and its first-format
/// key (`None`). Returns how many rows went.
pub(super) async fn erase(
    pool: &PgPool,
    tenant: &TenantId,
    user: Option<&UserId>,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await.map_err(StoreError::new)?;
    let mut erased = match user {
        Some(user) => {
            sqlx::query("DELETE FROM data_keys WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant.as_str())
                .bind(user.as_str())
                .execute(&mut *tx)
                .await
        }
        None => {
            sqlx::query("DELETE FROM data_keys WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await
        }
    }
    .map_err(StoreError::new)?
    .rows_affected();
    if user.is_none() {
        erased += sqlx::query("DELETE FROM tenant_data_keys WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::new)?
            .rows_affected();
    }
    tx.commit().await.map_err(StoreError::new)?;
    Ok(erased)
}

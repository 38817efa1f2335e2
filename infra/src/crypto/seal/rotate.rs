//! `twofold keys rotate`: every data key (the tenants' and users' in `data_keys`, and the first
//! format's in `tenant_data_keys`) rewrapped under the current master key, while the service
//! runs. Only the wrapping changes: the data keys themselves, and so every seal in the
//! event log, stay as they are, and instances that hold a data key in memory never notice.

use sqlx::PgPool;
use twofold_domain::TenantId;
use twofold_services::StoreError;

use super::keys::{self, Owner};
use super::{wrap_data_key, MasterKeys};

/// What a rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Rewrapped under the current master key now.
    pub rewrapped: u64,
    /// Already under it (and checked to open under it).
    pub current: u64,
    /// Keys that open under neither configured master key (or are labelled with the current
    /// key but do not open under it), by tenant (`acme`, or `acme (a user's key)`): still
    /// unreadable, and left untouched.
    pub failed: Vec<String>,
    /// Rows not under the current key after the last pass (created meanwhile by an instance
    /// that still has only the old key, or changed under the rotation): run it again once
    /// every instance has the new key. Zero means done.
    pub remaining: u64,
}

impl Rotation {
    /// Whether the previous master key is no longer needed by anything stored now.
    pub fn complete(&self) -> bool {
        self.failed.is_empty() && self.remaining == 0
    }
}

/// Rows per read: the table is read in tenant order, a page at a time.
const PAGE: i64 = 500;

/// Passes before giving up on rows that keep appearing under the old key.
const PASSES: usize = 5;

/// Rewraps every data key not yet under `master`'s current key, pass after pass until a pass
/// finds nothing to do, then counts what is still not under it. Each row is replaced only if it
/// still holds what was read (a compare-and-set), so a row shredded meanwhile stays shredded.
/// Every row is opened, also those labelled with the current key, so a wrong label cannot hide a
/// row that still needs the old key. Running it again is harmless.
pub async fn rotate_master_key(pool: &PgPool, master: &MasterKeys) -> Result<Rotation, StoreError> {
    let mut rotation = Rotation::default();
    for _ in 0..PASSES {
        let mut pass = one_pass(pool, master).await?;
        let owned = owned_pass(pool, master).await?;
        pass.rewrapped += owned.rewrapped;
        pass.current += owned.current;
        pass.changed += owned.changed;
        pass.failed.extend(owned.failed);
        rotation.rewrapped += pass.rewrapped;
        rotation.current = pass.current;
        rotation.failed = pass.failed;
        if pass.rewrapped == 0 && pass.changed == 0 {
            break;
        }
    }
    // Rows that failed are counted there, not here; `failed` names tenants, so a tenant with
    // one failed key has every key of its own left out of this count.
    rotation.remaining = sqlx::query_scalar::<_, i64>(
        "SELECT (SELECT count(*) FROM tenant_data_keys \
                 WHERE master_key_id IS DISTINCT FROM $1 AND NOT tenant_id = ANY($2)) \
              + (SELECT count(*) FROM data_keys \
                 WHERE master_key_id <> $1 AND NOT tenant_id = ANY($2))",
    )
    .bind(master.current_id())
    .bind(
        rotation
            .failed
            .iter()
            .map(|f| f.split(' ').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>(),
    )
    .fetch_one(pool)
    .await
    .map_err(StoreError::new)?
    .try_into()
    .unwrap_or(0);
    Ok(rotation)
}

#[derive(Default)]
struct Pass {
    rewrapped: u64,
    current: u64,
    changed: u64,
    failed: Vec<String>,
}

async fn one_pass(pool: &PgPool, master: &MasterKeys) -> Result<Pass, StoreError> {
    let mut pass = Pass::default();
    let mut after = String::new();
    loop {
        let rows: Vec<(String, Vec<u8>, Option<String>)> = sqlx::query_as(
            "SELECT tenant_id, wrapped_key, master_key_id FROM tenant_data_keys \
             WHERE tenant_id > $1 ORDER BY tenant_id LIMIT $2",
        )
        .bind(&after)
        .bind(PAGE)
        .fetch_all(pool)
        .await
        .map_err(StoreError::new)?;
        let Some((last, _, _)) = rows.last() else {
            break;
        };
        after = last.clone();
        for (tenant, wrapped, id) in rows {
            let Ok(tenant_id) = TenantId::parse(&tenant) else {
                pass.failed.push(tenant);
                continue;
            };
            let Ok((key, under_current)) = master.unwrap(&tenant_id, &wrapped, id.as_deref())
            else {
                pass.failed.push(tenant);
                continue;
            };
            if under_current && id.as_deref() == Some(master.current_id()) {
                pass.current += 1;
                continue;
            }
            let rewrapped =
                wrap_data_key(master.current(), &tenant_id, &key).map_err(StoreError::new)?;
            let updated = sqlx::query(
                "UPDATE tenant_data_keys SET wrapped_key = $3, master_key_id = $4 \
                 WHERE tenant_id = $1 AND wrapped_key = $2",
            )
            .bind(&tenant)
            .bind(&wrapped)
            .bind(&rewrapped)
            .bind(master.current_id())
            .execute(pool)
            .await
            .map_err(StoreError::new)?
            .rows_affected();
            if updated == 1 {
                pass.rewrapped += 1;
            } else {
                pass.changed += 1;
            }
        }
    }
    Ok(pass)
}

/// One pass over `data_keys`, in key id order, as [`one_pass`] does for the first format.
async fn owned_pass(pool: &PgPool, master: &MasterKeys) -> Result<Pass, StoreError> {
    let mut pass = Pass::default();
    let mut after = uuid::Uuid::nil().to_string();
    loop {
        let rows: Vec<(String, String, String, Vec<u8>, String)> = sqlx::query_as(
            "SELECT key_id::text, tenant_id, user_id, wrapped_key, master_key_id FROM data_keys \
             WHERE key_id > $1::uuid ORDER BY key_id LIMIT $2",
        )
        .bind(&after)
        .bind(PAGE)
        .fetch_all(pool)
        .await
        .map_err(StoreError::new)?;
        let Some((last, ..)) = rows.last() else {
            break;
        };
        after = last.clone();
        for (key_id, tenant, user, wrapped, id) in rows {
            let parsed = (
                uuid::Uuid::parse_str(&key_id),
                TenantId::parse(&tenant),
                (!user.is_empty())
                    .then(|| twofold_domain::UserId::parse(&user))
                    .transpose(),
            );
            let (Ok(key_id), Ok(tenant_id), Ok(user_id)) = parsed else {
                pass.failed.push(tenant);
                continue;
            };
            let owner = Owner {
                tenant: &tenant_id,
                user: user_id.as_ref(),
            };
            let Ok((key, under_current)) = keys::unwrap(master, owner, &key_id, &wrapped, &id)
            else {
                pass.failed.push(owner.label());
                continue;
            };
            if under_current && id == master.current_id() {
                pass.current += 1;
                continue;
            }
            let rewrapped =
                keys::wrap(master.current(), owner, &key_id, &key).map_err(StoreError::new)?;
            let updated = sqlx::query(
                "UPDATE data_keys SET wrapped_key = $3, master_key_id = $4 \
                 WHERE key_id = $1::uuid AND wrapped_key = $2",
            )
            .bind(key_id.to_string())
            .bind(&wrapped)
            .bind(&rewrapped)
            .bind(master.current_id())
            .execute(pool)
            .await
            .map_err(StoreError::new)?
            .rows_affected();
            if updated == 1 {
                pass.rewrapped += 1;
            } else {
                pass.changed += 1;
            }
        }
    }
    Ok(pass)
}

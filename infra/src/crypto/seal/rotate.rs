//! `twofold keys rotate`: every data key rewrapped under the current master key, while the
//! service runs. Only the wrapping changes: the data keys themselves, and so every seal in the
//! event log, stay as they are, and instances that hold a data key in memory never notice.

use sqlx::PgPool;
use twofold_domain::TenantId;
use twofold_services::StoreError;

use super::{wrap_data_key, MasterKeys};

/// What a rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Rewrapped under the current master key now.
    pub rewrapped: u64,
    /// Already under it.
    pub current: u64,
    /// Changed by someone else between the read and the write (shredded, or rewrapped by a
    /// concurrent rotation): left as they are.
    pub changed_meanwhile: u64,
    /// Tenants whose data key opens under neither configured master key: still unreadable,
    /// and left untouched.
    pub failed: Vec<String>,
}

/// Rows per read: the table is read in tenant order, a page at a time.
const PAGE: i64 = 500;

/// Rewraps every data key not yet under `master`'s current key. Each row is replaced only if it
/// still holds what was read (a compare-and-set), so a row shredded meanwhile stays shredded.
/// Running it again is harmless: rows already under the current key are only counted.
pub async fn rotate_master_key(pool: &PgPool, master: &MasterKeys) -> Result<Rotation, StoreError> {
    let mut rotation = Rotation::default();
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
            if id.as_deref() == Some(master.current_id()) {
                rotation.current += 1;
                continue;
            }
            let Ok(tenant_id) = TenantId::parse(&tenant) else {
                rotation.failed.push(tenant);
                continue;
            };
            let Ok((key, _)) = master.unwrap(&tenant_id, &wrapped, id.as_deref()) else {
                rotation.failed.push(tenant);
                continue;
            };
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
                rotation.rewrapped += 1;
            } else {
                rotation.changed_meanwhile += 1;
            }
        }
    }
    Ok(rotation)
}

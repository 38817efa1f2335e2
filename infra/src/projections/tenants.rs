//! The `tenants` projection (tenant rows and API keys by keyed hash) and the directory that reads
//! it. Every write is idempotent, so replaying an event (a rebuild) yields the same rows.
//! Revocations are also in `key_revocations`, written with the event itself (a trigger), so a
//! stalled projection never keeps a revoked key alive.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use sqlx::{PgConnection, PgPool, Row};
use twofold_domain::tenant::{KeyedHash, Tenant, TenantDelivery, TenantEvent};
use twofold_domain::{ApiKeyId, Policy, Role, TenantId};
use twofold_services::ports::{ApiKeyView, TenantDirectory, TenantView};
use twofold_services::StoreError;

use crate::processor::{Projection, ProjectionError, StoredEvent};

/// Keeps `tenants` and `api_keys`.
pub struct TenantsProjection;

#[async_trait]
impl Projection for TenantsProjection {
    fn name(&self) -> &'static str {
        "tenants"
    }

    fn reads(&self, aggregate_type: &str) -> bool {
        aggregate_type == Tenant::TYPE
    }

    async fn apply(
        &self,
        db: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        if event.aggregate_type != Tenant::TYPE {
            return Ok(());
        }
        let tenant = event.tenant_id.as_str();
        match event.decode::<TenantEvent>()? {
            TenantEvent::TenantRegistered {
                name,
                policy,
                registered_at,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO tenants \
                       (tenant_id, name, policy, created_at, updated_at, enforced_since) \
                     VALUES ($1, $2, $3, $4, $4, $5) \
                     ON CONFLICT (tenant_id) DO UPDATE \
                       SET name = $2, policy = $3, updated_at = $4, enforced_since = $5",
                )
                .bind(tenant)
                .bind(name.as_str())
                .bind(serde_json::to_value(&policy)?)
                .bind(registered_at)
                .bind(policy.enforce_two_factor.then_some(registered_at))
                .execute(&mut *db)
                .await?;
            }
            TenantEvent::ApiKeyIssued {
                key_id,
                role,
                label,
                key_hash,
                issued_at,
            } => {
                sqlx::query(
                    "INSERT INTO api_keys (tenant_id, key_id, role, label, key_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, key_id) DO NOTHING",
                )
                .bind(tenant)
                .bind(key_id.as_str())
                .bind(role.as_str())
                .bind(label.as_str())
                .bind(key_hash.as_hex())
                .bind(issued_at)
                .execute(&mut *db)
                .await?;
            }
            TenantEvent::ApiKeyRevoked { key_id, revoked_at } => {
                sqlx::query(
                    "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND key_id = $2",
                )
                .bind(tenant)
                .bind(key_id.as_str())
                .bind(revoked_at)
                .execute(&mut *db)
                .await?;
            }
            TenantEvent::TwoFactorPolicySet {
                previous,
                policy,
                set_at,
            } => {
                // Enforcement turned on starts the grace periods; left on keeps their start;
                // turned off clears it.
                let enforced_since = match (previous.enforce_two_factor, policy.enforce_two_factor)
                {
                    (false, true) => "$3",
                    (true, true) => "coalesce(enforced_since, $3)",
                    (_, false) => "NULL",
                };
                sqlx::query(&format!(
                    "UPDATE tenants SET policy = $2, updated_at = $3, \
                     enforced_since = {enforced_since}::timestamptz WHERE tenant_id = $1"
                ))
                .bind(tenant)
                .bind(serde_json::to_value(&policy)?)
                .bind(set_at)
                .execute(&mut *db)
                .await?;
            }
            TenantEvent::DeliverySettingsChanged {
                version,
                settings,
                sealed,
                changed_at,
            } => {
                let delivery = settings.zip(sealed).map(|(facts, sealed)| TenantDelivery {
                    version,
                    facts,
                    sealed,
                    changed_at,
                });
                sqlx::query(
                    "UPDATE tenants SET delivery = $2, updated_at = $3 WHERE tenant_id = $1",
                )
                .bind(tenant)
                .bind(delivery.map(|d| serde_json::to_value(&d)).transpose()?)
                .bind(changed_at)
                .execute(&mut *db)
                .await?;
            }
            // Its keys were revoked by the events before; the settings were sealed under a
            // destroyed key.
            TenantEvent::TenantErased { erased_at, .. } => {
                sqlx::query(
                    "UPDATE tenants SET delivery = NULL, updated_at = $2 WHERE tenant_id = $1",
                )
                .bind(tenant)
                .bind(erased_at)
                .execute(&mut *db)
                .await?;
            }
            TenantEvent::DeliveryTested { .. }
            | TenantEvent::ConsoleSignedIn { .. }
            | TenantEvent::ConsoleSignedOut { .. } => {}
        }
        Ok(())
    }

    async fn reset(&self, db: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::query("DELETE FROM api_keys")
            .execute(&mut *db)
            .await?;
        sqlx::query("DELETE FROM tenants").execute(&mut *db).await?;
        Ok(())
    }
}

/// Reads the `tenants` projection.
#[derive(Clone)]
pub struct PgTenantDirectory {
    pool: PgPool,
}

impl PgTenantDirectory {
    /// Reads through `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// A row of `api_keys` that does not parse means the view is corrupt: an internal error.
#[derive(Debug, thiserror::Error)]
#[error("corrupt api_keys row: {0}")]
struct CorruptRow(&'static str);

fn key_view(row: &sqlx::postgres::PgRow) -> Result<ApiKeyView, StoreError> {
    let get_str = |c: &str| row.try_get::<String, _>(c).map_err(StoreError::new);
    Ok(ApiKeyView {
        id: ApiKeyId::parse(&get_str("key_id")?)
            .map_err(|_| StoreError::new(CorruptRow("key_id")))?,
        tenant_id: TenantId::parse(&get_str("tenant_id")?)
            .map_err(|_| StoreError::new(CorruptRow("tenant_id")))?,
        role: Role::parse(&get_str("role")?).ok_or(StoreError::new(CorruptRow("role")))?,
        label: get_str("label")?,
        created_at: row.try_get("created_at").map_err(StoreError::new)?,
        revoked_at: row
            .try_get::<Option<DateTime<Utc>>, _>("revoked_at")
            .map_err(StoreError::new)?,
    })
}

/// A key's columns, its revocation taken from `key_revocations` when the projection has not
/// applied it yet.
const KEY_COLUMNS: &str = "k.tenant_id, k.key_id, k.role, k.label, k.created_at, \
     coalesce(k.revoked_at, r.revoked_at) AS revoked_at";

/// `api_keys` with the revocations recorded beside it.
const KEYS: &str = "api_keys k LEFT JOIN key_revocations r USING (tenant_id, key_id)";

#[async_trait]
impl TenantDirectory for PgTenantDirectory {
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantView>, StoreError> {
        let row = sqlx::query(
            "SELECT name, policy, created_at, enforced_since, delivery FROM tenants \
             WHERE tenant_id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        let Some(row) = row else { return Ok(None) };
        let policy: serde_json::Value = row.try_get("policy").map_err(StoreError::new)?;
        Ok(Some(TenantView {
            id: id.clone(),
            name: row.try_get("name").map_err(StoreError::new)?,
            policy: serde_json::from_value::<Policy>(policy).map_err(StoreError::new)?,
            created_at: row.try_get("created_at").map_err(StoreError::new)?,
            enforced_since: row.try_get("enforced_since").map_err(StoreError::new)?,
            delivery: row
                .try_get::<Option<serde_json::Value>, _>("delivery")
                .map_err(StoreError::new)?
                .map(serde_json::from_value::<TenantDelivery>)
                .transpose()
                .map_err(StoreError::new)?,
        }))
    }

    async fn api_keys(&self, id: &TenantId) -> Result<Vec<ApiKeyView>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM {KEYS} WHERE k.tenant_id = $1 \
             ORDER BY k.created_at, k.key_id"
        ))
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::new)?;
        rows.iter().map(key_view).collect()
    }

    async fn key_by_hash(&self, hash: &KeyedHash) -> Result<Option<ApiKeyView>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM {KEYS} WHERE k.key_hash = $1"
        ))
        .bind(hash.as_hex())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        row.as_ref().map(key_view).transpose()
    }
}

//! Console sessions in PostgreSQL (`console_sessions`). A session is found only while its key
//! is neither revoked in `api_keys` nor in `key_revocations` (written with the revoking event),
//! so a revocation ends its sessions the moment it commits, on every instance.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use twofold_domain::console_session::{SessionTimes, ABSOLUTE, IDLE, MAX_PER_KEY};
use twofold_domain::tenant::KeyedHash;
use twofold_domain::{ApiKeyId, Role, TenantId};
use twofold_services::ports::{ConsoleSessionStore, StoredSession};
use twofold_services::{KeyPrincipal, StoreError};

/// Sessions in `console_sessions`.
#[derive(Clone)]
pub struct PgConsoleSessions {
    pool: PgPool,
}

impl PgConsoleSessions {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt console_sessions row: {0}")]
struct CorruptRow(&'static str);

/// A row of `console_sessions` (its `tenant_id`, `key_id`, `role` and times).
fn stored(row: &PgRow) -> Result<StoredSession, StoreError> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(StoreError::new);
    let key = KeyPrincipal {
        tenant_id: TenantId::parse(&text("tenant_id")?)
            .map_err(|_| StoreError::new(CorruptRow("tenant_id")))?,
        key_id: ApiKeyId::parse(&text("key_id")?)
            .map_err(|_| StoreError::new(CorruptRow("key_id")))?,
        role: Role::parse(&text("role")?).ok_or(StoreError::new(CorruptRow("role")))?,
    };
    Ok(StoredSession {
        key,
        times: SessionTimes {
            created_at: row.try_get("created_at").map_err(StoreError::new)?,
            last_seen_at: row.try_get("last_seen_at").map_err(StoreError::new)?,
        },
    })
}

#[async_trait]
impl ConsoleSessionStore for PgConsoleSessions {
    async fn create(
        &self,
        token_hash: &KeyedHash,
        key: &KeyPrincipal,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::new)?;
        sqlx::query(
            "INSERT INTO console_sessions \
               (token_hash, tenant_id, key_id, role, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(token_hash.as_hex())
        .bind(key.tenant_id.as_str())
        .bind(key.key_id.as_str())
        .bind(key.role.as_str())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        // The key's newest sessions stay, this one among them.
        sqlx::query(
            "DELETE FROM console_sessions WHERE token_hash IN ( \
               SELECT token_hash FROM console_sessions \
               WHERE tenant_id = $1 AND key_id = $2 \
               ORDER BY created_at DESC, (token_hash = $3) DESC \
               OFFSET $4)",
        )
        .bind(key.tenant_id.as_str())
        .bind(key.key_id.as_str())
        .bind(token_hash.as_hex())
        .bind(i64::try_from(MAX_PER_KEY).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        tx.commit().await.map_err(StoreError::new)?;
        Ok(())
    }

    async fn find(&self, token_hash: &KeyedHash) -> Result<Option<StoredSession>, StoreError> {
        let row = sqlx::query(
            "SELECT s.tenant_id, s.key_id, s.role, s.created_at, s.last_seen_at \
             FROM console_sessions s \
             JOIN api_keys k USING (tenant_id, key_id) \
             LEFT JOIN key_revocations r USING (tenant_id, key_id) \
             WHERE s.token_hash = $1 AND k.revoked_at IS NULL AND r.revoked_at IS NULL",
        )
        .bind(token_hash.as_hex())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        row.as_ref().map(stored).transpose()
    }

    async fn touch(&self, token_hash: &KeyedHash, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE console_sessions SET last_seen_at = greatest(last_seen_at, $2) \
             WHERE token_hash = $1",
        )
        .bind(token_hash.as_hex())
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(())
    }

    async fn delete(&self, token_hash: &KeyedHash) -> Result<Option<StoredSession>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM console_sessions WHERE token_hash = $1 \
             RETURNING tenant_id, key_id, role, created_at, last_seen_at",
        )
        .bind(token_hash.as_hex())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        row.as_ref().map(stored).transpose()
    }

    async fn prune(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM console_sessions WHERE last_seen_at <= $1 OR created_at <= $2",
        )
        .bind(now - IDLE)
        .bind(now - ABSOLUTE)
        .execute(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(done.rows_affected())
    }
}

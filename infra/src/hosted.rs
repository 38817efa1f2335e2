//! The hosted pages' links, sessions and results in PostgreSQL (`hosted_sessions`,
//! `hosted_results`). Each single use is one conditional `UPDATE ... RETURNING`, so two
//! browsers opening one link, or two backends redeeming one code, cannot both succeed. A session
//! is found only while the APP key that made its link is neither revoked in `api_keys` nor in
//! `key_revocations` (written with the revoking event), as console sessions are.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use twofold_domain::hosted::{Purpose, ReturnUrl};
use twofold_domain::secrets::SealedSecret;
use twofold_domain::tenant::KeyedHash;
use twofold_domain::{ApiKeyId, Locale, Method, Role, TenantId, UserId};
use twofold_services::ports::{HostedLink, HostedOutcome, HostedStore};
use twofold_services::{KeyPrincipal, StoreError};

/// Links, sessions and results in PostgreSQL.
#[derive(Clone)]
pub struct PgHostedStore {
    pool: PgPool,
}

impl PgHostedStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt hosted pages row: {0}")]
struct CorruptRow(&'static str);

fn corrupt(column: &'static str) -> StoreError {
    StoreError::new(CorruptRow(column))
}

fn text(row: &PgRow, column: &'static str) -> Result<String, StoreError> {
    row.try_get::<String, _>(column).map_err(StoreError::new)
}

fn purpose(row: &PgRow) -> Result<Purpose, StoreError> {
    Purpose::parse(&text(row, "purpose")?).ok_or_else(|| corrupt("purpose"))
}

fn link_of(row: &PgRow) -> Result<HostedLink, StoreError> {
    let locale: Option<String> = row.try_get("locale").map_err(StoreError::new)?;
    Ok(HostedLink {
        id: text(row, "link_id")?,
        key: KeyPrincipal {
            tenant_id: TenantId::parse(&text(row, "tenant_id")?)
                .map_err(|_| corrupt("tenant_id"))?,
            key_id: ApiKeyId::parse(&text(row, "key_id")?).map_err(|_| corrupt("key_id"))?,
            role: Role::App,
        },
        user_id: UserId::parse(&text(row, "user_id")?).map_err(|_| corrupt("user_id"))?,
        purpose: purpose(row)?,
        return_url: ReturnUrl::stored(text(row, "return_url")?),
        locale: locale
            .map(|l| Locale::parse(&l).map_err(|_| corrupt("locale")))
            .transpose()?,
        created_at: row.try_get("created_at").map_err(StoreError::new)?,
    })
}

/// The key of the link is still active: neither revoked in the read model nor by a revocation
/// written with the revoking event (the read model may lag it).
const KEY_ACTIVE: &str = "EXISTS (SELECT 1 FROM api_keys k \
     WHERE k.tenant_id = s.tenant_id AND k.key_id = s.key_id AND k.revoked_at IS NULL) \
   AND NOT EXISTS (SELECT 1 FROM key_revocations r \
     WHERE r.tenant_id = s.tenant_id AND r.key_id = s.key_id)";

const LINK_COLUMNS: &str = "s.link_id, s.tenant_id, s.key_id, s.user_id, s.purpose, \
     s.return_url, s.locale, s.created_at";

#[async_trait]
impl HostedStore for PgHostedStore {
    async fn create_link(
        &self,
        link_hash: &KeyedHash,
        link: &HostedLink,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::new)?;
        sqlx::query(
            "DELETE FROM hosted_sessions \
             WHERE tenant_id = $1 AND user_id = $2 AND opened_at IS NULL",
        )
        .bind(link.key.tenant_id.as_str())
        .bind(link.user_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        sqlx::query(
            "INSERT INTO hosted_sessions (link_hash, tenant_id, key_id, user_id, purpose, \
               return_url, locale, created_at, link_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(link_hash.as_hex())
        .bind(link.key.tenant_id.as_str())
        .bind(link.key.key_id.as_str())
        .bind(link.user_id.as_str())
        .bind(link.purpose.as_str())
        .bind(link.return_url.as_str())
        .bind(link.locale.as_ref().map(|l| l.as_str()))
        .bind(link.created_at)
        .bind(&link.id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        tx.commit().await.map_err(StoreError::new)?;
        Ok(())
    }

    async fn open(
        &self,
        link_hash: &KeyedHash,
        session_hash: &KeyedHash,
        now: DateTime<Utc>,
        created_after: DateTime<Utc>,
    ) -> Result<Option<HostedLink>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE hosted_sessions s SET session_hash = $2, opened_at = $3 \
             WHERE s.link_hash = $1 AND s.opened_at IS NULL AND s.created_at > $4 \
               AND {KEY_ACTIVE} \
             RETURNING {LINK_COLUMNS}"
        ))
        .bind(link_hash.as_hex())
        .bind(session_hash.as_hex())
        .bind(now)
        .bind(created_after)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        row.as_ref().map(link_of).transpose()
    }

    async fn find(
        &self,
        session_hash: &KeyedHash,
        created_after: DateTime<Utc>,
    ) -> Result<Option<HostedLink>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {LINK_COLUMNS} FROM hosted_sessions s \
             WHERE s.session_hash = $1 AND s.finished_at IS NULL AND s.created_at > $2 \
               AND {KEY_ACTIVE}"
        ))
        .bind(session_hash.as_hex())
        .bind(created_after)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        row.as_ref().map(link_of).transpose()
    }

    async fn finish(
        &self,
        session_hash: &KeyedHash,
        code_hash: &KeyedHash,
        outcome: &HostedOutcome,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::new)?;
        let ended = sqlx::query(
            "UPDATE hosted_sessions SET finished_at = $2 \
             WHERE session_hash = $1 AND finished_at IS NULL",
        )
        .bind(session_hash.as_hex())
        .bind(outcome.created_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        if ended.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO hosted_results \
               (code_hash, tenant_id, user_id, purpose, completed, method, created_at, link_id, \
                device_token) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(code_hash.as_hex())
        .bind(outcome.tenant_id.as_str())
        .bind(outcome.user_id.as_str())
        .bind(outcome.purpose.as_str())
        .bind(outcome.completed)
        .bind(outcome.method.map(Method::as_str))
        .bind(outcome.created_at)
        .bind(&outcome.link_id)
        .bind(outcome.device_token.as_ref().map(SealedSecret::as_encoded))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::new)?;
        tx.commit().await.map_err(StoreError::new)?;
        Ok(true)
    }

    async fn redeem(
        &self,
        code_hash: &KeyedHash,
        tenant: &TenantId,
        link_id: &str,
        now: DateTime<Utc>,
        created_after: DateTime<Utc>,
    ) -> Result<Option<HostedOutcome>, StoreError> {
        // The sealed token leaves the table with its first redemption.
        let row = sqlx::query(
            "UPDATE hosted_results r SET redeemed_at = $3, device_token = NULL \
             FROM (SELECT code_hash, device_token FROM hosted_results WHERE code_hash = $1 \
                   FOR UPDATE) old \
             WHERE r.code_hash = old.code_hash AND r.tenant_id = $2 AND r.redeemed_at IS NULL \
               AND r.created_at > $4 AND r.link_id = $5 \
             RETURNING r.link_id, r.tenant_id, r.user_id, r.purpose, r.completed, r.method, \
               r.created_at, old.device_token",
        )
        .bind(code_hash.as_hex())
        .bind(tenant.as_str())
        .bind(now)
        .bind(created_after)
        .bind(link_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(HostedOutcome {
            link_id: text(&row, "link_id")?,
            tenant_id: TenantId::parse(&text(&row, "tenant_id")?)
                .map_err(|_| corrupt("tenant_id"))?,
            user_id: UserId::parse(&text(&row, "user_id")?).map_err(|_| corrupt("user_id"))?,
            purpose: purpose(&row)?,
            completed: row.try_get("completed").map_err(StoreError::new)?,
            method: row
                .try_get::<Option<String>, _>("method")
                .map_err(StoreError::new)?
                .map(|m| Method::parse(&m).ok_or_else(|| corrupt("method")))
                .transpose()?,
            device_token: row
                .try_get::<Option<String>, _>("device_token")
                .map_err(StoreError::new)?
                .map(SealedSecret::from_encoded),
            created_at: row.try_get("created_at").map_err(StoreError::new)?,
        }))
    }

    async fn unopened_links(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM hosted_sessions \
             WHERE tenant_id = $1 AND opened_at IS NULL AND created_at > $2",
        )
        .bind(tenant.as_str())
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::new)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let sessions = sqlx::query("DELETE FROM hosted_sessions WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(StoreError::new)?;
        let results = sqlx::query("DELETE FROM hosted_results WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(StoreError::new)?;
        Ok(sessions.rows_affected() + results.rows_affected())
    }
}

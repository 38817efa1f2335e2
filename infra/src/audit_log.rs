//! The audit log read from PostgreSQL: one tenant's events in commit-safe order, only below
//! the commit horizon, served by the `(tenant_id, tx_id, global_position)` index.

use async_trait::async_trait;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row};
use twofold_domain::TenantId;
use twofold_services::ports::{AuditLog, LogFilter, LogOrder, LogPosition, LoggedEvent};
use twofold_services::StoreError;

/// Reads events for auditors.
#[derive(Clone)]
pub struct PgAuditLog {
    pool: PgPool,
}

impl PgAuditLog {
    /// Over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// The statement for one filter shape. Only the shape is spliced in (which conditions apply);
/// every value is a bound parameter. One statement per shape keeps each plan index-friendly,
/// where a single statement with `$n IS NULL OR ...` branches would not be.
fn statement(filter: &LogFilter, order: LogOrder, cursor: bool) -> String {
    let mut sql = String::from(
        "SELECT aggregate_type, aggregate_id, event_type, payload, metadata, \
         tx_id::text::bigint AS tx, global_position, recorded_at FROM events WHERE tenant_id = $1",
    );
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    sql += &format!(" AND tx_id < ${}::text::xid8", next());
    if filter.user.is_some() {
        sql += &format!(
            " AND aggregate_type = 'user' AND aggregate_id = ${}",
            next()
        );
    }
    if !filter.event_types.is_empty() {
        sql += &format!(" AND event_type = ANY(${})", next());
    }
    if filter.from.is_some() {
        sql += &format!(" AND recorded_at >= ${}", next());
    }
    if filter.to.is_some() {
        sql += &format!(" AND recorded_at < ${}", next());
    }
    let (cmp, dir) = match order {
        LogOrder::OldestFirst => (">", "ASC"),
        LogOrder::NewestFirst => ("<", "DESC"),
    };
    if cursor {
        let (a, b) = (next(), next());
        sql += &format!(" AND (tx_id, global_position) {cmp} (${a}::text::xid8, ${b})");
    }
    sql += &format!(
        " ORDER BY tx_id {dir}, global_position {dir} LIMIT ${}",
        next()
    );
    sql
}

fn bind_all<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    tenant: &TenantId,
    filter: &LogFilter,
    cursor: Option<LogPosition>,
    below: i64,
    limit: u32,
) -> Query<'q, Postgres, PgArguments> {
    query = query
        .bind(tenant.as_str().to_owned())
        .bind(below.to_string());
    if let Some(user) = &filter.user {
        query = query.bind(tenant.user_aggregate_id(user));
    }
    if !filter.event_types.is_empty() {
        query = query.bind(filter.event_types.clone());
    }
    if let Some(from) = filter.from {
        query = query.bind(from);
    }
    if let Some(to) = filter.to {
        query = query.bind(to);
    }
    if let Some(c) = cursor {
        query = query.bind(c.tx.to_string()).bind(c.position);
    }
    query.bind(i64::from(limit))
}

#[async_trait]
impl AuditLog for PgAuditLog {
    async fn horizon(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::new)?;
        crate::pg::commit_horizon(&mut conn)
            .await
            .map_err(StoreError::new)
    }

    async fn read(
        &self,
        tenant: &TenantId,
        filter: &LogFilter,
        order: LogOrder,
        cursor: Option<LogPosition>,
        below: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        // The horizon in its own statement first, see `crate::pg::commit_horizon`.
        let below = match below {
            Some(below) => below,
            None => self.horizon().await?,
        };
        let sql = statement(filter, order, cursor.is_some());
        let rows = bind_all(sqlx::query(&sql), tenant, filter, cursor, below, limit)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::new)?;
        rows.iter()
            .map(|row| {
                Ok(LoggedEvent {
                    at: LogPosition {
                        tx: row.try_get("tx")?,
                        position: row.try_get("global_position")?,
                    },
                    aggregate_type: row.try_get("aggregate_type")?,
                    aggregate_id: row.try_get("aggregate_id")?,
                    event_type: row.try_get("event_type")?,
                    payload: row.try_get("payload")?,
                    metadata: row.try_get("metadata")?,
                    recorded_at: row.try_get("recorded_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_in_bind_order() {
        let filter = LogFilter {
            user: Some(twofold_domain::UserId::parse("u").unwrap()),
            event_types: vec!["CodeSent".into()],
            from: Some(chrono::Utc::now()),
            to: Some(chrono::Utc::now()),
        };
        let sql = statement(&filter, LogOrder::NewestFirst, true);
        for n in 1..=9 {
            assert!(sql.contains(&format!("${n}")), "{sql}");
        }
        assert!(!sql.contains("$10"), "{sql}");
        assert!(
            sql.contains("(tx_id, global_position) < ($7::text::xid8, $8)"),
            "{sql}"
        );
        assert!(sql.ends_with("DESC LIMIT $9"), "{sql}");
        let bare = statement(&LogFilter::default(), LogOrder::OldestFirst, false);
        assert!(bare.ends_with("ASC LIMIT $3"), "{bare}");
    }
}

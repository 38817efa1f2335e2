//! How a command waits for the read models it must see (read-your-writes), and how a live
//! reader learns that events were applied.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::Row;
use tokio::sync::watch;
use twofold_services::ports::{CommitSignal, ProcessorProgress, ReadModelSync};
use twofold_services::StoreError;

use super::EventProcessor;

#[async_trait]
impl ProcessorProgress for EventProcessor {
    async fn progressed(&self) {
        self.progressed.notified().await;
    }
}

impl CommitSignal for EventProcessor {
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }
}

#[async_trait]
impl ReadModelSync for EventProcessor {
    async fn settle(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: usize,
    ) -> Result<(), StoreError> {
        // The command just committed: whoever waits or not, the projections have work.
        self.nudge();
        if !self
            .runners
            .iter()
            .any(|r| r.projection.reads(aggregate_type))
        {
            return Ok(());
        }
        let target = sqlx::query(
            "SELECT tx_id::text AS tx, global_position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::new)?;
        let Some(target) = target else {
            return Ok(());
        };
        let names: Vec<&'static str> = self
            .runners
            .iter()
            .filter(|r| r.projection.reads(aggregate_type))
            .map(|r| r.projection.name())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let tx: String = target.try_get("tx").map_err(StoreError::new)?;
        let position: i64 = target.try_get("global_position").map_err(StoreError::new)?;
        let deadline = Instant::now() + self.settle_timeout;
        loop {
            self.catch_up().await.map_err(StoreError::new)?;
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM projection_checkpoints WHERE consumer = ANY($1) \
                 AND (last_tx, last_position) < ($2::xid8, $3)",
            )
            .bind(&names)
            .bind(&tx)
            .bind(position)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::new)?;
            if behind == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    aggregate_type,
                    sequence,
                    "read model still behind after the settle timeout; answering anyway"
                );
                return Ok(());
            }
            // An older transaction is still open; wait for progress or a short tick.
            let _ =
                tokio::time::timeout(Duration::from_millis(5), self.progressed.notified()).await;
        }
    }

    async fn catch_up_all(&self) -> Result<(), StoreError> {
        // Every transaction visible in this snapshot had committed before the call.
        let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::new)?;
        let names = self.projection_names();
        let deadline = Instant::now() + self.settle_timeout;
        loop {
            self.catch_up().await.map_err(StoreError::new)?;
            let behind: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM projection_checkpoints c \
                   JOIN LATERAL (SELECT 1 FROM events e \
                     WHERE (e.tx_id, e.global_position) > (c.last_tx, c.last_position) \
                       AND pg_visible_in_snapshot(e.tx_id, $2::pg_snapshot) LIMIT 1) pending \
                   ON true \
                 WHERE c.consumer = ANY($1))",
            )
            .bind(&names)
            .bind(&snapshot)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::new)?;
            if !behind {
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    "read models still behind after the settle timeout; answering anyway"
                );
                return Ok(());
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(5), self.progressed.notified()).await;
        }
    }
}

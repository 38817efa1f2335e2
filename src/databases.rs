//! The two databases: the events (and everything derived from them), and the data keys.
//!
//! By default they are one. A separate key database (`TWOFOLD_KEY_DATABASE_URL`) is what makes
//! an erasure reach the backups of the event database: those backups then hold seals but no
//! key, and a restore is opened with the live key database, where an erased user's key is gone
//! (docs/operations.md, "Erasure and backups").

use anyhow::Context;
use sqlx::PgPool;
use twofold_infra::pg;

/// The pools the service uses; `keys` is `events` when there is no separate key database.
#[derive(Clone, Debug)]
pub struct Databases {
    pub events: PgPool,
    pub keys: PgPool,
    /// Whether `keys` is a database of its own.
    pub separate_keys: bool,
}

/// Connections a separate key database needs: a key is read once per user and cache period.
const KEY_POOL_SIZE: u32 = 4;

impl Databases {
    /// Connects to and migrates both. With a separate key database, refuses to start while the
    /// event database still holds data keys (its backups would hold them too), or while the
    /// key database holds none but the event database has sealed for tenants (a key database
    /// left empty by mistake would make new keys and leave every earlier seal unreadable).
    pub async fn connect(
        events_url: &str,
        keys_url: Option<&str>,
        max_connections: u32,
    ) -> anyhow::Result<Self> {
        let events = pg::connect(events_url, max_connections)
            .await
            .context("connecting to PostgreSQL (check DATABASE_URL)")?;
        pg::migrate(&events).await.context("running migrations")?;
        let Some(keys_url) = keys_url.filter(|k| *k != events_url) else {
            return Ok(Self {
                keys: events.clone(),
                events,
                separate_keys: false,
            });
        };
        let keys = pg::connect(keys_url, KEY_POOL_SIZE)
            .await
            .context("connecting to the key database (check TWOFOLD_KEY_DATABASE_URL)")?;
        // The whole schema: only the two key tables are used there, but one migration history
        // keeps both databases on the same version.
        pg::migrate(&keys)
            .await
            .context("running migrations on the key database")?;
        let left_behind = key_rows(&events).await?;
        if left_behind > 0 {
            anyhow::bail!(
                "TWOFOLD_KEY_DATABASE_URL is set, but the event database still holds {left_behind} \
                 data keys: move them to the key database and delete them here \
                 (docs/operations.md, \"A separate key database\")"
            );
        }
        let sealed_before: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_type = 'user' \
             AND event_type IN ('TotpEnrollmentStarted', 'EmailFactorAdded', 'PhoneFactorAdded'))",
        )
        .fetch_one(&events)
        .await?;
        if sealed_before && key_rows(&keys).await? == 0 {
            anyhow::bail!(
                "the key database (TWOFOLD_KEY_DATABASE_URL) holds no data keys, but the event \
                 database has secrets sealed under some: is it the right database? \
                 (docs/operations.md, \"A separate key database\")"
            );
        }
        Ok(Self {
            events,
            keys,
            separate_keys: true,
        })
    }
}

async fn key_rows(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM data_keys) + (SELECT count(*) FROM tenant_data_keys)",
    )
    .fetch_one(pool)
    .await?)
}

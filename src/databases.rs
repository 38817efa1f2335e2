//! The two databases: the events (and everything derived from them), and the data keys.
//!
//! By default they are one. A separate key database (`TWOFOLD_KEY_DATABASE_URL`) is what makes
//! an erasure reach the backups of the event database: those backups then hold seals but no
//! key, and a restore is opened with the live key database, where an erased user's key is gone
//! (docs/operations.md, "Erasure and backups").

use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use twofold_infra::config::Secrets;
use twofold_infra::crypto::seal::{MasterKeys, PgSealer};
use twofold_infra::pg;
use twofold_services::ports::Sealer;

/// The pools the service uses; `keys` is `events` when there is no separate key database.
#[derive(Clone, Debug)]
pub struct Databases {
    pub events: PgPool,
    pub keys: PgPool,
    /// Whether `keys` is a database of its own.
    pub separate_keys: bool,
    /// Whether it is also on another server, so no backup of the event database's server holds
    /// the keys.
    pub keys_apart: bool,
}

/// Connections a separate key database needs: a key is read once per user and cache period.
const KEY_POOL_SIZE: u32 = 4;

impl Databases {
    /// Connects to and migrates both. Refuses to start:
    /// - without a key database when this event database was once started with one (a process
    ///   that forgot the variable would make keys here, and erase or rotate nothing there);
    /// - with one that is the event database itself under another URL;
    /// - while the event database still holds data keys (its backups would hold them too);
    /// - while the key database holds none but secrets are sealed (a wrong database would make
    ///   new keys and leave every earlier seal unreadable).
    pub async fn connect(
        events_url: &str,
        keys_url: Option<&str>,
        max_connections: u32,
    ) -> anyhow::Result<Self> {
        let events = pg::connect(events_url, max_connections)
            .await
            .context("connecting to PostgreSQL (check DATABASE_URL)")?;
        pg::migrate(&events).await.context("running migrations")?;
        let recorded_separate: Option<bool> = sqlx::query_scalar("SELECT separate FROM key_store")
            .fetch_optional(&events)
            .await?;
        let Some(keys_url) = keys_url else {
            if recorded_separate == Some(true) {
                anyhow::bail!(
                    "this event database keeps its data keys in a separate key database: set \
                     TWOFOLD_KEY_DATABASE_URL (docs/operations.md, \"Erasure and backups\")"
                );
            }
            return Ok(Self {
                keys: events.clone(),
                events,
                separate_keys: false,
                keys_apart: false,
            });
        };
        let keys = pg::connect(keys_url, KEY_POOL_SIZE)
            .await
            .context("connecting to the key database (check TWOFOLD_KEY_DATABASE_URL)")?;
        if identity(&events, events_url).await == identity(&keys, keys_url).await {
            anyhow::bail!(
                "TWOFOLD_KEY_DATABASE_URL names the event database itself: leave it unset, or \
                 name another database"
            );
        }
        // The whole schema: only the two key tables are used there, but one migration history
        // keeps both databases on the same version.
        pg::migrate(&keys)
            .await
            .context("running migrations on the key database")?;
        // Recorded first: from now on no process writes a key into the event database (a
        // trigger refuses it), so the checks below cannot be raced by one started without the
        // variable. Going back to one database means deleting this row (operations.md).
        sqlx::query(
            "INSERT INTO key_store (separate) VALUES (true) \
             ON CONFLICT (only_row) DO UPDATE SET separate = true",
        )
        .execute(&events)
        .await?;
        let same_cluster =
            identity(&events, events_url).await.0 == identity(&keys, keys_url).await.0;
        if same_cluster {
            tracing::warn!(
                "the key database is on the same PostgreSQL server as the event database: a \
                 backup of the whole server (pg_basebackup, snapshots) holds both, and an erasure \
                 does not reach it"
            );
        }
        let left_behind = key_rows(&events).await?;
        if left_behind > 0 {
            anyhow::bail!(
                "TWOFOLD_KEY_DATABASE_URL is set, but the event database holds {left_behind} data \
                 keys. When moving to a key database, copy them there first, then delete them \
                 here. After restoring an old backup of the event database, only delete them \
                 here: copying them would bring back the keys of users erased since \
                 (docs/operations.md, \"Erasure and backups\")"
            );
        }
        let sealed_before: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE event_type IN ( \
               'TotpEnrollmentStarted', 'EmailFactorAdded', 'PhoneFactorAdded', \
               'WebAuthnRegistrationStarted', 'WebAuthnCredentialRegistered', \
               'DeliverySettingsChanged'))",
        )
        .fetch_one(&events)
        .await?;
        if sealed_before && key_rows(&keys).await? == 0 {
            anyhow::bail!(
                "the key database (TWOFOLD_KEY_DATABASE_URL) holds no data keys, but the event \
                 database has secrets sealed under some: is it the right database? \
                 (docs/operations.md, \"Erasure and backups\")"
            );
        }
        Ok(Self {
            events,
            keys,
            separate_keys: true,
            keys_apart: !same_cluster,
        })
    }
}

impl Databases {
    /// The sealer over the key database, with the master keys; says at start which master key
    /// wraps new keys, whether a previous one is still accepted, and where the keys live.
    pub fn sealer(&self, secrets: &Secrets) -> Arc<dyn Sealer> {
        let master = MasterKeys::new(
            secrets.master_key.clone(),
            secrets.previous_master_key.clone(),
        );
        tracing::info!(
            master_key_id = master.current_id(),
            "data keys are wrapped under this master key"
        );
        if master.has_previous() {
            tracing::warn!(
                "TWOFOLD_MASTER_KEY_PREVIOUS is set: data keys still wrapped under it open; run \
                 `twofold keys rotate`, then remove it"
            );
        }
        if !self.separate_keys {
            tracing::info!(
                "data keys live in the event database: an erasure does not reach its backups \
                 (TWOFOLD_KEY_DATABASE_URL, docs/operations.md)"
            );
        }
        Arc::new(
            PgSealer::with_master_keys(self.keys.clone(), master).with_keys_apart(self.keys_apart),
        )
    }
}

/// Which server and database a pool reaches, whatever its URL says; the URL itself where the
/// server will not tell (reading `pg_control_system()` may need a grant).
async fn identity(pool: &PgPool, url: &str) -> (String, String) {
    sqlx::query_as(
        "SELECT (SELECT system_identifier::text FROM pg_control_system()), current_database()::text",
    )
    .fetch_one(pool)
    .await
    .unwrap_or_else(|_| (url.to_owned(), String::new()))
}

async fn key_rows(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM data_keys) + (SELECT count(*) FROM tenant_data_keys)",
    )
    .fetch_one(pool)
    .await?)
}

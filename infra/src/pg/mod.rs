//! PostgreSQL: connection pool and migrations.

pub mod direct;
mod horizon;

pub use horizon::commit_horizon;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Opens a pool and its first connection, so an unreachable or misconfigured database stops
/// start-up with a clear error instead of failing the first request.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // No `SELECT 1` round trip before every query: a broken connection fails its query
        // (one request answered with an internal error) and is then replaced. The ping cost
        // one extra round trip per query, about as much as the query itself. (sqlx still
        // checks a connection as it goes back to the pool, off the request's path.)
        .test_before_acquire(false)
        .connect_with(options)
        .await
}

/// Brings the schema up to date.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Creates `database` on the server behind `admin_url` unless it exists.
pub async fn ensure_database(admin_url: &str, database: &str) -> Result<(), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&pool)
            .await?;
    if !exists {
        let quoted = database.replace('"', "\"\"");
        sqlx::query(&format!("CREATE DATABASE \"{quoted}\""))
            .execute(&pool)
            .await?;
    }
    pool.close().await;
    Ok(())
}

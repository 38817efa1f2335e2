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
    twofold_services::recognise_unavailable(is_unavailable);
    twofold_services::recognise_refused(crate::group_commit::refused_at_lock_wait);
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

/// Whether `e` is PostgreSQL ending a lock wait at the connection's `lock_timeout` (55P03).
pub fn is_lock_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<sqlx::Error>()
        .and_then(sqlx::Error::as_database_error)
        .and_then(|db| db.code())
        .is_some_and(|code| code == "55P03")
}

/// Whether `e` is a driver error that says the database could not be reached or used: no
/// connection in time, a connection cut (network, restart, `pg_terminate_backend`), or the
/// server refusing connections (SQLSTATE class 08, 53300 too many connections, 55000 a database
/// not accepting connections, 57P01 to 57P03 shutting down, crashed or starting up), or a lock
/// that a statement could not take within its connection's `lock_timeout` (55P03: a stalled
/// transaction or a migration holds it; the statement wrote nothing).
pub fn is_unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    match e.downcast_ref::<sqlx::Error>() {
        Some(
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed,
        ) => true,
        Some(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "53300" | "55000" | "55P03" | "57P01" | "57P02" | "57P03"
                )
        }),
        _ => e.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::TimedOut
            )
        }),
    }
}

//! The physical limit the verify rate is compared with: how many single-row INSERT transactions
//! per second the same PostgreSQL commits at the same concurrency. Measured with `pgbench` (a
//! one-statement custom script) when it is installed beside the server, otherwise with an
//! equivalent client of our own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use sqlx::PgPool;

/// How the limit was measured, and the result.
pub struct Limit {
    /// Committed single-INSERT transactions per second.
    pub commits_per_second: f64,
    /// `pgbench` or `built-in client`.
    pub tool: &'static str,
}

const SCRIPT: &str = "INSERT INTO bench_limit (v) VALUES (1);\n";

/// `pgbench` from `PATH` or the newest `/usr/lib/postgresql/*/bin`.
fn find_pgbench() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("pgbench"))
            .find(|p| p.is_file())
    });
    from_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin/pgbench"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

/// Measures the commit rate of one-row INSERT transactions with `clients` connections for
/// `duration`, on the database behind `pool` (`host`, `port`, `database`, user `postgres`).
pub async fn measure(
    pool: &PgPool,
    host: &str,
    port: u16,
    database: &str,
    clients: usize,
    duration: Duration,
    work_dir: &Path,
) -> anyhow::Result<Limit> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_limit \
         (id bigserial PRIMARY KEY, v int NOT NULL, at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(pool)
    .await?;
    let result = match find_pgbench() {
        Some(pgbench) => {
            with_pgbench(&pgbench, host, port, database, clients, duration, work_dir).await
        }
        None => with_own_client(pool, clients, duration).await,
    };
    sqlx::query("DROP TABLE IF EXISTS bench_limit")
        .execute(pool)
        .await?;
    result
}

async fn with_pgbench(
    pgbench: &Path,
    host: &str,
    port: u16,
    database: &str,
    clients: usize,
    duration: Duration,
    work_dir: &Path,
) -> anyhow::Result<Limit> {
    let script = work_dir.join("insert.sql");
    std::fs::write(&script, SCRIPT)?;
    let output = tokio::process::Command::new(pgbench)
        .args(["-n", "-M", "prepared", "-h", host, "-U", "postgres"])
        .arg("-p")
        .arg(port.to_string())
        .arg("-c")
        .arg(clients.to_string())
        .arg("-j")
        .arg(clients.clamp(1, 2).to_string())
        .arg("-T")
        .arg(duration.as_secs().max(1).to_string())
        .arg("-f")
        .arg(&script)
        .arg(database)
        .output()
        .await
        .context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(anyhow!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let tps = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no tps in pgbench's output: {stdout}"))?;
    Ok(Limit {
        commits_per_second: tps,
        tool: "pgbench",
    })
}

async fn with_own_client(
    pool: &PgPool,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Limit> {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    if sqlx::query("INSERT INTO bench_limit (v) VALUES (1)")
                        .execute(&pool)
                        .await
                        .is_ok()
                    {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    Ok(Limit {
        commits_per_second: total as f64 / started.elapsed().as_secs_f64(),
        tool: "built-in client",
    })
}

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

/// The database both measurements run against, and a folder for their scripts.
pub struct Database<'a> {
    /// A pool on it, for set-up and the built-in client.
    pub pool: &'a PgPool,
    /// Where `pgbench` reaches it (user `postgres`): a host name or a socket folder.
    pub host: &'a str,
    pub port: u16,
    /// The password of user `postgres` (the private cluster asks every connection for it).
    pub password: &'a str,
    pub name: &'a str,
    /// Where the scripts are written.
    pub work_dir: &'a Path,
}

impl Database<'_> {
    fn target<'a>(&'a self, pgbench: &'a Path) -> Target<'a> {
        Target {
            pgbench,
            host: self.host,
            port: self.port,
            password: self.password,
            database: self.name,
        }
    }
}

/// Measures the commit rate of one-row INSERT transactions with `clients` connections for
/// `duration`.
pub async fn measure(
    db: &Database<'_>,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Limit> {
    let pool = db.pool;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_limit \
         (id bigserial PRIMARY KEY, v int NOT NULL, at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(pool)
    .await?;
    let result = match find_pgbench() {
        Some(pgbench) => with_pgbench(&db.target(&pgbench), db.work_dir, clients, duration).await,
        None => with_own_client(pool, clients, duration).await,
    };
    sqlx::query("DROP TABLE IF EXISTS bench_limit")
        .execute(pool)
        .await?;
    result
}

async fn with_pgbench(
    target: &Target<'_>,
    work_dir: &Path,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Limit> {
    let script = work_dir.join("insert.sql");
    std::fs::write(&script, SCRIPT)?;
    Ok(Limit {
        commits_per_second: target.tps(&script, &[], clients, duration).await?,
        tool: "pgbench",
    })
}

/// Where and with what `pgbench` runs.
struct Target<'a> {
    pgbench: &'a Path,
    host: &'a str,
    port: u16,
    password: &'a str,
    database: &'a str,
}

impl Target<'_> {
    /// Transactions per second of `script` (prepared statements, `-D` variables `vars`).
    async fn tps(
        &self,
        script: &Path,
        vars: &[(&str, &str)],
        clients: usize,
        duration: Duration,
    ) -> anyhow::Result<f64> {
        let mut command = tokio::process::Command::new(self.pgbench);
        command
            .env("PGPASSWORD", self.password)
            .args(["-n", "-M", "prepared", "-h", self.host, "-U", "postgres"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(clients.to_string())
            .arg("-j")
            .arg(clients.clamp(1, 2).to_string())
            .arg("-T")
            .arg(duration.as_secs().max(1).to_string());
        for (name, value) in vars {
            command.arg("-D").arg(format!("{name}={value}"));
        }
        let output = command
            .arg("-f")
            .arg(script)
            .arg(self.database)
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
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("tps = "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .ok_or_else(|| anyhow!("no tps in pgbench's output: {stdout}"))
    }
}

/// What the ceiling's script reads and writes: the users it loads and a real event to write.
pub struct CeilingInput<'a> {
    /// The aggregate id of user `{base}{i}` for `i` in `0..users`.
    pub base: &'a str,
    /// How many users the script picks from.
    pub users: usize,
    /// The user aggregate's type and snapshot layout version, as the service loads them.
    pub aggregate_type: &'a str,
    /// See `aggregate_type`.
    pub state_version: &'a str,
}

/// The ceiling: how many verifies per second PostgreSQL sustains when it runs only a verify's
/// own statements, driven by `pgbench` with no HTTP, no GraphQL and no service in between.
/// Per verify: the load statement the service runs (`LOAD_SQL`) for a random enrolled user,
/// then postgres-es's INSERT of one event (a copy of a real `CodeVerified` row) into a copy of
/// `events` with the same indexes. Each of the `clients` connections commits `clients` verifies
/// at a time: with that many clients no group commit can share a commit among more. No service
/// that runs these two statements per verify can beat it on this machine, so it tells how much
/// of the gap to the limit is the service's and how much its statements'.
/// `None` when `pgbench` is not installed.
pub async fn ceiling(
    db: &Database<'_>,
    clients: usize,
    duration: Duration,
    input: &CeilingInput<'_>,
) -> anyhow::Result<Option<f64>> {
    let Some(pgbench) = find_pgbench() else {
        return Ok(None);
    };
    let pool = db.pool;
    let sample: (String, String, String) = sqlx::query_as(
        "SELECT event_version, payload::text, metadata::text FROM events \
         WHERE aggregate_type = $1 AND event_type = 'CodeVerified' \
         ORDER BY global_position DESC LIMIT 1",
    )
    .bind(input.aggregate_type)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| anyhow!("the ceiling needs a CodeVerified event to copy, and there is none"))?;
    for statement in [
        "DROP TABLE IF EXISTS bench_ceiling",
        "CREATE TABLE bench_ceiling (LIKE events INCLUDING DEFAULTS INCLUDING GENERATED \
         INCLUDING CONSTRAINTS INCLUDING INDEXES)",
        "CREATE SEQUENCE IF NOT EXISTS bench_ceiling_position",
        "ALTER TABLE bench_ceiling ALTER COLUMN global_position \
         SET DEFAULT nextval('bench_ceiling_position')",
    ] {
        sqlx::query(statement).execute(pool).await?;
    }
    let script = db.work_dir.join("ceiling.sql");
    std::fs::write(&script, ceiling_script(input.users, clients))?;
    let target = db.target(&pgbench);
    let vars = [
        ("atype", input.aggregate_type),
        ("base", input.base),
        ("sv", input.state_version),
        ("ev", sample.0.as_str()),
        ("payload", sample.1.as_str()),
        ("meta", sample.2.as_str()),
    ];
    let result = target.tps(&script, &vars, clients, duration).await;
    for statement in [
        "DROP TABLE IF EXISTS bench_ceiling",
        "DROP SEQUENCE IF EXISTS bench_ceiling_position",
    ] {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(Some(result? * clients as f64))
}

/// The ceiling's pgbench script: `group` loads, then one transaction with as many INSERTs
/// (postgres-es writes one statement per event). Every value is a `-D` variable, sent as a
/// bound parameter, so nothing in a payload is read as pgbench syntax.
fn ceiling_script(users: usize, group: usize) -> String {
    let mut script = String::new();
    for i in 0..group {
        script.push_str(&format!(
            "\\set u{i} random(0, {})\n\\set s{i} random(1000000000, 9000000000000000000)\n",
            users.max(1) - 1
        ));
    }
    for i in 0..group {
        let load = twofold_infra::event_store::LOAD_SQL
            .replace("$1", ":atype")
            .replace("$2", &format!("(:base::text || :u{i})"))
            .replace("$3", ":sv");
        script.push_str(&load);
        script.push_str(";\n");
    }
    script.push_str("BEGIN;\n");
    for i in 0..group {
        script.push_str(&format!(
            "INSERT INTO bench_ceiling (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) VALUES (:atype, (:base::text || :u{i}), :s{i}, \
             'CodeVerified', :ev, :payload::jsonb, :meta::jsonb);\n"
        ));
    }
    script.push_str("COMMIT;\n");
    script
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_script_runs_the_services_load_and_insert_for_each_verify_of_a_commit() {
        let script = ceiling_script(500, 3);
        // pgbench runs one statement per `;`: three loads, then one transaction of three inserts.
        let statements: Vec<&str> = script
            .split(";\n")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let loads = statements
            .iter()
            .filter(|s| s.contains("FROM aggregate_snapshots"))
            .count();
        let inserts = statements
            .iter()
            .filter(|s| s.starts_with("INSERT INTO bench_ceiling"))
            .count();
        assert_eq!((loads, inserts), (3, 3), "{script}");
        let begin = statements.iter().position(|s| s.ends_with("BEGIN"));
        let first_insert = statements
            .iter()
            .position(|s| s.starts_with("INSERT INTO bench_ceiling"));
        assert!(
            begin < first_insert,
            "the inserts share one transaction: {script}"
        );
        assert_eq!(statements.last(), Some(&"COMMIT"));
        // Users are drawn from the enrolled range, each verify its own.
        assert!(script.contains("\\set u2 random(0, 499)"), "{script}");
        assert!(script.contains("(:base::text || :u1)"), "{script}");
        // Every placeholder of the service's statement became a pgbench variable.
        assert!(!script.contains('$'), "{script}");
    }
}

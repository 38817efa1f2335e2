//! `twofold bench`: how many sign-ins per second the service verifies, how fast, against the
//! physical limit of the same machine measured in the same run (DESIGN.md section 6).
//!
//! One run: a private PostgreSQL (durable settings, as `serve` uses by default); the service as
//! a child process (`twofold serve`); the limit (single-row INSERT commits/s at the same
//! concurrency); enrollment; the verify load over HTTP; correctness checks from the event log;
//! the email/SMS delivery path against local sinks; idle memory. The load generator runs in
//! this process and shares the cores with the service and PostgreSQL; everyone's CPU time is
//! reported.

pub(crate) mod api;
pub(crate) mod checks;
mod delivery;
mod enrollment;
mod history;
mod limit;
pub(crate) mod load;
mod procfs;
mod report;
pub(crate) mod service;
pub(crate) mod sinks;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::json;
use twofold_infra::crypto::OsEntropy;
use twofold_infra::pg;
use twofold_pg_local::{LocalPgOptions, LocalPostgres};
use twofold_services::ports::Entropy;

/// Options of `twofold bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchOptions {
    /// Concurrent clients of the verify load and of the limit measurement.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds of verify load (and of the limit measurement).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Share of verify requests with a wrong code (0.0 to 1.0).
    #[arg(long, default_value_t = 0.1)]
    pub wrong_share: f64,
    /// Users to enroll; by default estimated from the enrollment rate so that no valid code is
    /// ever needed twice.
    #[arg(long)]
    pub users: Option<usize>,
    /// Users whose email and SMS sign-in codes are timed through the delivery path.
    #[arg(long, default_value_t = 200)]
    pub delivery_users: usize,
    /// Also measure verify cost against history length: users with 0, 1,000 and 10,000 past
    /// sign-ins (the smoke run always does, with 0, 10 and 100).
    #[arg(long)]
    pub history: bool,
    /// Users per history length in the history mode.
    #[arg(long, default_value_t = 64)]
    pub history_users: usize,
    /// The service's `TWOFOLD_DB_POOL_SIZE`; by default one more than `--concurrency`, so
    /// that one tenant's share of the instance (the pool less one) lets every client run.
    #[arg(long)]
    pub db_pool_size: Option<u32>,
    /// The service's `TWOFOLD_AGGREGATE_CACHE` (its default when not given). The verify load
    /// takes users in enrollment order, so a cache smaller than the users finds none of them
    /// (a cold verify); one larger than the users finds each (a warm verify).
    #[arg(long)]
    pub aggregate_cache: Option<usize>,
    /// The service's `TWOFOLD_DELIVERY_CONCURRENCY` (its default when not given): sends in
    /// flight at once in the delivery path.
    #[arg(long)]
    pub delivery_concurrency: Option<usize>,
    /// Print where PostgreSQL's time went during the verify load and the delivery path,
    /// statement by statement
    /// (loads `pg_stat_statements`, which costs a little itself).
    #[arg(long)]
    pub statement_stats: bool,
    /// Reach PostgreSQL over TCP on 127.0.0.1 (service and limit alike) instead of its
    /// Unix-domain socket, as a service on another host would.
    #[arg(long)]
    pub tcp: bool,
    /// A few seconds of everything, to check the benchmark works (CI); figures mean little.
    #[arg(long)]
    pub smoke: bool,
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsEntropy.fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The environment of a `twofold serve` under measurement: fresh secrets, the local sinks as
/// providers, and the ceilings that would throttle a load generator lifted (one tenant and one
/// key measure the service's ceiling; the delivery measurement sends more codes than a tenant's
/// default budget allows).
pub(crate) fn service_env(
    database_url: &str,
    operator: &str,
    smtp: &sinks::SmtpSink,
    sms: &sinks::SmsSink,
) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", database_url.to_owned()),
        ("TWOFOLD_OPERATOR_TOKEN", operator.to_owned()),
        ("TWOFOLD_MASTER_KEY", random_hex(32)),
        ("TWOFOLD_HASH_PEPPER", random_hex(32)),
        ("TWOFOLD_SMTP_URL", smtp.url()),
        ("TWOFOLD_EMAIL_FROM", "Bench <bench@example.com>".to_owned()),
        ("TWOFOLD_SMS_PROVIDER", "twilio".to_owned()),
        ("TWOFOLD_TWILIO_API_BASE", sms.base_url()),
        ("TWOFOLD_TWILIO_ACCOUNT_SID", "ACbench".to_owned()),
        ("TWOFOLD_TWILIO_AUTH_TOKEN", "bench-token".to_owned()),
        ("TWOFOLD_TWILIO_FROM", "+15005550006".to_owned()),
        ("TWOFOLD_RATE_LIMIT_MAX", "1000000".to_owned()),
        ("TWOFOLD_RATE_LIMIT_DEFAULT", "1000000".to_owned()),
        ("TWOFOLD_MAX_SMS_HOURLY_BUDGET", "100000".to_owned()),
        ("TWOFOLD_MAX_EMAIL_HOURLY_BUDGET", "1000000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Runs the benchmark and prints its report. Fails if a correctness check fails.
pub async fn run(mut options: BenchOptions) -> anyhow::Result<()> {
    if options.smoke {
        options.seconds = options.seconds.min(3);
        options.users = Some(options.users.unwrap_or(300));
        options.delivery_users = options.delivery_users.min(10);
    }
    if !(0.0..=1.0).contains(&options.wrong_share) || options.concurrency == 0 {
        return Err(anyhow!(
            "--wrong-share must be within 0..1 and --concurrency above 0"
        ));
    }
    let dir = std::env::temp_dir().join(format!("twofold-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!("bench: starting a private PostgreSQL in {}", dir.display());
    let pg_dir = dir.join("pg");
    let local = tokio::task::spawn_blocking(move || {
        LocalPostgres::start(
            &pg_dir,
            &LocalPgOptions {
                ephemeral: false,
                statement_stats: options.statement_stats,
            },
        )
    })
    .await??;
    local.stop_when_process_exits(std::process::id())?;
    let outcome = run_on(&options, &local, &dir).await;
    let _ = tokio::task::spawn_blocking(move || local.stop()).await;
    if outcome.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        // What went wrong is in the service's log (and PostgreSQL's): keep them.
        eprintln!(
            "bench: failed; the service log and the database are kept in {}",
            dir.display()
        );
    }
    outcome
}

async fn run_on(
    options: &BenchOptions,
    local: &LocalPostgres,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let database = "twofold_bench";
    pg::ensure_database(&local.url("postgres"), database).await?;
    // The service and the limit both reach PostgreSQL over its Unix-domain socket, as the
    // zero-config service does: the same transport on both sides of the ratio.
    let url = if options.tcp {
        local.url(database)
    } else {
        local.socket_url(database)
    };
    let limit_host = if options.tcp {
        "127.0.0.1".to_owned()
    } else {
        local.socket_dir().to_string_lossy().into_owned()
    };
    let operator = random_hex(24);
    let smtp = sinks::SmtpSink::start()?;
    let sms = sinks::SmsSink::start()?;
    let mut env = service_env(&url, &operator, &smtp, &sms);
    // One tenant's ceiling: its share of the instance (at most the pool less one) lets every
    // client's request run at once, so the pool is one larger than the clients unless given.
    let pool_size = options
        .db_pool_size
        .unwrap_or(u32::try_from(options.concurrency + 1).unwrap_or(u32::MAX))
        .max(2);
    env.push((
        "TWOFOLD_TENANT_MAX_CONCURRENT_REQUESTS".to_owned(),
        (pool_size - 1).to_string(),
    ));
    env.push(("TWOFOLD_DB_POOL_SIZE".to_owned(), pool_size.to_string()));
    if let Some(n) = options.aggregate_cache {
        env.push(("TWOFOLD_AGGREGATE_CACHE".to_owned(), n.to_string()));
    }
    if let Some(n) = options.delivery_concurrency {
        env.push(("TWOFOLD_DELIVERY_CONCURRENCY".to_owned(), n.to_string()));
    }
    let exe = std::env::current_exe().context("finding the twofold executable")?;
    let log = dir.join("service.log");
    let service = service::ServiceProcess::start(&exe, &env, &log).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle_start = service.rss();

    let api = api::Api::new(&service.base_url, options.concurrency)?;
    let (tenant, admin, key) = api.create_tenant(&operator, "Bench").await?;
    api.data(
        &admin,
        "mutation { setPolicy(input: { smsHourlyBudget: 100000, emailHourlyBudget: 1000000 }) { smsHourlyBudget } }",
        json!({}),
    )
    .await?;
    let pool = pg::connect(&url, 4).await?;
    let duration = Duration::from_secs(options.seconds);

    eprintln!(
        "bench: measuring the limit (single-row INSERT commits, {} clients, {} s)",
        options.concurrency, options.seconds
    );
    let db = limit::Database {
        pool: &pool,
        host: &limit_host,
        port: local.port(),
        password: local.password().expose(),
        name: database,
        work_dir: dir,
    };
    let limit = limit::measure(&db, options.concurrency, duration).await?;

    let cpu = || {
        (
            service.cpu(),
            procfs::cpu_of_named("postgres"),
            procfs::cpu_of(std::process::id()).unwrap_or_default(),
        )
    };
    let cpu_array = || {
        let (svc, pg, generator) = cpu();
        [svc, pg, generator]
    };
    let enrolled = enrollment::run(
        &api,
        &key,
        options,
        &delivery::Probe {
            cpu: &cpu_array,
            statements: options.statement_stats.then_some(&pool),
        },
    )
    .await?;
    let (users, first_batch) = (enrolled.users.clone(), enrolled.first_batch);
    let delivery_users: Vec<Arc<api::Enrolled>> =
        users.iter().take(options.delivery_users).cloned().collect();

    let since: i64 = sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events")
        .fetch_one(&pool)
        .await?;
    let (svc0, pg0, gen0) = cpu();
    eprintln!(
        "bench: verify load, {} clients, {} s, {:.0}% wrong codes, {} users",
        options.concurrency,
        options.seconds,
        options.wrong_share * 100.0,
        users.len()
    );
    if options.statement_stats {
        reset_statement_stats(&pool).await?;
    }
    let mut result = load::run(
        &api,
        &key,
        users,
        options.concurrency,
        duration,
        options.wrong_share,
    )
    .await;
    let (svc1, pg1, gen1) = cpu();
    let statements = if options.statement_stats {
        statement_stats(&pool).await?
    } else {
        Vec::new()
    };
    let checks_verify = checks::verify(&pool, &tenant, since, &result).await?;

    // The ceiling: the same PostgreSQL running only a verify's own statements (decision 77).
    let side_duration = duration.min(Duration::from_secs(5));
    eprintln!(
        "bench: ceiling, pgbench running the verify's read and insert, {} clients, {} s",
        options.concurrency,
        side_duration.as_secs()
    );
    let first_user = twofold_domain::TenantId::parse(&tenant)
        .and_then(|t| twofold_domain::UserId::parse("u0").map(|u| t.user_aggregate_id(&u)))
        .map_err(|e| anyhow!("the bench's tenant or user id does not parse: {e}"))?;
    let ceiling = limit::ceiling(
        &db,
        options.concurrency,
        side_duration,
        &limit::CeilingInput {
            base: first_user.strip_suffix('0').unwrap_or(&first_user),
            users: first_batch,
            aggregate_type: <twofold_domain::user::User as cqrs_es::Aggregate>::TYPE,
            state_version: crate::startup::USER_STATE_VERSION,
        },
    )
    .await?;

    let floor_duration = side_duration;
    eprintln!(
        "bench: API floor, {} clients, {} s of {{ __typename }}",
        options.concurrency,
        floor_duration.as_secs()
    );
    let svc_floor0 = service.cpu();
    let mut floor = load::floor(&api, &key, options.concurrency, floor_duration).await;
    let svc_floor = service.cpu().saturating_sub(svc_floor0).as_secs_f64();
    let floor_errors = floor.transport_errors + floor.wrong_other.values().sum::<u64>();
    if floor_errors > 0 {
        return Err(anyhow!(
            "the API floor measurement failed: {floor_errors} requests were not answered ({:?})",
            floor.wrong_other
        ));
    }

    eprintln!(
        "bench: delivery path, {} users × email and SMS",
        delivery_users.len()
    );
    let delivered = delivery::run(
        &api,
        &key,
        &delivery_users,
        &smtp,
        &sms,
        options.concurrency,
        delivery::Probe {
            cpu: &cpu_array,
            statements: options.statement_stats.then_some(&pool),
        },
    )
    .await?;
    let check_delivery = checks::delivery(&delivered);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle_end = service.rss();

    let history = if options.history || options.smoke {
        let levels: &[usize] = if options.smoke {
            &[0, 10, 100]
        } else {
            &[0, 1_000, 10_000]
        };
        let users = if options.smoke {
            options.history_users.min(8)
        } else {
            options.history_users
        };
        eprintln!("bench: history mode, {users} users per level, past sign-ins {levels:?}");
        history::run(
            &api,
            &key,
            &pool,
            &tenant,
            levels,
            users,
            options.concurrency.min(users).max(1),
        )
        .await?
    } else {
        Vec::new()
    };

    let rss_after_history = if history.is_empty() {
        None
    } else {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Some(service.rss())
    };
    service.stop().await;

    let failed = report::Report {
        options,
        result: &mut result,
        limit: &limit,
        ceiling,
        floor: &mut floor,
        svc_floor,
        cpu: [
            svc1.saturating_sub(svc0).as_secs_f64(),
            pg1.saturating_sub(pg0).as_secs_f64(),
            gen1.saturating_sub(gen0).as_secs_f64(),
        ],
        enrolled: &enrolled,
        delivered: &delivered,
        rss: [rss_idle_start, rss_idle_end],
        rss_after_history,
        statements: &statements,
        history: &history,
        checks: &checks_verify,
        check_delivery: &check_delivery,
    }
    .print();
    if failed {
        return Err(anyhow!(
            "a correctness check failed (see above; service log was in {})",
            log.display()
        ));
    }
    Ok(())
}

/// Loads `pg_stat_statements` if needed and forgets what it counted so far.
async fn reset_statement_stats(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(pool)
        .await?;
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(pool)
        .await?;
    Ok(())
}

/// The statements that took most of PostgreSQL's execution time since the reset, one line
/// each: total ms, calls, mean µs, the statement (shortened).
async fn statement_stats(pool: &sqlx::PgPool) -> anyhow::Result<Vec<String>> {
    let rows: Vec<(f64, i64, String)> = sqlx::query_as(
        "SELECT total_exec_time, calls, regexp_replace(query, '\\s+', ' ', 'g') \
         FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(total, calls, query)| {
            let short: String = query.chars().take(110).collect();
            format!(
                "{total:>9.0} ms {calls:>8} calls {:>7.1} µs  {short}",
                total * 1000.0 / calls.max(1) as f64
            )
        })
        .collect())
}

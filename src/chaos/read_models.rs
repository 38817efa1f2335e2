//! After the run: the read models equal a rebuild from the log, and the audit history, read page
//! by page through the API in commit-safe order, holds every event of the tenant exactly once.

use std::path::Path;

use anyhow::{anyhow, Context};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::bench::api::Api;

/// The read models and how to list them in a stable order.
const TABLES: [(&str, &str); 5] = [
    (
        "tenants",
        "SELECT to_jsonb(t) FROM tenants t ORDER BY tenant_id",
    ),
    (
        "api_keys",
        "SELECT to_jsonb(k) FROM api_keys k ORDER BY tenant_id, key_id",
    ),
    (
        "user_compliance",
        "SELECT to_jsonb(u) FROM user_compliance u ORDER BY tenant_id, user_id",
    ),
    (
        "tenant_daily_activity",
        "SELECT to_jsonb(a) FROM tenant_daily_activity a ORDER BY tenant_id, day",
    ),
    (
        "user_activity",
        "SELECT to_jsonb(u) FROM user_activity u ORDER BY tenant_id, user_id",
    ),
];

async fn read_models(pool: &PgPool) -> anyhow::Result<Vec<Vec<Value>>> {
    let mut all = Vec::new();
    for (_, sql) in TABLES {
        all.push(sqlx::query_scalar(sql).fetch_all(pool).await?);
    }
    Ok(all)
}

/// Runs `twofold projections rebuild` against the run's database (the instances stopped) and
/// returns the read models that differ from what the instances had built.
pub async fn differing_from_rebuild(
    pool: &PgPool,
    exe: &Path,
    env: &[(String, String)],
) -> anyhow::Result<Vec<&'static str>> {
    let built = read_models(pool).await?;
    let out = tokio::process::Command::new(exe)
        .args(["projections", "rebuild"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .context("running projections rebuild")?;
    if !out.status.success() {
        return Err(anyhow!(
            "projections rebuild failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let rebuilt = read_models(pool).await?;
    Ok(TABLES
        .iter()
        .zip(built.iter().zip(&rebuilt))
        .filter(|(_, (a, b))| a != b)
        .map(|((name, _), _)| *name)
        .collect())
}

const PAGE: &str = "query($after: String) { auditEvents(first: 500, after: $after, oldestFirst: true) { nodes { position } endCursor hasNextPage } }";

/// Reads the tenant's whole audit history through the API, oldest first, and compares it with
/// the log: `(events in the log, events read, missing, read twice or out of order)`.
pub async fn audit_gaps(
    api: &Api,
    admin_key: &str,
    pool: &PgPool,
    tenant: &str,
) -> anyhow::Result<(usize, usize, usize, usize)> {
    let mut read: Vec<i64> = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = api.data(admin_key, PAGE, json!({ "after": after })).await?;
        let page = &page["auditEvents"];
        for node in page["nodes"].as_array().into_iter().flatten() {
            let position = node["position"].as_str().unwrap_or_default();
            read.push(position.parse().context("an audit position")?);
        }
        if page["hasNextPage"] != json!(true) {
            break;
        }
        after = page["endCursor"].clone();
    }
    let logged: Vec<i64> = sqlx::query_scalar(
        "SELECT global_position FROM events WHERE tenant_id = $1 ORDER BY tx_id, global_position",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    let in_log: std::collections::HashSet<i64> = logged.iter().copied().collect();
    let mut seen = std::collections::HashSet::new();
    let disordered = read.iter().zip(&logged).filter(|(r, l)| r != l).count()
        + read.iter().filter(|p| !seen.insert(**p)).count();
    let missing = in_log.iter().filter(|p| !seen.contains(p)).count();
    Ok((logged.len(), read.len(), missing, disordered))
}

//! The audit history: what auditors read (query, export, live stream), in commit-safe order,
//! tenant by tenant, and never a secret.

mod export;
mod live;
mod paging;
mod scenario;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use twofold_tests::TestApp;

const EVENTS: &str = "query($f: AuditFilter, $n: Int, $a: String, $o: Boolean) { auditEvents(filter: $f, first: $n, after: $a, oldestFirst: $o) { nodes { position eventType userId occurredAt actor requestId data } endCursor hasNextPage } }";
const WAIT: Duration = Duration::from_secs(20);

async fn page(app: &TestApp, key: &str, vars: Value) -> Value {
    app.gql(Some(key), EVENTS, vars).await.data()["auditEvents"].clone()
}

/// Every page of a query, oldest first, following the cursors.
async fn all_events(app: &TestApp, key: &str, filter: Value, first: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = Value::Null;
    loop {
        let p = page(
            app,
            key,
            json!({ "f": filter, "n": first, "a": after, "o": true }),
        )
        .await;
        out.extend(p["nodes"].as_array().unwrap().iter().cloned());
        if !p["hasNextPage"].as_bool().unwrap() {
            return out;
        }
        after = p["endCursor"].clone();
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect()
}

/// Waits (bounded) until every event of the tenant is below the commit horizon, so a read sees
/// them all: the event processor's own short transactions hold the horizon back for a moment
/// after a burst of writes.
pub(crate) async fn settled(app: &TestApp, tenant: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let horizon = twofold_infra::pg::commit_horizon(&mut app.db.acquire().await.unwrap())
            .await
            .unwrap();
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE tenant_id = $1 AND tx_id >= $2::text::xid8",
        )
        .bind(tenant)
        .bind(horizon.to_string())
        .fetch_one(&app.db)
        .await
        .unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events never became readable"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` sign-in decisions spread over `users` users, `parallel` at a time: one event each.
async fn sign_ins(app: &TestApp, key: &str, prefix: &str, n: usize) {
    let requests = (0..n).map(|i| {
        let key = key.to_owned();
        let user = format!("{prefix}-{}", i % 16);
        async move {
            let a = app
                .gql(
                    Some(&key),
                    "query($u: ID!) { signInRequirement(userId: $u) { reason } }",
                    json!({ "u": user }),
                )
                .await;
            assert_eq!(a.data()["signInRequirement"]["reason"], "NOT_ENROLLED");
        }
    });
    futures::stream::iter(requests)
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

//! Paging the history: each event once, in commit order, never behind an open transaction, and
//! only the caller's tenant's.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use twofold_tests::{spawn_app, spawn_app_with, TestOptions};

use super::{all_events, page, settled, sign_ins, EVENTS};
use crate::totp::{enroll, tenant};

#[tokio::test]
async fn paging_through_a_thousand_events_loses_and_repeats_nothing_while_new_ones_arrive() {
    let app = spawn_app().await;
    let (tenant_id, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    // A thousand requests as fast as the test can send them: above the default rate per key.
    let raised = app
        .gql(
            Some(&admin),
            "mutation { setPolicy(input: { requestsPerSecondPerKey: 10000 }) { requestsPerSecondPerKey } }",
            json!({}),
        )
        .await;
    assert!(raised.body["errors"].is_null(), "{}", raised.body);
    sign_ins(&app, &app_key, "u", 1_000).await;
    settled(&app, &tenant_id).await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1")
        .bind(&tenant_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(before >= 1_000);

    // Newest first, with events being written between pages: the pages hold exactly the
    // events there were when the first page was read, each once, newest first.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let p = page(&app, &auditor, json!({ "n": 97, "a": after })).await;
        seen.extend(
            p["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["position"].as_str().unwrap().parse::<i64>().unwrap()),
        );
        pages += 1;
        if pages <= 3 {
            sign_ins(&app, &app_key, "late", 5).await;
        }
        if !p["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = p["endCursor"].clone();
    }
    let distinct: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "no event twice");
    assert_eq!(
        seen.len() as i64,
        before,
        "every event there was, and no later one"
    );
    // Newest first in commit order (transaction, then position: positions of concurrent
    // transactions may interleave).
    let committed: Vec<i64> = sqlx::query_scalar(
        "SELECT global_position FROM events WHERE tenant_id = $1 \
         ORDER BY tx_id DESC, global_position DESC",
    )
    .bind(&tenant_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let expected: Vec<i64> = committed
        .into_iter()
        .filter(|p| distinct.contains(p))
        .collect();
    assert_eq!(seen, expected, "newest first");

    // Oldest first, until the end: every event of the tenant, including the late ones.
    settled(&app, &tenant_id).await;
    let all = all_events(&app, &auditor, Value::Null, 113).await;
    let positions: Vec<i64> = all
        .iter()
        .map(|e| e["position"].as_str().unwrap().parse().unwrap())
        .collect();
    let stored: Vec<i64> = sqlx::query_scalar(
        "SELECT global_position FROM events WHERE tenant_id = $1 ORDER BY tx_id, global_position",
    )
    .bind(&tenant_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(positions, stored);
    assert_eq!(stored.len() as i64, before + 15);
}

#[tokio::test]
async fn an_event_committed_behind_an_open_transaction_is_never_behind_a_cursor() {
    // Each command made while the transaction below holds the horizon waits out the settle
    // timeout, and so does every other test's processor on the cluster: keep it short.
    let app = spawn_app_with(TestOptions {
        settle_timeout: std::time::Duration::from_millis(200),
        ..TestOptions::default()
    })
    .await;
    let (tenant_id, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    sign_ins(&app, &app_key, "early", 4).await;
    settled(&app, &tenant_id).await;
    let first = page(&app, &auditor, json!({ "n": 2 })).await;
    assert!(first["hasNextPage"].as_bool().unwrap());

    // A transaction that started earlier and is still open holds the horizon back: what
    // commits after it is not shown yet, so no reader can page past a gap it might fill.
    let mut open = app.db.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *open)
        .await
        .unwrap();
    sign_ins(&app, &app_key, "during", 1).await;
    let held = page(&app, &auditor, json!({ "n": 2 })).await;
    assert_eq!(
        held["nodes"], first["nodes"],
        "not shown while an older transaction is open"
    );
    open.rollback().await.unwrap();
    settled(&app, &tenant_id).await;

    let now = page(&app, &auditor, json!({ "n": 1 })).await;
    assert_eq!(now["nodes"][0]["userId"], "during-0");
    // The first page's cursor continues into older events only.
    let rest = page(&app, &auditor, json!({ "n": 500, "a": first["endCursor"] })).await;
    assert!(rest["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["userId"] != "during-0"));
}

#[tokio::test]
async fn tenants_see_only_their_own_history_and_crafted_cursors_are_refused() {
    let app = spawn_app().await;
    let a = tenant(&app, "Alpha").await;
    let b = tenant(&app, "Beta").await;
    let (_, auditor_a) = app.issue_key(&a.admin, "AUDITOR").await;
    let (_, auditor_b) = app.issue_key(&b.admin, "AUDITOR").await;
    enroll(&app, &a.app, "same-id").await;
    sign_ins(&app, &b.app, "b", 3).await;

    let seen_by_b = all_events(&app, &auditor_b, Value::Null, 50).await;
    assert!(seen_by_b
        .iter()
        .all(|e| e["userId"].is_null() || e["userId"].as_str().unwrap().starts_with("b-")));
    let theirs = all_events(&app, &auditor_b, json!({ "userId": "same-id" }), 50).await;
    assert!(theirs.is_empty(), "{theirs:?}");

    // A's cursor is refused for B, in either order, and so is an edited one.
    let pa = page(&app, &auditor_a, json!({ "n": 1 })).await;
    let cursor = pa["endCursor"].as_str().unwrap().to_owned();
    let refused = app
        .gql(Some(&auditor_b), EVENTS, json!({ "n": 5, "a": cursor }))
        .await;
    assert_eq!(refused.error_code(), "INVALID_INPUT");
    let wrong_order = app
        .gql(
            Some(&auditor_a),
            EVENTS,
            json!({ "n": 5, "a": cursor, "o": true }),
        )
        .await;
    assert_eq!(wrong_order.error_code(), "INVALID_INPUT");
    let mut edited = cursor.clone();
    edited.replace_range(4..6, if &cursor[4..6] == "00" { "01" } else { "00" });
    let forged = app
        .gql(Some(&auditor_a), EVENTS, json!({ "n": 5, "a": edited }))
        .await;
    assert_eq!(forged.error_code(), "INVALID_INPUT");

    // Roles: APP may not read the history; bad filters are typed errors.
    let app_key = app.gql(Some(&a.app), EVENTS, json!({})).await;
    assert_eq!(app_key.error_code(), "FORBIDDEN");
    for (vars, what) in [
        (
            json!({ "f": { "eventTypes": ["NoSuchEvent"] } }),
            "unknown type",
        ),
        (json!({ "f": { "eventTypes": [] } }), "empty types"),
        (json!({ "n": 0 }), "first 0"),
        (json!({ "n": 501 }), "first 501"),
        (
            json!({ "f": { "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z" } }),
            "reversed range",
        ),
        (json!({ "a": "not-a-cursor" }), "garbage cursor"),
    ] {
        let r = app.gql(Some(&auditor_a), EVENTS, vars).await;
        assert_eq!(r.error_code(), "INVALID_INPUT", "{what}");
    }
}

//! The hot path's own connections and statements: connections that skip sqlx's ping, settings
//! a pooler may refuse, statements planned once that keep finding rows by key.

use cqrs_es::persist::SerializedEvent;
use serde_json::{json, Value};
use twofold_infra::pg::direct::{DirectConnections, Lease};
use twofold_tests::spawn_app;

mod pooler;

// Load connections skip sqlx's ping on release, so they must never reuse a connection that a
// dropped future left mid-query: such a connection is closed, a finished one is reused.
#[tokio::test]
async fn a_load_connection_left_mid_query_is_closed_not_reused() {
    let app = spawn_app().await;
    let conns = DirectConnections::new(&app.db, 1);
    let mut lease = conns.acquire().await.unwrap();
    let first = backend_pid(lease.conn()).await;
    lease.finish();
    let mut lease = conns.acquire().await.unwrap();
    assert_eq!(
        backend_pid(lease.conn()).await,
        first,
        "a finished connection is reused"
    );

    // Abandon a query midway, as a cancelled request does.
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        sqlx::query("SELECT pg_sleep(2)").execute(lease.conn()),
    )
    .await;
    assert!(abandoned.is_err());
    drop(lease);
    let mut lease = conns.acquire().await.unwrap();
    let next = backend_pid(lease.conn()).await;
    assert_ne!(next, first, "the abandoned connection was not reused");
    lease.finish();
}

// The hot path's statements keep finding rows by key after their tables grow. PostgreSQL
// plans a prepared statement once per connection and re-plans it only after an autoanalyze; a
// plan made while `events` held a few rows read all of it (a sequential scan, or the index by
// aggregate type alone), and once it had grown each append took 5 to 40 ms (the bench's
// delivery phase, decision 166).
#[tokio::test]
async fn the_hot_path_s_statements_keep_index_lookups_planned_on_small_tables() {
    use twofold_infra::append::APPEND_SQL;
    use twofold_infra::event_store::{LOAD_SQL, SNAPSHOT_SQL};
    let app = spawn_app().await;
    app.create_tenant("Acme").await;
    // Statistics of a small database (autovacuum off, so no autoanalyze can come later).
    sqlx::raw_sql(
        "ALTER TABLE events SET (autovacuum_enabled = false); \
         ALTER TABLE aggregate_snapshots SET (autovacuum_enabled = false); \
         ANALYZE events, aggregate_snapshots",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let statements = [
        (
            "append",
            APPEND_SQL,
            "'user', ARRAY['acme/u'], ARRAY[2]::bigint[], ARRAY['X'], ARRAY['1'], \
             ARRAY['{}']::jsonb[], ARRAY['{}']::jsonb[]",
        ),
        ("load", LOAD_SQL, "'user', 'acme/u', '1'"),
        ("snapshot", SNAPSHOT_SQL, "'user', 'acme/u', 1, '1', '{}'"),
    ];
    // A connection of the hot path plans each statement now, as at a deployment's start
    // (nothing it runs here is kept).
    let conns = DirectConnections::new(&app.db, 1);
    let mut lease = conns.acquire().await.unwrap();
    for (name, sql, args) in statements {
        sqlx::raw_sql(&format!(
            "PREPARE {name} AS {sql}; BEGIN; EXECUTE {name}({args}); ROLLBACK"
        ))
        .execute(lease.conn())
        .await
        .unwrap();
    }
    // Then the tables grow.
    sqlx::raw_sql(
        "INSERT INTO events \
           (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'user', 'acme/u' || u, s, 'CodeVerified', '1', '{}', '{}' \
         FROM generate_series(1, 2000) u, generate_series(1, 10) s; \
         INSERT INTO aggregate_snapshots \
           (aggregate_type, aggregate_id, last_sequence, state_version, state) \
         SELECT 'user', 'acme/u' || u, 10, '1', '{}' FROM generate_series(1, 2000) u",
    )
    .execute(&app.db)
    .await
    .unwrap();
    // The plans made before, and plans made now from the small database's statistics.
    for (name, sql, _) in statements {
        sqlx::raw_sql(&format!("PREPARE {name}_late AS {sql}"))
            .execute(lease.conn())
            .await
            .unwrap();
    }
    let early = statements.map(|(name, _, args)| (name.to_owned(), args));
    let late = statements.map(|(name, _, args)| (format!("{name}_late"), args));
    for (name, args) in early.into_iter().chain(late) {
        let plan: Value =
            sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) EXECUTE {name}({args})"))
                .fetch_one(lease.conn())
                .await
                .unwrap();
        let mut scans = Vec::new();
        table_scans(&plan, &mut scans);
        assert!(!scans.is_empty(), "{name}: {plan}");
        for (node, condition) in scans {
            assert!(
                node.starts_with("Index") && condition.contains("aggregate_id"),
                "the {name} statement reads a table other than by key ({node}, {condition}): {plan}"
            );
        }
    }
    lease.finish();
}

// The hot path plans its append once per connection. Left to choose, PostgreSQL planned it
// again at every call (a custom plan per array argument), which cost more of its CPU than
// running it (round 11 of docs/benchmark.md).
#[tokio::test]
async fn the_hot_path_plans_its_append_once_per_connection() {
    use twofold_infra::append::{append, Appended, APPEND_SQL};
    let app = spawn_app().await;
    let conns = DirectConnections::new(&app.db, 1);
    let mut lease = in_transaction(&conns).await;
    for i in 0..8 {
        let event = raw_event(&format!("acme/plan-{i}"), 1);
        let written = append(lease.conn(), "user", std::iter::once(&event))
            .await
            .unwrap();
        assert_eq!(written, Appended::Written);
    }
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
    )
    .bind(APPEND_SQL)
    .fetch_one(lease.conn())
    .await
    .unwrap();
    rolled_back(lease).await;
    assert_eq!(
        (generic, custom),
        (8, 0),
        "each append should reuse one generic plan"
    );
}

// Within one statement, an event's predecessor may be written beside it, but not skipped: a
// stream with a gap inside the statement writes nothing, whatever else the statement holds.
#[tokio::test]
async fn a_hole_inside_one_statement_writes_nothing() {
    use twofold_infra::append::{append, Appended};
    let app = spawn_app().await;
    let conns = DirectConnections::new(&app.db, 1);
    let mut lease = in_transaction(&conns).await;
    let run = [
        raw_event("acme/whole", 1),
        raw_event("acme/gap", 1),
        raw_event("acme/whole", 2),
        raw_event("acme/gap", 3),
    ];
    let gap = append(lease.conn(), "user", run.iter()).await.unwrap();
    let whole = append(lease.conn(), "user", [&run[0], &run[2]].into_iter())
        .await
        .unwrap();
    let next = raw_event("acme/whole", 3);
    let after_stored = append(lease.conn(), "user", std::iter::once(&next))
        .await
        .unwrap();
    rolled_back(lease).await;
    assert_eq!(
        (gap, whole, after_stored),
        (Appended::Hole, Appended::Written, Appended::Written)
    );
}

/// A hot-path connection in a transaction that [`rolled_back`] ends: nothing written on it
/// stays, so the event processor never sees the tests' raw events.
async fn in_transaction(conns: &DirectConnections) -> Lease<'_> {
    let mut lease = conns.acquire().await.unwrap();
    sqlx::raw_sql("BEGIN").execute(lease.conn()).await.unwrap();
    lease
}

async fn rolled_back(mut lease: Lease<'_>) {
    sqlx::raw_sql("ROLLBACK")
        .execute(lease.conn())
        .await
        .unwrap();
    lease.finish();
}

/// An event of aggregate `id` at `sequence`, for statements that are rolled back.
fn raw_event(id: &str, sequence: usize) -> SerializedEvent {
    SerializedEvent {
        aggregate_id: id.to_owned(),
        sequence,
        aggregate_type: "user".into(),
        event_type: "X".into(),
        event_version: "1".into(),
        payload: json!({}),
        metadata: json!({}),
    }
}

// Behind a pooler that refuses the hot path's connection settings (PgBouncer refuses those it
// does not track), its connections still open, without them.
#[tokio::test]
async fn hot_path_connections_open_without_their_settings_where_they_are_refused() {
    let app = spawn_app().await;
    let tuned = DirectConnections::new(&app.db, 1);
    assert_eq!(seqscan_of(&tuned).await, "off");
    // PostgreSQL itself refuses a setting it does not know, as a pooler refuses one.
    let refused = DirectConnections::with_settings(&app.db, 1, &[("no_such_setting", "on")]);
    assert_eq!(seqscan_of(&refused).await, "on");
    assert!(!refused.tuned());
    // A pooler told to let the first setting through, and not a later one, keeps the first.
    let partly = DirectConnections::with_settings(
        &app.db,
        1,
        &[("enable_seqscan", "off"), ("no_such_setting", "on")],
    );
    assert_eq!(seqscan_of(&partly).await, "off");
    assert!(partly.tuned());
}

/// `enable_seqscan` on a connection of `conns`.
async fn seqscan_of(conns: &DirectConnections) -> String {
    let mut lease = conns.acquire().await.expect("a connection");
    let seqscan = sqlx::query_scalar("SHOW enable_seqscan")
        .fetch_one(lease.conn())
        .await
        .unwrap();
    lease.finish();
    seqscan
}

/// Every node of `plan` that reads a table: its type and its index condition.
fn table_scans(plan: &Value, out: &mut Vec<(String, String)>) {
    match plan {
        Value::Array(items) => items.iter().for_each(|v| table_scans(v, out)),
        Value::Object(node) => {
            if node.contains_key("Relation Name") && node.get("Operation").is_none() {
                out.push((
                    node["Node Type"].as_str().unwrap_or_default().to_owned(),
                    node.get("Index Cond")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                ));
            }
            node.values().for_each(|v| table_scans(v, out));
        }
        _ => {}
    }
}

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

//! The event processor: commit-safe order, and rebuilds that equal the incremental result.

use chrono::Utc;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use twofold_domain::tenant::TenantEvent;
use twofold_domain::user::UserEvent;
use twofold_domain::{Method, Policy, TenantId, TenantName};
use twofold_infra::processor::EventProcessor;
use twofold_infra::projections;
use twofold_tests::{fresh_database, spawn_app};

fn registered(id: &str) -> Value {
    serde_json::to_value(TenantEvent::TenantRegistered {
        tenant_id: TenantId::parse(id).unwrap(),
        name: TenantName::parse(id).unwrap(),
        policy: Policy::default(),
        registered_at: Utc::now(),
    })
    .unwrap()
}

async fn insert_registration(conn: &mut PgConnection, id: &str) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('tenant', $1, 1, 'TenantRegistered', '1', $2, '{}')",
    )
    .bind(format!("{id}/tenant"))
    .bind(registered(id))
    .execute(conn)
    .await
    .unwrap();
}

/// A fresh database, a pool on it and a processor of every projection.
async fn fresh_processor() -> (String, PgPool, EventProcessor) {
    let url = fresh_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    let processor = EventProcessor::new(pool.clone(), projections::all())
        .await
        .unwrap();
    (url, pool, processor)
}

/// Runs the processor until `n` tenants are projected (bounded): the processor's own batches
/// may hold the horizon back for a moment.
async fn catch_up_until(processor: &EventProcessor, pool: &PgPool, n: usize) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut applied = 0;
    while tenants(pool).await.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "processor made no progress"
        );
        applied += processor.catch_up().await.unwrap();
        tokio::task::yield_now().await;
    }
    applied
}

async fn tenants(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT tenant_id FROM tenants ORDER BY tenant_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_transaction_that_commits_late_is_not_skipped() {
    let (url, pool, processor) = fresh_processor().await;

    // T1 starts first and takes the lower position, but commits last.
    let mut t1 = PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut t1).await.unwrap();
    insert_registration(&mut t1, "late").await;

    let mut t2 = PgConnection::connect(&url).await.unwrap();
    insert_registration(&mut t2, "early").await; // autocommit

    let positions: Vec<(String, i64)> =
        sqlx::query_as("SELECT aggregate_id, global_position FROM events ORDER BY global_position")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(positions.len(), 1, "T1's event is not visible yet");

    // While T1 is open the processor must not move past it, so it processes nothing.
    processor.catch_up().await.unwrap();
    assert_eq!(tenants(&pool).await, Vec::<String>::new());

    sqlx::query("COMMIT").execute(&mut t1).await.unwrap();
    catch_up_until(&processor, &pool, 2).await;
    assert_eq!(
        tenants(&pool).await,
        vec!["early".to_owned(), "late".to_owned()]
    );

    // The checkpoint is the (tx_id, position) of the last event in commit-safe order: T2's.
    let (cp_tx, cp_pos): (String, i64) = sqlx::query_as(
        "SELECT last_tx::text, last_position FROM projection_checkpoints WHERE consumer = 'tenants'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (t2_tx, t2_pos): (String, i64) = sqlx::query_as(
        "SELECT tx_id::text, global_position FROM events WHERE aggregate_id = 'early/tenant'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((cp_tx, cp_pos), (t2_tx, t2_pos));
}

/// A PostgreSQL transaction belongs to one database, so one left open in another database of
/// the same cluster can never write events here: it must not hold this database's projections
/// back (it did, through the cluster-wide `pg_snapshot_xmin`, and stalled every test beside the
/// one holding it).
#[tokio::test]
async fn a_transaction_open_in_another_database_does_not_hold_projections_back() {
    let (url, pool, processor) = fresh_processor().await;
    let elsewhere = fresh_database().await;

    let mut open = PgConnection::connect(&elsewhere).await.unwrap();
    sqlx::query("BEGIN").execute(&mut open).await.unwrap();
    insert_registration(&mut open, "elsewhere").await;

    let mut here = PgConnection::connect(&url).await.unwrap();
    insert_registration(&mut here, "here").await; // autocommit, after the open one began
    processor.catch_up().await.unwrap();
    assert_eq!(tenants(&pool).await, vec!["here".to_owned()]);

    // An open transaction of this database still holds it, as before.
    sqlx::query("BEGIN").execute(&mut here).await.unwrap();
    insert_registration(&mut here, "late").await;
    insert_registration(&mut PgConnection::connect(&url).await.unwrap(), "after").await;
    processor.catch_up().await.unwrap();
    assert_eq!(tenants(&pool).await, vec!["here".to_owned()]);
    sqlx::query("COMMIT").execute(&mut here).await.unwrap();
    catch_up_until(&processor, &pool, 3).await;
    sqlx::query("ROLLBACK").execute(&mut open).await.unwrap();
}

#[tokio::test]
async fn two_processors_on_one_database_apply_each_event_once() {
    let url = fresh_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .unwrap();
    let a = EventProcessor::new(pool.clone(), projections::all())
        .await
        .unwrap();
    let b = EventProcessor::new(pool.clone(), projections::all())
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    for i in 0..50 {
        insert_registration(&mut conn, &format!("tenant-{i:02}")).await;
    }
    let (na, nb) = tokio::join!(catch_up_until(&a, &pool, 50), catch_up_until(&b, &pool, 50));
    // Each projection sees each event once, whichever instance applies it.
    let per_event = projections::all().len() as u64;
    assert_eq!(
        na + nb,
        50 * per_event,
        "each event applied by exactly one instance"
    );
    assert_eq!(tenants(&pool).await.len(), 50);
}

async fn snapshot(pool: &PgPool) -> Value {
    let tenants: Vec<Value> =
        sqlx::query_scalar("SELECT to_jsonb(t) FROM tenants t ORDER BY tenant_id")
            .fetch_all(pool)
            .await
            .unwrap();
    let keys: Vec<Value> =
        sqlx::query_scalar("SELECT to_jsonb(k) FROM api_keys k ORDER BY tenant_id, key_id")
            .fetch_all(pool)
            .await
            .unwrap();
    let users: Vec<Value> =
        sqlx::query_scalar("SELECT to_jsonb(u) FROM user_compliance u ORDER BY tenant_id, user_id")
            .fetch_all(pool)
            .await
            .unwrap();
    let days: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(a) FROM tenant_daily_activity a ORDER BY tenant_id, day",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let activity: Vec<Value> =
        sqlx::query_scalar("SELECT to_jsonb(u) FROM user_activity u ORDER BY tenant_id, user_id")
            .fetch_all(pool)
            .await
            .unwrap();
    let checkpoints: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_array(consumer, last_tx::text, last_position) FROM projection_checkpoints \
         WHERE consumer IN ('tenants', 'user_compliance', 'activity') ORDER BY consumer",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    json!({
        "tenants": tenants, "keys": keys, "users": users, "checkpoints": checkpoints,
        "days": days, "activity": activity,
    })
}

#[tokio::test]
async fn a_rebuild_equals_the_incremental_projection() {
    let app = spawn_app().await;
    let (_, admin_a) = app.create_tenant("Alpha").await;
    let (key, _) = app.issue_key(&admin_a, "APP").await;
    app.issue_key(&admin_a, "AUDITOR").await;
    app.gql(
        Some(&admin_a),
        "mutation($k: ID!) { revokeApiKey(keyId: $k) { id } }",
        json!({ "k": key }),
    )
    .await
    .data();
    app.gql(
        Some(&admin_a),
        "mutation { setPolicy(input: { enforceTwoFactor: true, allowedCallingCodes: [\"995\"] }) { codeDigits } }",
        json!({}),
    )
    .await
    .data();
    let (_, admin_b) = app.create_tenant("Beta").await;
    let (_, app_b) = app.issue_key(&admin_b, "APP").await;
    // Users: one enrolled who signs in and mistypes, one only asked about, one enrolled,
    // locked out and then reset.
    let (_, codes) = crate::totp::enroll(&app, &app_b, "enrolled").await;
    crate::totp::verify(&app, &app_b, "enrolled", "RECOVERY_CODE", &codes[0]).await;
    crate::totp::verify(
        &app,
        &app_b,
        "enrolled",
        "RECOVERY_CODE",
        "aaaa-bbbb-cccc-dddd",
    )
    .await;
    crate::totp::enroll(&app, &app_b, "reset").await;
    for _ in 0..10 {
        crate::totp::verify(
            &app,
            &app_b,
            "reset",
            "RECOVERY_CODE",
            "aaaa-bbbb-cccc-dddd",
        )
        .await;
    }
    app.gql(
        Some(&admin_b),
        "mutation { resetTwoFactor(userId: \"reset\", reason: \"lost phone\") { enabled } }",
        json!({}),
    )
    .await
    .data();
    app.gql(
        Some(&app_b),
        "{ signInRequirement(userId: \"asked\") { reason } }",
        json!({}),
    )
    .await
    .data();
    // What the incremental run has applied so far (the compliance report waits for that).
    app.gql(Some(&admin_b), "{ compliance { totalUsers } }", json!({}))
        .await
        .data();
    app.gql(
        Some(&admin_b),
        "{ tenant { overview { usersSeen } } }",
        json!({}),
    )
    .await
    .data();

    let incremental = snapshot(&app.db).await;
    assert_eq!(incremental["keys"].as_array().unwrap().len(), 5);
    assert_eq!(incremental["users"].as_array().unwrap().len(), 3);
    let sum = |k: &str| -> i64 {
        incremental["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d[k].as_i64().unwrap())
            .sum()
    };
    assert_eq!((sum("sign_ins"), sum("failed_codes")), (1, 11));
    assert_eq!(incremental["activity"].as_array().unwrap().len(), 2);

    let processor = EventProcessor::new(app.db.clone(), projections::all())
        .await
        .unwrap();
    let rebuilt = processor.rebuild(None).await.unwrap();
    assert!(rebuilt.contains(&"tenants"), "{rebuilt:?}");
    assert!(rebuilt.contains(&"user_compliance"), "{rebuilt:?}");
    assert!(rebuilt.contains(&"activity"), "{rebuilt:?}");
    assert_eq!(snapshot(&app.db).await, incremental);

    // Keys keep working after the rebuild.
    let t = app
        .gql(Some(&admin_b), "{ tenant { name } }", json!({}))
        .await;
    assert_eq!(t.data()["tenant"]["name"], "Beta");

    assert!(processor.rebuild(Some("no-such-projection")).await.is_err());
}

/// Writes `events` of user `user` of tenant `acme` in one transaction, from `sequence` on.
async fn insert_user_commit(
    conn: &mut PgConnection,
    user: &str,
    sequence: i64,
    events: &[UserEvent],
) {
    let mut tx = conn.begin().await.unwrap();
    for (i, event) in events.iter().enumerate() {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ('user', $1, $2, $3, '1', $4, '{}')",
        )
        .bind(format!("acme/user/{user}"))
        .bind(sequence + i as i64)
        .bind(cqrs_es::DomainEvent::event_type(event))
        .bind(serde_json::to_value(event).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_sign_in_is_told_from_a_proof_when_a_batch_cuts_its_commit() {
    let (url, pool, processor) = fresh_processor().await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let at = Utc::now();
    // Fill the first batch but one with events no projection reads.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'filler', 'acme/filler', n, 'Filler', '1', '{}', '{}' FROM generate_series(1, $1) AS n",
    )
    .bind(twofold_infra::processor::BATCH - 1)
    .execute(&mut conn)
    .await
    .unwrap();
    // A code that proves a change: the batch ends after the code, the change comes next.
    let proof = UserEvent::CodeVerified {
        method: Method::Totp,
        totp_step: Some(1),
        challenge_id: None,
        at,
    };
    let removed = UserEvent::FactorRemoved {
        method: Method::Email,
        at,
    };
    insert_user_commit(&mut conn, "proving", 1, &[proof, removed]).await;
    let nth: String = sqlx::query_scalar(
        "SELECT event_type FROM events ORDER BY tx_id, global_position OFFSET $1 - 1 LIMIT 1",
    )
    .bind(twofold_infra::processor::BATCH)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        nth, "CodeVerified",
        "the first batch must end with the proof"
    );
    // A sign-in and a wrong code, each a commit of its own.
    let signed_in = UserEvent::CodeVerified {
        method: Method::Totp,
        totp_step: Some(2),
        challenge_id: None,
        at,
    };
    insert_user_commit(&mut conn, "signing-in", 1, &[signed_in]).await;
    let wrong = UserEvent::VerificationFailed {
        method: Method::Totp,
        challenge_id: None,
        consecutive_failures: 1,
        at,
    };
    insert_user_commit(&mut conn, "signing-in", 2, &[wrong]).await;

    let counts = || async {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT sum(sign_ins)::bigint, sum(failed_codes)::bigint FROM tenant_daily_activity \
             WHERE tenant_id = 'acme'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        processor.catch_up().await.unwrap();
        let done: bool = sqlx::query_scalar(
            "SELECT count(*) = 4 FROM events e JOIN projection_checkpoints c \
               ON c.consumer = 'activity' AND (e.tx_id, e.global_position) <= (c.last_tx, c.last_position) \
             WHERE e.aggregate_type = 'user'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "processor made no progress"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(counts().await, (1, 1));
    let last: Vec<String> = sqlx::query_scalar(
        "SELECT user_id FROM user_activity WHERE last_sign_in_at IS NOT NULL ORDER BY user_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(last, ["signing-in"]);
    processor.rebuild(Some("activity")).await.unwrap();
    assert_eq!(counts().await, (1, 1));
}

mod horizon;

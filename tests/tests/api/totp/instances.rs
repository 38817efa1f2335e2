//! Two instances on one database, each keeping the users it worked on in memory between
//! commands (the aggregate cache): interleaved commands on one user still decide on the user's
//! latest state, whichever instance runs them.

use serde_json::json;
use twofold_tests::{spawn_app, spawn_instance_on, Answer, TestApp, TestOptions};

use super::{enroll, tenant, verify};

const REQUIREMENT: &str = "query($u: ID!) { signInRequirement(userId: $u) { required } }";
const RESET: &str =
    "mutation($u: ID!, $r: String!) { resetTwoFactor(userId: $u, reason: $r) { enabled } }";

#[tokio::test]
async fn two_instances_interleaving_commands_on_one_user_decide_on_its_latest_state() {
    let a = spawn_app().await;
    let b = spawn_instance_on(
        a.database_url.clone(),
        a.secrets.clone(),
        TestOptions::default(),
    )
    .await;
    let t = tenant(&a, "Acme").await;

    // A has seen dora without a factor; B enrolls her. A's memory of her is now stale, and
    // its refusal (no factor) must not stand.
    let asked = a
        .gql(Some(&t.app), REQUIREMENT, json!({ "u": "dora" }))
        .await;
    assert_eq!(asked.data()["signInRequirement"]["required"], false);
    let (mut authenticator, codes) = enroll(&b, &t.app, "dora").await;
    let code = authenticator.next_code();
    let on_a = verify(&a, &t.app, "dora", "TOTP", &code).await;
    assert_eq!(on_a.data()["verify"]["method"], "TOTP", "{:?}", on_a.body);

    // B's memory of her (from the enrollment) does not know A accepted that step: the same
    // code is refused there, not accepted a second time.
    let on_b = verify(&b, &t.app, "dora", "TOTP", &code).await;
    assert_eq!(on_b.error_code(), "INVALID_CODE", "{:?}", on_b.body);

    // A recovery code used on B is used on A too.
    let used = verify(&b, &t.app, "dora", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(used.data()["verify"]["method"], "RECOVERY_CODE");
    let again = verify(&a, &t.app, "dora", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(again.error_code(), "INVALID_CODE", "{:?}", again.body);

    // An admin resets her on B: A, which last saw her enrolled, no longer accepts her codes.
    let reset = b
        .gql(
            Some(&t.admin),
            RESET,
            json!({ "u": "dora", "r": "lost phone" }),
        )
        .await;
    assert_eq!(reset.data()["resetTwoFactor"]["enabled"], false);
    let after = verify(&a, &t.app, "dora", "RECOVERY_CODE", &codes[1]).await;
    assert_eq!(after.error_code(), "NOT_FOUND", "{:?}", after.body);

    let accepted: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_id LIKE '%/user/dora' \
         AND event_type IN ('CodeVerified', 'RecoveryCodeUsed') ORDER BY sequence",
    )
    .fetch_all(&a.db)
    .await
    .unwrap();
    assert_eq!(accepted, ["CodeVerified", "RecoveryCodeUsed"]);
}

// A restart or failover of PostgreSQL can lose the last commits (asynchronous commit or
// replication) and so free their sequence numbers: the primary key cannot tell that the
// instance's memory of the user is newer than the database. Here the user's last event is lost
// and the server's connections are cut, as a failover does: the next sign-in is decided on what
// the database holds (the lost sign-in's code is accepted again, not refused as used), and the
// stream stays gapless.
/// Deletes the user's last event, as a restart that lost its commit would: returns its type.
async fn lose_last_event(app: &TestApp, user: &str) -> String {
    let mut tx = app.db.begin().await.unwrap();
    // Replica mode skips the log's immutability trigger, for this transaction only.
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    let pattern = format!("%/user/{user}");
    let lost: String = sqlx::query_scalar(
        "DELETE FROM events WHERE aggregate_id LIKE $1 AND sequence = \
           (SELECT max(sequence) FROM events WHERE aggregate_id LIKE $1) \
         RETURNING event_type",
    )
    .bind(&pattern)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    lost
}

/// Sends `code` again while the answer is a retryable outage; returns the last answer.
async fn verify_through_outage(app: &TestApp, key: &str, user: &str, code: &str) -> Answer {
    let mut answer = verify(app, key, user, "TOTP", code).await;
    for _ in 0..5 {
        if answer.body["errors"].is_null() {
            break;
        }
        assert_eq!(answer.error_code(), "UNAVAILABLE", "{:?}", answer.body);
        answer = verify(app, key, user, "TOTP", code).await;
    }
    answer
}

async fn assert_gapless(app: &TestApp, user: &str) {
    let sequences: Vec<i64> = sqlx::query_scalar(
        "SELECT sequence FROM events WHERE aggregate_id LIKE $1 ORDER BY sequence",
    )
    .bind(format!("%/user/{user}"))
    .fetch_all(&app.db)
    .await
    .unwrap();
    let expected: Vec<i64> = (1..=sequences.len() as i64).collect();
    assert_eq!(sequences, expected, "the stream has a gap");
}

// A restart or failover of PostgreSQL can lose the last commits (asynchronous commit or
// replication) and so free their sequence numbers: the primary key cannot tell that the
// instance's memory of the user is newer than the database. Here the user's last event is lost
// and the server's connections are cut, as a failover does: the next sign-in is decided on what
// the database holds (the lost sign-in's code is accepted again, not refused as used), and the
// stream stays gapless.
#[tokio::test]
async fn a_commit_the_database_lost_is_not_built_on_from_memory() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, _) = enroll(&app, &t.app, "lena").await;
    let code = authenticator.next_code();
    let first = verify(&app, &t.app, "lena", "TOTP", &code).await;
    assert_eq!(first.data()["verify"]["method"], "TOTP");

    assert_eq!(lose_last_event(&app, "lena").await, "CodeVerified");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&app.db)
    .await
    .unwrap();
    // Past the idle check, the instance finds its connections dead before using them.
    tokio::time::sleep(
        twofold_infra::pg::direct::IDLE_CHECK + std::time::Duration::from_millis(200),
    )
    .await;

    // The outage may cost a retryable answer; none may be decided on the lost state. As far as
    // the database knows, the code's step was never used: it is accepted again.
    let answer = verify_through_outage(&app, &t.app, "lena", &code).await;
    assert_eq!(
        answer.data()["verify"]["method"],
        "TOTP",
        "{:?}",
        answer.body
    );
    assert_gapless(&app, "lena").await;
}

// The same loss behind a transaction pooler, whose connections outlive the server's restart:
// the instance's connections are not cut, and the append writes nothing past a hole (its
// statement checks each command's predecessor), so the command decides again.
#[tokio::test]
async fn a_lost_commit_is_not_built_on_even_when_the_connections_survive() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, _) = enroll(&app, &t.app, "mona").await;
    let code = authenticator.next_code();
    let first = verify(&app, &t.app, "mona", "TOTP", &code).await;
    assert_eq!(first.data()["verify"]["method"], "TOTP");

    assert_eq!(lose_last_event(&app, "mona").await, "CodeVerified");
    let answer = verify_through_outage(&app, &t.app, "mona", &code).await;
    assert_eq!(
        answer.data()["verify"]["method"],
        "TOTP",
        "{:?}",
        answer.body
    );
    assert_gapless(&app, "mona").await;
}

// A snapshot is written only over the event it ends at: after a failover that lost that event,
// no load may start from a state the log does not hold.
#[tokio::test]
async fn a_snapshot_is_not_written_past_the_log() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    enroll(&app, &t.app, "nina").await;
    let aggregate: String = sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE aggregate_id LIKE '%/user/nina' LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let last: i64 = sqlx::query_scalar("SELECT max(sequence) FROM events WHERE aggregate_id = $1")
        .bind(&aggregate)
        .fetch_one(&app.db)
        .await
        .unwrap();
    for (sequence, kept) in [(last + 1, false), (last, true)] {
        sqlx::query(twofold_infra::event_store::SNAPSHOT_SQL)
            .bind("user")
            .bind(&aggregate)
            .bind(sequence)
            .bind("test")
            .bind(serde_json::json!({}))
            .execute(&app.db)
            .await
            .unwrap();
        let stored: Option<i64> = sqlx::query_scalar(
            "SELECT last_sequence FROM aggregate_snapshots WHERE aggregate_id = $1",
        )
        .bind(&aggregate)
        .fetch_optional(&app.db)
        .await
        .unwrap();
        assert_eq!(stored.is_some(), kept, "snapshot at {sequence} of {last}");
    }
}

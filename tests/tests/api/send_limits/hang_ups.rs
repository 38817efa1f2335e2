//! A caller who hangs up once its code's slots are taken: the command runs on, in the place its
//! request held in the tenant's share of the instance.

use std::time::{Duration, Instant};

use serde_json::json;
use twofold_infra::group_commit::WriterLimits;
use twofold_tests::{spawn_app, spawn_app_with, TestApp, TestOptions};

use crate::rate_limits::{email_codes, EmailBudgetLock};

/// An instance whose commands wait for a lock on `events` for as long as these tests hold it.
/// With the writer's own lock wait (2 s) they would end as a retryable outage, freeing their
/// places before the test could look (decision 175).
async fn spawn_patient_app() -> TestApp {
    spawn_app_with(TestOptions {
        event_writer: WriterLimits {
            lock_wait: Duration::from_secs(40),
            statement_deadline: Duration::from_secs(50),
        },
        ..TestOptions::default()
    })
    .await
}

/// How many email codes of `tenant` hold their slots.
async fn reserved(app: &TestApp, tenant: &str) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(sends), 0) FROM send_counts WHERE bucket = $1")
        .bind(format!("tenant/{tenant}/email"))
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// A transaction of the test's holding `events` locked: commands wait for it to record their
/// events.
async fn lock_events(app: &TestApp) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    lock
}

/// Waits until `n` email codes of `tenant` hold their slots.
async fn until_reserved(app: &TestApp, tenant: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reserved = reserved(app, tenant).await;
        if reserved >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{reserved} of {n} reserved");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Another operation of the tenant, while its share is full: it waits for a place and is told
/// to slow down.
async fn refused_for_a_full_share(app: &TestApp, key: &str) {
    let started = Instant::now();
    let refused = app
        .gql(
            Some(key),
            "{ signInRequirement(userId: \"q\") { required } }",
            json!({}),
        )
        .await;
    assert_eq!(refused.error_code(), "RATE_LIMITED", "{}", refused.body);
    assert!(started.elapsed() >= Duration::from_secs(4), "it waited");
}

#[tokio::test]
async fn commands_left_running_by_callers_who_hung_up_keep_their_places_in_the_share() {
    let app = spawn_patient_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    // Commands wait for this lock to record their events, once their slots are taken.
    let lock = lock_events(&app).await;
    // As many codes as the tenant's share has places; their callers hang up once the slots are
    // taken.
    tokio::select! {
        _ = email_codes(&app, &key, "gone", 6) => panic!("answered while events were locked"),
        () = until_reserved(&app, &tenant, 6) => {}
    }
    // The six commands still run, so the share is full: another operation of the tenant waits
    // for a place and is told to slow down.
    refused_for_a_full_share(&app, &key).await;
    lock.rollback().await.unwrap();
    // The commands end, each with its code.
    app.wait_for_events(&format!("{tenant}/%"), "CodeSent", 6)
        .await;
    app.gql(
        Some(&key),
        "{ signInRequirement(userId: \"q\") { required } }",
        json!({}),
    )
    .await
    .data();
}

// Callers who hang up while their codes still wait for a slot: the reservations go on, and the
// commands after them, in the places their requests held. (Before, such a request gave back its
// grant unread and its place at once, and the test above raced on it: it hangs up once the
// slots are counted, which can come before every request has read its grant.)
#[tokio::test]
async fn callers_who_hang_up_while_their_codes_wait_for_a_slot_keep_their_places() {
    let app = spawn_patient_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let events = lock_events(&app).await;
    let budget = EmailBudgetLock::hold(&app, &tenant).await;
    tokio::select! {
        _ = email_codes(&app, &key, "gone", 6) => panic!("answered while the budget was locked"),
        () = budget.wait_for_waiters(&app, 6) => {}
    }
    // Every caller is gone; the slots are taken only now.
    budget.release().await;
    until_reserved(&app, &tenant, 6).await;
    refused_for_a_full_share(&app, &key).await;
    events.rollback().await.unwrap();
    app.wait_for_events(&format!("{tenant}/%"), "CodeSent", 6)
        .await;
}

// With the writer's own lock wait, codes whose commands wait behind a lock on the whole
// `events` table end in about 2 s, each answered as a retryable outage. Nothing was written, so
// every slot is given back (those of a batch answered together too), and once the lock is gone
// the retries are sent. Before, each command decided again up to 20 times and its caller heard
// `CONFLICT`; with the slots kept, retrying callers used up their addresses' codes on refusals.
#[tokio::test]
async fn codes_behind_a_table_lock_end_at_the_lock_wait_and_give_their_slots_back() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let lock = lock_events(&app).await;
    let started = Instant::now();
    for refused in email_codes(&app, &key, "held", 3).await {
        assert_eq!(refused.error_code(), "INTERNAL", "{}", refused.body);
        assert_eq!(
            refused.body["errors"][0]["extensions"]["retryable"], true,
            "{}",
            refused.body
        );
    }
    // One 2 s lock wait per statement: halving three commands would have taken five.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "ended at the lock wait"
    );
    assert_eq!(reserved(&app, &tenant).await, 0, "every slot given back");
    lock.rollback().await.unwrap();
    for sent in email_codes(&app, &key, "held", 3).await {
        sent.data();
    }
    app.wait_for_events(&format!("{tenant}/%"), "CodeSent", 3)
        .await;
}

//! Verify cost does not grow with history: a load reads a snapshot and the events after it.

use std::sync::Arc;

use serde_json::json;
use twofold_domain::user::{CodeChecker, User, UserEvent};
use twofold_domain::Method;
use twofold_infra::crypto::seal::PgSealer;
use twofold_infra::crypto::totp::RfcTotp;
use twofold_infra::crypto::HmacHasher;
use twofold_infra::event_store::{PgStore, SNAPSHOT_AFTER};
use twofold_services::users::UserCrypto;
use twofold_tests::{spawn_app, TestApp};

pub(crate) fn store(app: &TestApp, version: &'static str) -> PgStore<User> {
    let crypto: Arc<dyn CodeChecker> = Arc::new(UserCrypto::new(
        Arc::new(PgSealer::new(
            app.db.clone(),
            app.secrets.master_key.clone(),
        )),
        Arc::new(RfcTotp),
        Arc::new(HmacHasher::new(app.secrets.hash_pepper.clone())),
    ));
    PgStore::new(&app.db, crypto, version)
}

fn code(uri: &str, step_offset: u64) -> String {
    let totp = totp_rs::Totp::from_url(uri).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate((now / 30 + step_offset) * 30).to_string()
}

#[tokio::test]
async fn a_user_with_ten_thousand_sign_ins_loads_as_cheaply_as_a_new_one() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let e = app
        .gql(
            Some(&key),
            "mutation { startTotpEnrollment(userId: \"veteran\") { otpauthUri } }",
            json!({}),
        )
        .await;
    let uri = e.data()["startTotpEnrollment"]["otpauthUri"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql(
        Some(&key),
        "mutation($c: String!) { confirmTotpEnrollment(userId: \"veteran\", code: $c) { codes } }",
        json!({ "c": code(&uri, 0) }),
    )
    .await
    .data();

    // 10,000 past sign-ins (old time steps), appended the way postgres-es appends events.
    let aggregate_id = format!("{tenant}/user/veteran");
    let last: i64 = sqlx::query_scalar("SELECT max(sequence) FROM events WHERE aggregate_id = $1")
        .bind(&aggregate_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let payloads: Vec<serde_json::Value> = (1..=10_000u64)
        .map(|step| {
            serde_json::to_value(UserEvent::CodeVerified {
                method: Method::Totp,
                totp_step: Some(step),
                challenge_id: None,
                at: chrono::Utc::now(),
            })
            .unwrap()
        })
        .collect();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'user', $1, $2 + n, 'CodeVerified', '1', p, '{}' \
         FROM unnest($3::jsonb[]) WITH ORDINALITY AS x(p, n)",
    )
    .bind(&aggregate_id)
    .bind(last)
    .bind(&payloads)
    .execute(&app.db)
    .await
    .unwrap();

    let store = store(&app, "user-1");
    let (_, _, replayed) = store.load_counted(&aggregate_id).await.unwrap();
    assert!(
        replayed >= 10_000,
        "no snapshot yet: the whole history is read ({replayed})"
    );

    // One sign-in pays for the replay once and leaves a snapshot behind...
    let verify =
        "mutation($c: String!) { verify(userId: \"veteran\", method: TOTP, code: $c) { method } }";
    app.gql(Some(&key), verify, json!({ "c": code(&uri, 1) }))
        .await
        .data();
    let (state, _, replayed) = store.load_counted(&aggregate_id).await.unwrap();
    assert_eq!(replayed, 0, "the next load reads the snapshot only");

    // ...and later loads read only what came after it.
    let wrong = app
        .gql(Some(&key), verify, json!({ "c": code(&uri, 9) }))
        .await;
    assert_eq!(wrong.error_code(), "INVALID_CODE");
    let (after, _, replayed) = store.load_counted(&aggregate_id).await.unwrap();
    assert_eq!(replayed, 1);
    assert_eq!(after.consecutive_failures(), 1);

    // The snapshot is exact: the same state as a full replay (another state version ignores it).
    let (full, _, replayed_all) = store_full(&app).load_counted(&aggregate_id).await.unwrap();
    assert!(replayed_all > 10_000);
    assert_eq!(full, after);
    assert!(state.enabled() && state.last_verified_at().is_some());
}

fn store_full(app: &TestApp) -> PgStore<User> {
    store(app, "no-such-version")
}

#[tokio::test]
async fn in_normal_operation_no_load_replays_more_than_the_snapshot_interval() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let store = store(&app, "user-1");
    let aggregate_id = format!("{tenant}/user/busy");
    let mut worst = 0;
    for _ in 0..(3 * SNAPSHOT_AFTER) {
        app.gql(
            Some(&key),
            "mutation { startTotpEnrollment(userId: \"busy\") { period } }",
            json!({}),
        )
        .await
        .data();
        let (_, _, replayed) = store.load_counted(&aggregate_id).await.unwrap();
        worst = worst.max(replayed);
    }
    assert!(worst < SNAPSHOT_AFTER, "a load replayed {worst} events");
}

//! A database outage: every request gets a clear, retryable answer in bounded time, and the
//! service recovers by itself when the database is back.

use std::time::{Duration, Instant};

use serde_json::json;
use twofold_tests::spawn_app;

const START: &str = "mutation($u: ID!) { startTotpEnrollment(userId: $u) { otpauthUri } }";

#[tokio::test]
async fn an_outage_is_a_retryable_error_in_bounded_time_and_the_service_recovers_by_itself() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let first = app.gql(Some(&key), START, json!({ "u": "before" })).await;
    assert!(first.body["errors"].is_null(), "{:?}", first.body);

    app.database_outage(true).await;
    let started = Instant::now();
    let during = app.gql(Some(&key), START, json!({ "u": "during" })).await;
    // The pool gives up connecting after 5 s: well before the 30 s request timeout.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(during.error_code(), "INTERNAL", "{:?}", during.body);
    let error = &during.body["errors"][0];
    assert_eq!(error["extensions"]["retryable"], true, "{error}");
    assert_eq!(error["extensions"]["retryAfterSeconds"], 1, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("retry in a moment"), "{message}");
    assert!(
        !message.contains("sqlx") && !message.contains("connection"),
        "{message}"
    );

    app.database_outage(false).await;
    let started = Instant::now();
    loop {
        let after = app.gql(Some(&key), START, json!({ "u": "during" })).await;
        if after.body["errors"].is_null() {
            break;
        }
        assert_eq!(
            after.body["errors"][0]["extensions"]["retryable"], true,
            "{:?}",
            after.body
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not recovered: {:?}",
            after.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_ordinary_internal_error_is_not_called_retryable() {
    // A wrong code is the caller's error, and nothing else than an outage is marked retryable:
    // the flag must mean "the same request may succeed in a moment".
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    app.gql(Some(&key), START, json!({ "u": "u" })).await;
    let wrong = app
        .gql(
            Some(&key),
            "mutation { confirmTotpEnrollment(userId: \"u\", code: \"000000\") { codes } }",
            json!({}),
        )
        .await;
    assert!(wrong.body["errors"][0]["extensions"]["retryable"].is_null());
}

//! The delivery worker's edges: errors before a send end in `CodeDeliveryFailed`, a code for a
//! replaced address is dropped, finished jobs are pruned after the retention.

use serde_json::{json, Value};
use twofold_tests::fakes::FakeWebhook;
use twofold_tests::{spawn_app_with, spawn_instance_of, TestOptions};

use super::*;

async fn failure(app: &TestApp, user: &str) -> Value {
    app.wait_for_events(&format!("%/user/{user}"), "CodeDeliveryFailed", 1)
        .await;
    let payload: Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'CodeDeliveryFailed' AND aggregate_id LIKE $1",
    )
    .bind(format!("%/user/{user}"))
    .fetch_one(&app.db)
    .await
    .unwrap();
    payload["CodeDeliveryFailed"].clone()
}

#[tokio::test]
async fn settings_that_do_not_open_fail_the_delivery_at_once() {
    let app = spawn_app_with(TestOptions::default()).await;
    let hook = FakeWebhook::start("whsec-never-shown-0123");
    let (tenant_id, admin, key) = tenant(&app, "Golf").await;
    set(
        &app,
        &admin,
        json!({ "sms": { "webhook": { "url": hook.url(), "secret": "whsec-never-shown-0123" } } }),
    )
    .await
    .data();
    // The stored seal is damaged (as a lost or shredded data key would leave it).
    sqlx::query("UPDATE tenants SET delivery = jsonb_set(delivery, '{sealed}', '\"AQIDBA==\"') WHERE tenant_id = $1")
        .bind(&tenant_id)
        .execute(&app.db)
        .await
        .unwrap();
    app.gql(
        Some(&key),
        ADD_PHONE,
        json!({ "u": "gil", "p": "+995 555 12 34 56" }),
    )
    .await
    .data();
    let failed = failure(&app, "gil").await;
    assert_eq!(failed["attempts"], 1, "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("delivery settings cannot be used"),
        "{failed}"
    );
    assert!(hook.requests().is_empty());
    assert!(
        app.twilio.requests().is_empty(),
        "never the service's provider instead"
    );
}

#[tokio::test]
async fn a_destination_that_does_not_open_ends_in_a_recorded_failure() {
    let app = spawn_app_with(TestOptions {
        run_worker: false,
        ..TestOptions::default()
    })
    .await;
    let (tenant_id, _, key) = tenant(&app, "Hotel").await;
    app.gql(
        Some(&key),
        ADD_EMAIL,
        json!({ "u": "hal", "e": "hal@example.com" }),
    )
    .await
    .data();
    // The tenant's data keys are gone (crypto-shredded): the sealed address cannot be opened.
    sqlx::query("DELETE FROM data_keys WHERE tenant_id = $1")
        .bind(&tenant_id)
        .execute(&app.db)
        .await
        .unwrap();
    let worker = spawn_instance_of(&app, TestOptions::default()).await;
    let failed = failure(&worker, "hal").await;
    assert_eq!(
        failed["attempts"],
        TestOptions::default().max_attempts,
        "{failed}"
    );
    assert!(worker.smtp.messages().is_empty());
    let status: String = sqlx::query_scalar("SELECT status FROM deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "failed");
}

#[tokio::test]
async fn a_code_for_a_replaced_address_is_dropped_not_sent_to_the_new_one() {
    let app = spawn_app_with(TestOptions {
        run_worker: false,
        ..TestOptions::default()
    })
    .await;
    let (_, _, key) = tenant(&app, "India").await;
    let first = app
        .gql(
            Some(&key),
            ADD_EMAIL,
            json!({ "u": "ivy", "e": "old@example.com" }),
        )
        .await;
    let first = first.data()["addEmail"]["id"].as_str().unwrap().to_owned();
    let second = app
        .gql(
            Some(&key),
            ADD_EMAIL,
            json!({ "u": "ivy", "e": "new@example.com" }),
        )
        .await;
    let second = second.data()["addEmail"]["id"].as_str().unwrap().to_owned();
    let worker = spawn_instance_of(&app, TestOptions::default()).await;
    worker
        .wait_for_events("%/user/ivy", "CodeDelivered", 1)
        .await;
    // Both jobs are finished before looking: the first one is dropped, not sent.
    let deadline = std::time::Instant::now() + WAIT;
    let rows = loop {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT challenge_id, status, last_error FROM deliveries ORDER BY created_at",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        if rows.iter().all(|(_, s, _)| s != "pending") || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(
        rows.contains(&(first.clone(), "failed".into(), Some("obsolete".into()))),
        "{rows:?}"
    );
    assert!(
        rows.contains(&(second.clone(), "delivered".into(), None)),
        "{rows:?}"
    );
    let mails = worker.smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0].to, vec!["new@example.com".to_owned()]);
    let message_id = mails[0].header("Message-ID").unwrap_or_default();
    assert!(message_id.contains(&second), "{message_id}");
    assert!(!message_id.contains(&first), "{message_id}");
    assert_eq!(
        worker
            .count_events_like("%/user/ivy", "CodeDelivered")
            .await,
        1
    );
}

#[tokio::test]
async fn finished_deliveries_are_pruned_after_the_retention() {
    let app = spawn_app_with(TestOptions {
        delivery_retention: Duration::from_secs(2),
        ..TestOptions::default()
    })
    .await;
    let (_, _, key) = tenant(&app, "Juliet").await;
    app.gql(
        Some(&key),
        ADD_EMAIL,
        json!({ "u": "jo", "e": "jo@example.com" }),
    )
    .await
    .data();
    app.wait_for_events("%/user/jo", "CodeDelivered", 1).await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deliveries")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 1, "kept while younger than the retention");
    let deadline = std::time::Instant::now() + WAIT;
    while count().await > 0 {
        assert!(std::time::Instant::now() < deadline, "never pruned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The code was delivered once and stays recorded on the user.
    assert_eq!(app.count_events_like("%/user/jo", "CodeDelivered").await, 1);
}

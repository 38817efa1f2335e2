//! Delivery through the outbox: provider errors retried, a provider down past the retry limit,
//! a restart, two instances on one database, and sends side by side.

use serde_json::{json, Value};
use twofold_tests::fakes::extract_code;
use twofold_tests::{spawn_app, spawn_app_with, spawn_instance_of, TestOptions};

use super::{gql, tenant, ADD_EMAIL, ADD_PHONE, CONFIRM, WAIT};

#[tokio::test]
async fn a_provider_error_is_retried_and_the_code_delivered_once() {
    let app = spawn_app_with(TestOptions {
        twilio_script: vec![500, 503],
        ..TestOptions::default()
    })
    .await;
    let (_, key) = tenant(&app).await;
    let c = gql(
        &app,
        &key,
        ADD_PHONE,
        json!({ "u": "ed", "p": "+995 555 12 34 57" }),
    )
    .await;
    let id = c.data()["addPhone"]["id"].as_str().unwrap().to_owned();
    app.twilio.wait_for_delivered(1, WAIT).await;
    app.wait_for_events("%/user/ed", "CodeDelivered", 1).await;
    let requests = app.twilio.requests();
    assert_eq!(requests.len(), 3, "two failures, then one success");
    assert!(requests
        .iter()
        .all(|r| r.idempotency_token.as_deref() == Some(id.as_str())));
    assert_eq!(app.twilio.delivered().len(), 1);
    assert_eq!(
        app.count_events_like("%/user/ed", "CodeDeliveryFailed")
            .await,
        0
    );
    let s = gql(
        &app,
        &key,
        "query { user(userId: \"ed\") { recentChallenges { id delivery } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        s.data()["user"]["recentChallenges"],
        json!([{ "id": id, "delivery": "DELIVERED" }])
    );
}

#[tokio::test]
async fn a_provider_down_past_the_retry_limit_records_the_failure() {
    let app = spawn_app_with(TestOptions {
        twilio_script: vec![500; 10],
        ..TestOptions::default()
    })
    .await;
    let (_, key) = tenant(&app).await;
    gql(
        &app,
        &key,
        ADD_PHONE,
        json!({ "u": "fay", "p": "+995 555 12 34 58" }),
    )
    .await
    .data();
    app.wait_for_events("%/user/fay", "CodeDeliveryFailed", 1)
        .await;
    let payload: Value =
        sqlx::query_scalar("SELECT payload FROM events WHERE event_type = 'CodeDeliveryFailed'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let failed = &payload["CodeDeliveryFailed"];
    assert_eq!(failed["attempts"], TestOptions::default().max_attempts);
    assert!(
        !failed["error"].as_str().unwrap().contains("555"),
        "no destination in the error"
    );
    assert_eq!(app.twilio.delivered().len(), 0);
    assert_eq!(
        app.twilio.requests().len() as u32,
        TestOptions::default().max_attempts
    );
    let s = gql(
        &app,
        &key,
        "query { user(userId: \"fay\") { recentChallenges { delivery } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        s.data()["user"]["recentChallenges"],
        json!([{ "delivery": "FAILED" }])
    );
}

#[tokio::test]
async fn a_code_committed_while_no_worker_runs_is_delivered_once_after_a_restart() {
    // The first instance serves the API but dies (never runs its worker) after CodeSent commits.
    let first = spawn_app_with(TestOptions {
        run_worker: false,
        ..TestOptions::default()
    })
    .await;
    let (_, key) = tenant(&first).await;
    let c = gql(
        &first,
        &key,
        ADD_PHONE,
        json!({ "u": "gus", "p": "+995 555 12 34 59" }),
    )
    .await;
    let id = c.data()["addPhone"]["id"].as_str().unwrap().to_owned();
    assert_eq!(first.count_events_like("%/user/gus", "CodeSent").await, 1);
    assert!(first.twilio.requests().is_empty());

    // The restarted service delivers it, once.
    let second = spawn_instance_of(&first, TestOptions::default()).await;
    second
        .wait_for_events("%/user/gus", "CodeDelivered", 1)
        .await;
    let sent = second.twilio.delivered();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].idempotency_token.as_deref(), Some(id.as_str()));
    let code = extract_code(&sent[0].body, 6).unwrap();
    gql(
        &second,
        &key,
        CONFIRM,
        json!({ "u": "gus", "c": id, "k": code }),
    )
    .await
    .data();
    assert!(
        first.twilio.requests().is_empty(),
        "the dead instance sent nothing"
    );
}

#[tokio::test]
async fn two_instances_on_one_database_deliver_every_code_exactly_once() {
    let a = spawn_app().await;
    let b = spawn_instance_of(&a, TestOptions::default()).await;
    let (_, key) = tenant(&a).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let instance = if i % 2 == 0 { &a } else { &b };
        let c = gql(
            instance,
            &key,
            ADD_EMAIL,
            json!({ "u": format!("user{i}"), "e": format!("user{i}@example.com") }),
        )
        .await;
        ids.push(c.data()["addEmail"]["id"].as_str().unwrap().to_owned());
    }
    a.wait_for_events("%/user/user%", "CodeDelivered", 12).await;
    let mut delivered: Vec<String> = a
        .smtp
        .messages()
        .into_iter()
        .chain(b.smtp.messages())
        .map(|m| m.header("Message-ID").unwrap_or_default())
        .collect();
    assert_eq!(delivered.len(), 12, "no code sent twice, none lost");
    delivered.sort();
    delivered.dedup();
    assert_eq!(delivered.len(), 12);
    for id in &ids {
        assert!(
            delivered.iter().any(|m| m.contains(id.as_str())),
            "{id} not delivered"
        );
    }
    assert_eq!(
        a.count_events_like("%/user/user%", "CodeDelivered").await,
        12
    );
}

// Sends overlap: a provider that answers slowly does not hold back the codes queued behind the
// first one. This provider answers only once four requests wait at the same moment, which a
// worker sending one code at a time never reaches.
#[tokio::test]
async fn codes_are_sent_side_by_side_not_one_after_another() {
    let app = spawn_app().await;
    let (_, key) = tenant(&app).await;
    app.twilio.answer_only_in_groups_of(4);
    for i in 0..4 {
        gql(
            &app,
            &key,
            ADD_PHONE,
            json!({ "u": format!("side-{i}"), "p": format!("+995 555 12 34 5{i}") }),
        )
        .await
        .data();
    }
    let sms = app.twilio.wait_for_delivered(4, WAIT).await;
    let mut to: Vec<&str> = sms.iter().map(|m| m.to.as_str()).collect();
    to.sort_unstable();
    assert_eq!(
        to,
        [
            "+995555123450",
            "+995555123451",
            "+995555123452",
            "+995555123453"
        ]
    );
}

#[tokio::test]
async fn a_worker_whose_lease_ran_out_cannot_overwrite_the_next_claim() {
    use std::time::Duration;
    use twofold_infra::delivery_queue::PgDeliveryQueue;
    use twofold_services::ports::DeliveryQueue;

    let app = spawn_app_with(TestOptions {
        run_worker: false,
        ..TestOptions::default()
    })
    .await;
    let (_, key) = tenant(&app).await;
    let c = gql(
        &app,
        &key,
        ADD_PHONE,
        json!({ "u": "hal", "p": "+995 555 12 34 60" }),
    )
    .await;
    let id = c.data()["addPhone"]["id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deliveries WHERE challenge_id = $1")
        .bind(&id)
        .fetch_one(&app.db)
        .await
        .unwrap()
        == 0
    {
        assert!(started.elapsed() < WAIT, "the job was never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queue = PgDeliveryQueue::new(app.db.clone());
    // A lease that ends at once, as a worker stalled past its lease would have; another
    // worker then claims the job.
    let stale = queue.claim(Duration::ZERO).await.unwrap().unwrap();
    let fresh = queue.claim(Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!(
        (stale.challenge_id.as_str(), fresh.challenge_id.as_str()),
        (id.as_str(), id.as_str())
    );

    // The stalled worker's outcome changes nothing: the job is the other worker's.
    assert!(!queue.finish(&stale, false, Some("obsolete")).await.unwrap());
    assert!(!queue
        .retry_later(&stale, 1, Duration::from_secs(1), "late")
        .await
        .unwrap());
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, last_error FROM deliveries WHERE challenge_id = $1")
            .bind(&id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), error), ("pending", None));
    assert!(queue.finish(&fresh, true, None).await.unwrap());
    // Once finished, no claim's outcome applies any more.
    assert!(!queue.finish(&fresh, false, Some("again")).await.unwrap());
}

//! The queue between the log and the worker: a claim takes several due jobs in one round trip,
//! and a delivered job is closed from the event that records its delivery.

use std::time::Duration;

use serde_json::json;
use twofold_infra::delivery_queue::PgDeliveryQueue;
use twofold_infra::processor::EventProcessor;
use twofold_infra::projections;
use twofold_services::ports::DeliveryQueue;
use twofold_tests::{spawn_app, spawn_app_with, TestApp, TestOptions};

use super::{gql, tenant, ADD_EMAIL, ADD_PHONE, WAIT};

const LEASE: Duration = Duration::from_secs(60);

/// Waits until the queue holds `n` jobs.
async fn queued(app: &TestApp, n: i64) {
    let started = std::time::Instant::now();
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap()
        < n
    {
        assert!(started.elapsed() < WAIT, "fewer than {n} jobs were queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `(status, attempts, lease taken, last error)` of every job, by id.
async fn jobs(app: &TestApp) -> Vec<(String, String, i32, bool, Option<String>)> {
    sqlx::query_as(
        "SELECT challenge_id, status, attempts, lease_until IS NOT NULL, last_error \
         FROM deliveries ORDER BY challenge_id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn one_claim_takes_as_many_due_jobs_as_it_has_room_for_oldest_first_and_none_twice() {
    let app = spawn_app_with(TestOptions {
        run_worker: false,
        ..TestOptions::default()
    })
    .await;
    let (_, key) = tenant(&app).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let c = gql(
            &app,
            &key,
            ADD_PHONE,
            json!({ "u": format!("claim-{i}"), "p": format!("+995 555 12 34 7{i}") }),
        )
        .await;
        ids.push(c.data()["addPhone"]["id"].as_str().unwrap().to_owned());
    }
    queued(&app, 4).await;
    // Due in the order they were asked for, a second apart.
    for (i, id) in ids.iter().enumerate() {
        sqlx::query(
            "UPDATE deliveries SET next_attempt_at = now() - (5 - $2) * interval '1 second' \
             WHERE challenge_id = $1",
        )
        .bind(id)
        .bind(i as i32)
        .execute(&app.db)
        .await
        .unwrap();
    }
    let queue = PgDeliveryQueue::new(app.db.clone());
    let ids_of = |jobs: Vec<twofold_services::ports::DeliveryJob>| -> Vec<String> {
        jobs.into_iter().map(|j| j.challenge_id).collect()
    };
    let first = ids_of(queue.claim_up_to(LEASE, 3).await.unwrap());
    assert_eq!(first, ids[..3]);
    let second = ids_of(queue.claim_up_to(LEASE, 3).await.unwrap());
    assert_eq!(second, ids[3..]);
    assert!(queue.claim_up_to(LEASE, 3).await.unwrap().is_empty());
    assert!(queue.claim(LEASE).await.unwrap().is_none());
}

#[tokio::test]
async fn a_delivered_job_is_closed_from_the_log_and_a_rebuild_neither_reopens_nor_resends_it() {
    let app = spawn_app().await;
    let (_, key) = tenant(&app).await;
    gql(
        &app,
        &key,
        ADD_EMAIL,
        json!({ "u": "olga", "e": "olga@example.com" }),
    )
    .await
    .data();
    gql(
        &app,
        &key,
        ADD_PHONE,
        json!({ "u": "olga", "p": "+995 555 12 34 80" }),
    )
    .await
    .data();
    app.wait_for_events("%/user/olga", "CodeDelivered", 2).await;
    // The worker leaves the job under its lease; the processor closes it from the event.
    let started = std::time::Instant::now();
    let closed = loop {
        let rows = jobs(&app).await;
        if rows.len() == 2 && rows.iter().all(|r| r.1 != "pending") {
            break rows;
        }
        assert!(started.elapsed() < WAIT, "jobs never closed: {rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (id, status, attempts, leased, error) in &closed {
        assert_eq!(
            (status.as_str(), *attempts, *leased, error.as_deref()),
            ("delivered", 1, false, None),
            "{id}"
        );
    }

    // A worker whose claim came after the first lease ran out found the code already
    // delivered and closed the job as obsolete; the log says delivered, and a rebuild replays
    // it as such, queueing nothing again.
    sqlx::query(
        "UPDATE deliveries SET status = 'failed', last_error = 'obsolete' \
         WHERE challenge_id = $1",
    )
    .bind(&closed[0].0)
    .execute(&app.db)
    .await
    .unwrap();
    let processor = EventProcessor::new(app.db.clone(), projections::all())
        .await
        .unwrap();
    processor.rebuild(Some("delivery_outbox")).await.unwrap();
    let rebuilt = jobs(&app).await;
    assert_eq!(rebuilt.len(), 2);
    assert!(
        rebuilt.iter().all(|r| r.1 == "delivered" && !r.3),
        "{rebuilt:?}"
    );
    let queue = PgDeliveryQueue::new(app.db.clone());
    assert!(queue.claim_up_to(LEASE, 8).await.unwrap().is_empty());
    assert_eq!(
        (app.smtp.messages().len(), app.twilio.delivered().len()),
        (1, 1)
    );
}

// Defence in depth: a delivery recorded on one tenant's user closes only that user's job, even
// if (ids being random and made by the server, it cannot happen) it named another's job.
#[tokio::test]
async fn a_delivery_recorded_for_one_user_never_closes_another_tenant_s_job() {
    let app = spawn_app().await;
    sqlx::query(
        "INSERT INTO deliveries (challenge_id, tenant_id, aggregate_id, channel, kind, lease_until) \
         VALUES ('c-shared', 'other', 'other/user/victim', 'EMAIL', 'code', now() + interval '1 hour')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let event = twofold_domain::user::UserEvent::CodeDelivered {
        challenge_id: "c-shared".into(),
        provider_message_id: None,
        at: chrono::Utc::now(),
    };
    let position: i64 = sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
           payload, metadata) VALUES ('user', 'mallory/user/m', 1, $1, '1', $2, '{}') \
         RETURNING global_position",
    )
    .bind(cqrs_es::DomainEvent::event_type(&event))
    .bind(serde_json::to_value(&event).unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    let started = std::time::Instant::now();
    while sqlx::query_scalar::<_, i64>(
        "SELECT last_position FROM projection_checkpoints WHERE consumer = 'delivery_outbox'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
        < position
    {
        assert!(
            started.elapsed() < WAIT,
            "the processor never read the event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status: String =
        sqlx::query_scalar("SELECT status FROM deliveries WHERE challenge_id = 'c-shared'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "pending");
}

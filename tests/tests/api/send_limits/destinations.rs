//! The caps per destination: 5 codes per 10 minutes per tenant and 10 across tenants, whoever
//! the destination is registered to, refused without naming anyone, and kept through disabling
//! and resetting 2FA.

use serde_json::{json, Value};
use twofold_tests::{spawn_app, Answer, TestApp};

use super::{drain, enroll, tenant, ADD_EMAIL, ADD_PHONE, SEND};

const DISABLE: &str = "mutation($u: ID!, $k: String!) { disableTwoFactor(userId: $u, method: RECOVERY_CODE, code: $k) { enabled } }";
const RESET: &str =
    "mutation($u: ID!) { resetTwoFactor(userId: $u, reason: \"lost phone\") { enabled } }";

fn sms_to(app: &TestApp, e164: &str) -> usize {
    app.twilio
        .delivered()
        .iter()
        .filter(|r| r.to == e164)
        .count()
}

fn mails_to(app: &TestApp, address: &str) -> usize {
    app.smtp
        .messages()
        .iter()
        .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address)))
        .count()
}

/// A refusal that says the destination had too many codes, and nothing about who else uses it.
fn assert_destination_refused(answer: &Answer, others: &[&str]) {
    assert_eq!(answer.error_code(), "RATE_LIMITED", "{}", answer.body);
    let message = answer.error_message();
    assert!(message.contains("too many codes"), "{message}");
    for other in others {
        assert!(!message.contains(other), "{message} names {other}");
    }
    for hint in [
        "another user",
        "other user",
        "someone",
        "organisation",
        "registered",
    ] {
        assert!(!message.contains(hint), "{message}");
    }
    assert!(
        answer.body["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_i64()
            .is_some_and(|s| s > 0),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn seven_users_sharing_a_phone_get_at_most_five_codes() {
    let app = spawn_app().await;
    let (_, key) = tenant(&app, "Acme").await;
    // The same number, typed differently.
    let spellings = ["+995 555 12 34 56", "+995555123456", "+995-555-123-456"];
    let users: Vec<String> = (1..=7).map(|i| format!("pumped{i}")).collect();
    let mut answers = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let phone = spellings[i % spellings.len()];
        answers.push(
            app.gql(Some(&key), ADD_PHONE, json!({ "u": user, "p": phone }))
                .await,
        );
    }
    for a in &answers[..5] {
        a.data();
    }
    let names: Vec<&str> = users[..5].iter().map(String::as_str).collect();
    for a in &answers[5..] {
        assert_destination_refused(a, &names);
    }
    assert_eq!(answers[5].error_message(), answers[6].error_message());
    assert_eq!(
        app.count_events_like("%/user/pumped6", "PhoneFactorAdded")
            .await,
        0,
        "a refused phone changes nothing"
    );
    drain(&app).await;
    assert_eq!(sms_to(&app, "+995555123456"), 5, "five texts, no more");

    // Another number is not affected.
    app.gql(
        Some(&key),
        ADD_PHONE,
        json!({ "u": "pumped6", "p": "+995 555 65 43 21" }),
    )
    .await
    .data();
}

#[tokio::test]
async fn seven_users_sharing_a_mailbox_get_at_most_five_codes() {
    let app = spawn_app().await;
    let (_, key) = tenant(&app, "Acme").await;
    // One mailbox: the count ignores case and surrounding spaces.
    let spellings = [
        "Mail.Box@Example.com",
        " mail.box@example.com ",
        "MAIL.BOX@EXAMPLE.COM",
    ];
    let mut answers = Vec::new();
    for i in 0..7 {
        let email = spellings[i % spellings.len()];
        answers.push(
            app.gql(
                Some(&key),
                ADD_EMAIL,
                json!({ "u": format!("bombed{i}"), "e": email }),
            )
            .await,
        );
    }
    for a in &answers[..5] {
        a.data();
    }
    for a in &answers[5..] {
        assert_destination_refused(a, &["bombed0", "bombed1"]);
    }
    drain(&app).await;
    assert_eq!(mails_to(&app, "mail.box@example.com"), 5);
}

#[tokio::test]
async fn a_destination_gets_at_most_ten_codes_across_tenants() {
    let app = spawn_app().await;
    let phone = "+995 555 77 77 77";
    let mut refused = Vec::new();
    for name in ["First", "Second", "Third"] {
        let (_, key) = tenant(&app, name).await;
        for i in 0..5 {
            let a = app
                .gql(
                    Some(&key),
                    ADD_PHONE,
                    json!({ "u": format!("u{i}"), "p": phone }),
                )
                .await;
            if a.body.get("errors").is_some() {
                refused.push((name, i, a));
            }
        }
    }
    // The first two tenants use up the service-wide ten; the third gets none, and is told the
    // same thing as a tenant over its own cap (nothing says another organisation is involved).
    assert_eq!(
        refused.iter().map(|(n, i, _)| (*n, *i)).collect::<Vec<_>>(),
        (0..5).map(|i| ("Third", i)).collect::<Vec<_>>()
    );
    for (_, _, a) in &refused {
        assert_destination_refused(a, &["First", "Second"]);
    }
    drain(&app).await;
    assert_eq!(sms_to(&app, "+995555777777"), 10);
}

#[tokio::test]
async fn disabling_or_resetting_two_factor_does_not_reset_a_destinations_history() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app, "Acme").await;
    let phone = "+995555424242";
    // Two rounds of enroll then disable, then rounds of add then admin reset: each wipes the
    // user's own history of challenges, and each sends one code to the same number.
    for _ in 0..2 {
        let codes = enroll(&app, &key, "dora", phone).await;
        app.gql(Some(&key), DISABLE, json!({ "u": "dora", "k": codes[0] }))
            .await
            .data();
    }
    for _ in 0..3 {
        app.gql(Some(&key), ADD_PHONE, json!({ "u": "dora", "p": phone }))
            .await
            .data();
        app.gql(Some(&admin), RESET, json!({ "u": "dora" }))
            .await
            .data();
    }
    let sixth = app
        .gql(Some(&key), ADD_PHONE, json!({ "u": "dora", "p": phone }))
        .await;
    assert_destination_refused(&sixth, &[]);
    drain(&app).await;
    assert_eq!(
        app.count_events_like("%/user/dora", "CodeSent").await,
        5,
        "five codes in all"
    );
}

// Counts are kept for the longest window any cap may have: a reservation with only short caps
// (the destinations' ten minutes) must not prune what an hourly budget still counts.
#[tokio::test]
async fn a_reservation_with_short_caps_keeps_the_counts_of_longer_ones() {
    use twofold_services::ports::{SendCap, SendLimiter};
    let app = spawn_app().await;
    sqlx::query(
        "INSERT INTO send_reservations (bucket, reserved_at, challenge_id, expires_at) \
         VALUES ('tenant/t/sms', now() - interval '30 minutes', 'earlier', \
                 now() + interval '30 minutes')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let limiter = twofold_infra::send_limiter::PgSendLimiter::new(app.db.clone());
    let short = SendCap {
        bucket: "dest/x".to_owned(),
        limit: 5,
        window: chrono::Duration::minutes(10),
    };
    limiter
        .reserve("now", &[short], chrono::Utc::now())
        .await
        .unwrap();
    let kept: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(sends), 0) FROM send_counts WHERE bucket = 'tenant/t/sms'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(kept, 1, "the budget's count from 30 minutes ago is kept");
}

#[tokio::test]
async fn expired_reservations_and_counts_are_pruned() {
    let app = spawn_app().await;
    let (_, key) = tenant(&app, "Acme").await;
    sqlx::query(
        "INSERT INTO send_reservations (bucket, challenge_id, reserved_at, expires_at) \
         SELECT 'old-' || i, 'c' || i, now() - interval '2 hours', now() - interval '1 hour' \
         FROM generate_series(1, 50) i",
    )
    .execute(&app.db)
    .await
    .unwrap();
    app.gql(
        Some(&key),
        ADD_EMAIL,
        json!({ "u": "a", "e": "a@example.com" }),
    )
    .await
    .data();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM send_reservations WHERE expires_at < now()")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(left, 0, "a send prunes expired rows");
    let old_counts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM send_counts WHERE bucket LIKE 'old-%'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(old_counts, 0, "and the counts of minutes past every window");
    let kept: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(bucket) FROM send_counts \
         UNION ALL SELECT to_jsonb(bucket) FROM send_reservations",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(!kept.is_empty(), "the send was counted");
    assert!(
        kept.iter()
            .all(|b| !b.as_str().unwrap().contains("example.com")),
        "destinations are never stored in clear: {kept:?}"
    );
}

// A code whose command the database refused (a lock held past the events writer's lock wait,
// decision 175) was not issued: its slot is given back, so the retries its caller is told to
// make do not use up the destination's codes.
#[tokio::test]
async fn sends_the_database_refused_give_their_slots_back() {
    let app = spawn_app().await;
    let (_, key) = tenant(&app, "Acme").await;
    enroll(&app, &key, "ann", "+14155550123").await;
    drain(&app).await;
    // A stalled transaction holds the key of the user's next event (taken again if the
    // delivery worker's record of the enrollment code came first).
    let mut attempts = 0;
    let holder = loop {
        attempts += 1;
        let (aggregate, last): (String, i64) = sqlx::query_as(
            "SELECT aggregate_id, max(sequence) FROM events \
             WHERE aggregate_type = 'user' AND aggregate_id LIKE '%/user/ann' GROUP BY 1",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        let mut holder = app.db.begin().await.unwrap();
        let held = sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) VALUES ('user', $1, $2, 'Held', '1', '{}', '{}')",
        )
        .bind(&aggregate)
        .bind(last + 1)
        .execute(&mut *holder)
        .await;
        match held {
            Ok(_) => break holder,
            Err(e) => assert!(attempts < 20, "the next event's key is never free: {e}"),
        }
    };
    // The number's five sign-in codes in ten minutes (the enrollment's code counts apart).
    for _ in 0..5 {
        let refused = app
            .gql(Some(&key), SEND, json!({ "u": "ann", "ch": "SMS" }))
            .await;
        assert_eq!(refused.error_code(), "INTERNAL", "{}", refused.body);
        assert_eq!(
            refused.body["errors"][0]["extensions"]["retryable"], true,
            "{}",
            refused.body
        );
    }
    holder.rollback().await.unwrap();
    let sent = app
        .gql(Some(&key), SEND, json!({ "u": "ann", "ch": "SMS" }))
        .await;
    assert!(sent.data()["sendCode"]["id"].is_string(), "{}", sent.body);
}

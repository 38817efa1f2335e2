//! The tenant's hourly SMS and email budgets: exact under concurrency and across instances, not
//! spent by a retried send, part of the policy, and capped by the operator.

use futures::future::join_all;
use serde_json::json;
use twofold_tests::{spawn_app, spawn_instance_of, TestApp, TestOptions};

use super::{drain, enroll, set_policy, tenant, ADD_EMAIL, ADD_PHONE, SEND};

/// `n` users, each with a verified address of its own (`{prefix}{i}@example.com`), enrolled a
/// few at a time.
async fn users_with_email(app: &TestApp, key: &str, prefix: &str, n: usize) -> Vec<String> {
    let users: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    for chunk in users.chunks(10) {
        join_all(
            chunk
                .iter()
                .map(|u| async move { enroll(app, key, u, &format!("{u}@example.com")).await }),
        )
        .await;
    }
    users
}

/// Sends a sign-in code to every user at once, spread over `instances`; returns (codes sent,
/// RATE_LIMITED answers).
/// A second instance on `app`'s database; `app`'s worker drains the outbox of both.
async fn without_worker(app: &TestApp) -> TestApp {
    spawn_instance_of(
        app,
        TestOptions {
            run_worker: false,
            ..TestOptions::default()
        },
    )
    .await
}

async fn send_all_at_once(instances: &[&TestApp], key: &str, users: &[String]) -> (usize, usize) {
    let answers = join_all(
        users
            .iter()
            .enumerate()
            .map(|(i, u)| instances[i % instances.len()].gql(Some(key), SEND, json!({ "u": u }))),
    )
    .await;
    let sent = answers
        .iter()
        .filter(|a| a.body.get("errors").is_none())
        .count();
    let limited = answers
        .iter()
        .filter(|a| a.body["errors"][0]["extensions"]["code"] == "RATE_LIMITED")
        .count();
    (sent, limited)
}

#[tokio::test]
async fn fifty_parallel_sends_against_an_email_budget_of_ten_send_exactly_ten() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app, "Acme").await;
    let users = users_with_email(&app, &key, "par", 50).await;
    // The 50 verification mails count toward the hour: ten more may go.
    set_policy(&app, &admin, "emailHourlyBudget: 60").await;
    let (sent, limited) = send_all_at_once(&[&app], &key, &users).await;
    assert_eq!((sent, limited), (10, 40));
    drain(&app).await;
    assert_eq!(app.smtp.messages().len(), 60, "exactly ten sign-in mails");
}

#[tokio::test]
async fn sends_queued_on_the_budget_s_lock_each_count_the_ones_before_them() {
    let app = spawn_app().await;
    let other = without_worker(&app).await;
    let (acme, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let users = users_with_email(&app, &key, "queued", 8).await;
    // The 8 verification mails count toward the hour: three more may go.
    set_policy(&app, &admin, "emailHourlyBudget: 11").await;
    // Every send waits at once, half on each instance: each instance's first batch waits on the
    // budget's lock, its other sends queued behind it. Released, the batches take the lock one
    // by one. A batch that counted before it had the lock, or a send that did not count the
    // ones granted before it in its batch, would let more through.
    let lock = crate::rate_limits::EmailBudgetLock::hold(&app, &acme).await;
    let instances = [&app, &other];
    let sends = send_all_at_once(&instances, &key, &users);
    let release = async {
        let budget = twofold_infra::send_limiter::lock_key(&format!("tenant/{acme}/email"));
        crate::rate_limits::wait_for_sends(&instances, budget, 8).await;
        lock.release().await;
    };
    let ((sent, limited), ()) = tokio::join!(sends, release);
    assert_eq!((sent, limited), (3, 5));
    drain(&app).await;
    assert_eq!(app.smtp.messages().len(), 11, "exactly three sign-in mails");
}

#[tokio::test]
async fn reservations_written_by_the_previous_version_count_toward_the_budget() {
    let app = spawn_app().await;
    let (acme, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let users = users_with_email(&app, &key, "old", 1).await;
    // One verification mail so far; four more from an instance of the previous version, still
    // running during a rolling deploy: it writes reservation rows and knows nothing of counts.
    set_policy(&app, &admin, "emailHourlyBudget: 5").await;
    sqlx::query(
        "INSERT INTO send_reservations (bucket, reserved_at, challenge_id, expires_at) \
         SELECT $1, now(), 'old-' || i, now() + interval '1 hour' FROM generate_series(1, 4) i",
    )
    .bind(format!("tenant/{acme}/email"))
    .execute(&app.db)
    .await
    .unwrap();
    let over = app.gql(Some(&key), SEND, json!({ "u": users[0] })).await;
    assert_eq!(over.error_code(), "RATE_LIMITED", "{}", over.body);
}

#[tokio::test]
async fn parallel_sends_on_two_instances_against_an_sms_budget_send_exactly_the_budget() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app, "Acme").await;
    let users: Vec<String> = (0..20).map(|i| format!("sms{i}")).collect();
    let (app_ref, key_ref) = (&app, key.as_str());
    for chunk in users.chunks(10) {
        join_all(chunk.iter().map(|u| async move {
            let i: usize = u["sms".len()..].parse().unwrap();
            enroll(app_ref, key_ref, u, &format!("+995555{:06}", 100_000 + i)).await
        }))
        .await;
    }
    set_policy(&app, &admin, "smsHourlyBudget: 25").await;
    // Half the requests reach a second instance: the budget is counted in the database, not in
    // either process. (Its outbox is drained by the first instance's worker.)
    let other = without_worker(&app).await;
    let (sent, limited) = send_all_at_once(&[&app, &other], &key, &users).await;
    assert_eq!((sent, limited), (5, 15));
    drain(&app).await;
    assert_eq!(
        app.twilio.delivered().len(),
        25,
        "exactly five sign-in texts"
    );
}

#[tokio::test]
async fn a_retried_send_does_not_consume_the_budget() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app, "Acme").await;
    let users = users_with_email(&app, &key, "retry", 3).await;
    // Concurrent copies of one request (a client retrying before its first try answered): each
    // holds a slot while it runs, but only the one that issues the code keeps it.
    let answers =
        join_all((0..3).map(|_| app.gql(Some(&key), SEND, json!({ "u": users[0], "i": "req-1" }))))
            .await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|a| a.data()["sendCode"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "every copy gets the same challenge");
    // Three verification mails and one sign-in code so far: with a budget of five, one more.
    set_policy(&app, &admin, "emailHourlyBudget: 5").await;
    app.gql(Some(&key), SEND, json!({ "u": users[1] }))
        .await
        .data();
    let over = app.gql(Some(&key), SEND, json!({ "u": users[2] })).await;
    assert_eq!(over.error_code(), "RATE_LIMITED");
    // The budget is spent, but a retry still gets its open challenge.
    let again = app
        .gql(Some(&key), SEND, json!({ "u": users[0], "i": "req-1" }))
        .await;
    assert_eq!(
        again.data()["sendCode"]["id"].as_str(),
        ids.iter().next().map(String::as_str)
    );
    drain(&app).await;
    assert_eq!(app.smtp.messages().len(), 5);
}

#[tokio::test]
async fn the_email_budget_is_part_of_the_policy_and_refuses_beyond_it() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app, "Acme").await;
    let p = app
        .gql(
            Some(&admin),
            "{ tenant { policy { emailHourlyBudget smsHourlyBudget } } }",
            json!({}),
        )
        .await;
    assert_eq!(p.data()["tenant"]["policy"]["emailHourlyBudget"], 10_000);
    let bad = app
        .gql(
            Some(&admin),
            "mutation { setPolicy(input: { emailHourlyBudget: -1 }) { emailHourlyBudget } }",
            json!({}),
        )
        .await;
    assert_eq!(bad.error_code(), "INVALID_INPUT");
    set_policy(&app, &admin, "emailHourlyBudget: 1").await;
    app.gql(
        Some(&key),
        ADD_EMAIL,
        json!({ "u": "a", "e": "a@example.com" }),
    )
    .await
    .data();
    let second = app
        .gql(
            Some(&key),
            ADD_EMAIL,
            json!({ "u": "b", "e": "b@example.com" }),
        )
        .await;
    assert_eq!(second.error_code(), "RATE_LIMITED");
    assert!(second.error_message().contains("hourly email budget"));
    // SMS has its own budget.
    app.gql(
        Some(&key),
        ADD_PHONE,
        json!({ "u": "b", "p": "+995 555 12 12 12" }),
    )
    .await
    .data();
}

#[tokio::test]
async fn the_operator_caps_what_a_tenant_may_set_as_its_budgets() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app, "Acme").await;
    // A stolen ADMIN key cannot raise the toll-fraud budget on the operator's accounts.
    let ceilings = twofold_services::BudgetCeilings::default();
    for (field, ceiling) in [
        ("smsHourlyBudget", ceilings.sms),
        ("emailHourlyBudget", ceilings.email),
    ] {
        let refused = app
            .gql(
                Some(&admin),
                &format!(
                    "mutation {{ setPolicy(input: {{ {field}: {} }}) {{ {field} }} }}",
                    ceiling + 1
                ),
                json!({}),
            )
            .await;
        assert_eq!(refused.error_code(), "INVALID_INPUT", "{}", refused.body);
        assert!(refused.error_message().contains(field), "{}", refused.body);
        set_policy(&app, &admin, &format!("{field}: {ceiling}")).await;
    }
    set_policy(&app, &admin, "emailHourlyBudget: 3").await;
    // An instance whose operator lowered the ceiling holds the budget set before to it.
    let lowered = spawn_instance_of(
        &app,
        TestOptions {
            ceilings: twofold_services::BudgetCeilings {
                email: 1,
                ..ceilings
            },
            ..TestOptions::default()
        },
    )
    .await;
    lowered
        .gql(
            Some(&key),
            ADD_EMAIL,
            json!({ "u": "a", "e": "a@example.com" }),
        )
        .await
        .data();
    let second = lowered
        .gql(
            Some(&key),
            ADD_EMAIL,
            json!({ "u": "b", "e": "b@example.com" }),
        )
        .await;
    assert_eq!(second.error_code(), "RATE_LIMITED", "{}", second.body);
    assert!(second.error_message().contains("hourly email budget"));
}

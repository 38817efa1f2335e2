//! Toll fraud and mail bombing: a destination gets at most 5 codes per 10 minutes per tenant and
//! 10 across tenants, whichever user it is registered to; the tenant's hourly SMS and email
//! budgets hold exactly under concurrency; disabling or resetting 2FA forgets nothing.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};
use twofold_tests::fakes::extract_code;
use twofold_tests::{spawn_app, spawn_instance_of, Answer, TestApp, TestOptions};

const ADD_EMAIL: &str = "mutation($u: ID!, $e: String!) { addEmail(userId: $u, email: $e) { id } }";
const ADD_PHONE: &str = "mutation($u: ID!, $p: String!) { addPhone(userId: $u, phone: $p) { id } }";
const CONFIRM: &str = "mutation($u: ID!, $c: ID!, $k: String!) { confirmChannel(userId: $u, challengeId: $c, code: $k) { codes } }";
const SEND: &str = "mutation($u: ID!, $ch: Channel, $i: String) { sendCode(userId: $u, channel: $ch, idempotencyKey: $i) { id } }";
const DISABLE: &str = "mutation($u: ID!, $k: String!) { disableTwoFactor(userId: $u, method: RECOVERY_CODE, code: $k) { enabled } }";
const RESET: &str =
    "mutation($u: ID!) { resetTwoFactor(userId: $u, reason: \"lost phone\") { enabled } }";

const WAIT: Duration = Duration::from_secs(30);

async fn tenant(app: &TestApp, name: &str) -> (String, String) {
    let (_, admin) = app.create_tenant(name).await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    (admin, key)
}

async fn set_policy(app: &TestApp, admin: &str, input: &str) {
    app.gql(
        Some(admin),
        &format!("mutation {{ setPolicy(input: {{ {input} }}) {{ smsHourlyBudget }} }}"),
        json!({}),
    )
    .await
    .data();
}

/// Waits until every code issued so far has left the outbox (delivered or given up): after
/// that, the sinks hold everything that will ever be sent for them.
async fn drain(app: &TestApp) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let issued: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'CodeSent'")
                .fetch_one(&app.db)
                .await
                .unwrap();
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status <> 'pending'")
                .fetch_one(&app.db)
                .await
                .unwrap();
        if done >= issued {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "outbox not drained: {done} of {issued} codes done"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

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

/// What each message sent to `destination` (an address or an E.164 number) said, oldest first.
fn texts_to(app: &TestApp, destination: &str) -> Vec<String> {
    let mails = app
        .smtp
        .messages()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == destination))
        .map(|m| m.text().unwrap_or(m.data));
    let sms = app
        .twilio
        .delivered()
        .into_iter()
        .filter(|r| r.to == destination)
        .map(|r| r.body);
    mails.chain(sms).collect()
}

/// The code of the `n`-th (0-based) message sent to `destination`.
async fn code_sent_to(app: &TestApp, destination: &str, n: usize) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let texts = texts_to(app, destination);
        if let Some(code) = texts.get(n).and_then(|t| extract_code(t, 6)) {
            return code;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no code reached {destination}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Registers and confirms `destination` (email when it holds `@`, else a phone in E.164) for
/// `user`; returns the recovery codes.
async fn enroll(app: &TestApp, key: &str, user: &str, destination: &str) -> Vec<String> {
    let (add, var, field) = if destination.contains('@') {
        (ADD_EMAIL, "e", "addEmail")
    } else {
        (ADD_PHONE, "p", "addPhone")
    };
    let before = texts_to(app, destination).len();
    let a = app
        .gql(Some(key), add, json!({ "u": user, var: destination }))
        .await;
    let challenge = a.data()[field]["id"].clone();
    let code = code_sent_to(app, destination, before).await;
    let c = app
        .gql(
            Some(key),
            CONFIRM,
            json!({ "u": user, "c": challenge, "k": code }),
        )
        .await;
    c.data()["confirmChannel"]["codes"]
        .as_array()
        .map(|a| a.iter().map(|c| c.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
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
    let other = spawn_instance_of(
        &app,
        TestOptions {
            run_worker: false,
            ..TestOptions::default()
        },
    )
    .await;
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

#[tokio::test]
async fn expired_reservations_are_pruned() {
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
    let kept: Vec<Value> = sqlx::query_scalar("SELECT to_jsonb(bucket) FROM send_reservations")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(
        kept.iter()
            .all(|b| !b.as_str().unwrap().contains("example.com")),
        "destinations are never stored in clear: {kept:?}"
    );
}

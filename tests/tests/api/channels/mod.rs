//! One-time codes by email and SMS, end to end: real SMTP into an in-process server, SMS into an
//! in-process Twilio-compatible API, codes read from what they received.

use std::time::Duration;

use serde_json::{json, Value};
use twofold_tests::fakes::extract_code;
use twofold_tests::{spawn_app, spawn_app_with, spawn_instance_of, Answer, TestApp, TestOptions};

const ADD_EMAIL: &str = "mutation($u: ID!, $e: String!) { addEmail(userId: $u, email: $e) { id channel purpose sentTo expiresAt } }";
const ADD_PHONE: &str = "mutation($u: ID!, $p: String!) { addPhone(userId: $u, phone: $p) { id channel purpose sentTo expiresAt } }";
const CONFIRM: &str = "mutation($u: ID!, $c: ID!, $k: String!) { confirmChannel(userId: $u, challengeId: $c, code: $k) { codes } }";
const SEND: &str = "mutation($u: ID!, $ch: Channel, $i: String) { sendCode(userId: $u, channel: $ch, idempotencyKey: $i) { id channel purpose sentTo expiresAt } }";
const VERIFY: &str = "mutation($u: ID!, $m: Method!, $k: String!, $c: ID) { verify(userId: $u, method: $m, code: $k, challengeId: $c) { method recoveryCodesRemaining } }";
const STATUS: &str = "query($u: ID!) { user(userId: $u) { enabled methods email emailVerified phone phoneVerified preferredChannel } }";

const WAIT: Duration = Duration::from_secs(20);

async fn tenant(app: &TestApp) -> (String, String) {
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    (admin, key)
}

async fn gql(app: &TestApp, key: &str, q: &str, v: Value) -> Answer {
    app.gql(Some(key), q, v).await
}

/// The code of the `n`-th mail (1-based) the SMTP server received.
pub(crate) async fn mailed_code(app: &TestApp, n: usize) -> String {
    let mails = app.smtp.wait_for(n, WAIT).await;
    let text = mails[n - 1]
        .text()
        .unwrap_or_else(|| mails[n - 1].data.clone());
    extract_code(&text, 6).expect("a six-digit code in the mail")
}

/// The code of the `n`-th SMS the provider accepted.
pub(crate) async fn texted_code(app: &TestApp, n: usize) -> String {
    let sms = app.twilio.wait_for_delivered(n, WAIT).await;
    extract_code(&sms[n - 1].body, 6).expect("a six-digit code in the SMS")
}

#[tokio::test]
async fn email_enrollment_and_sign_in() {
    let app = spawn_app().await;
    let (_, key) = tenant(&app).await;
    let c = gql(
        &app,
        &key,
        ADD_EMAIL,
        json!({ "u": "amy", "e": "Amy.Smith@Example.com" }),
    )
    .await;
    let challenge = c.data()["addEmail"].clone();
    assert_eq!(challenge["channel"], "EMAIL");
    assert_eq!(challenge["purpose"], "VERIFY_CHANNEL");
    assert_eq!(challenge["sentTo"], "A***@example.com");

    let mails = app.smtp.wait_for(1, WAIT).await;
    assert!(
        mails[0].to.iter().any(|t| t == "Amy.Smith@example.com"),
        "{:?}",
        mails[0].to
    );
    assert!(
        mails[0].text().unwrap_or_default().contains("Acme"),
        "the mail names the tenant"
    );
    let code = mailed_code(&app, 1).await;

    let wrong = gql(
        &app,
        &key,
        CONFIRM,
        json!({ "u": "amy", "c": challenge["id"], "k": "000000" }),
    )
    .await;
    if code != "000000" {
        assert_eq!(wrong.error_code(), "INVALID_CODE");
    }
    let ok = gql(
        &app,
        &key,
        CONFIRM,
        json!({ "u": "amy", "c": challenge["id"], "k": code }),
    )
    .await;
    assert_eq!(
        ok.data()["confirmChannel"]["codes"]
            .as_array()
            .unwrap()
            .len(),
        10,
        "first factor: recovery codes"
    );

    let s = gql(&app, &key, STATUS, json!({ "u": "amy" })).await;
    assert_eq!(
        s.data()["user"],
        json!({ "enabled": true, "methods": ["EMAIL", "RECOVERY_CODE"], "email": "A***@example.com",
                "emailVerified": true, "phone": null, "phoneVerified": false, "preferredChannel": "EMAIL" })
    );

    // Sign-in by the preferred channel.
    let sent = gql(&app, &key, SEND, json!({ "u": "amy" })).await;
    let sign_in = sent.data()["sendCode"].clone();
    assert_eq!(
        (sign_in["channel"].as_str(), sign_in["purpose"].as_str()),
        (Some("EMAIL"), Some("SIGN_IN"))
    );
    let code = mailed_code(&app, 2).await;
    let v = gql(
        &app,
        &key,
        VERIFY,
        json!({ "u": "amy", "m": "EMAIL", "k": code, "c": sign_in["id"] }),
    )
    .await;
    assert_eq!(v.data()["verify"]["method"], "EMAIL");
    let again = gql(
        &app,
        &key,
        VERIFY,
        json!({ "u": "amy", "m": "EMAIL", "k": code, "c": sign_in["id"] }),
    )
    .await;
    assert_eq!(again.error_code(), "CODE_EXPIRED", "single use");
    let missing = gql(
        &app,
        &key,
        VERIFY,
        json!({ "u": "amy", "m": "EMAIL", "k": code, "c": null }),
    )
    .await;
    assert_eq!(missing.error_code(), "INVALID_INPUT");

    // Each code was delivered once and recorded.
    app.wait_for_events("%/user/amy", "CodeDelivered", 2).await;
    assert_eq!(app.smtp.messages().len(), 2);
}

#[tokio::test]
async fn phone_numbers_are_validated_and_sms_goes_through_the_provider() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app).await;
    gql(
        &app,
        &admin,
        "mutation { setPolicy(input: { allowedCallingCodes: [\"995\"] }) { allowedCallingCodes } }",
        json!({}),
    )
    .await
    .data();
    for (phone, message) in [
        ("555 12 34 56", "country code"),
        ("+995 12", "not a valid phone number"),
        ("+995 32 212 34 56", "fixed-line"),
        (
            "+44 7911 123456",
            "+44 are not accepted here; allowed: +995",
        ),
    ] {
        let a = gql(&app, &key, ADD_PHONE, json!({ "u": "bo", "p": phone })).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{phone}");
        assert!(
            a.error_message().contains(message),
            "{phone}: {}",
            a.error_message()
        );
    }
    assert_eq!(
        app.count_events_like("%/user/bo", "PhoneFactorAdded").await,
        0
    );

    let c = gql(
        &app,
        &key,
        ADD_PHONE,
        json!({ "u": "bo", "p": "+995 555 12 34 56" }),
    )
    .await;
    let challenge = c.data()["addPhone"].clone();
    assert_eq!(challenge["sentTo"], "+995 *** ** 34 56");
    let sms = app.twilio.wait_for_delivered(1, WAIT).await;
    assert_eq!(sms[0].to, "+995555123456");
    assert_eq!(
        sms[0].idempotency_token.as_deref(),
        challenge["id"].as_str()
    );
    let code = texted_code(&app, 1).await;
    gql(
        &app,
        &key,
        CONFIRM,
        json!({ "u": "bo", "c": challenge["id"], "k": code }),
    )
    .await
    .data();

    let sent = gql(&app, &key, SEND, json!({ "u": "bo", "ch": "SMS" })).await;
    let id = sent.data()["sendCode"]["id"].clone();
    let code = texted_code(&app, 2).await;
    let v = gql(
        &app,
        &key,
        VERIFY,
        json!({ "u": "bo", "m": "SMS", "k": code, "c": id }),
    )
    .await;
    assert_eq!(v.data()["verify"]["method"], "SMS");
    let payload: Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'CodeDelivered' ORDER BY global_position DESC LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(payload["CodeDelivered"]["provider_message_id"]
        .as_str()
        .unwrap()
        .starts_with("SM"));
}

#[tokio::test]
async fn five_wrong_codes_end_a_challenge_and_count_toward_the_lockout() {
    let app = spawn_app().await;
    let (_, key) = tenant(&app).await;
    let c = gql(
        &app,
        &key,
        ADD_EMAIL,
        json!({ "u": "cy", "e": "cy@example.com" }),
    )
    .await;
    let id = c.data()["addEmail"]["id"].clone();
    let code = mailed_code(&app, 1).await;
    let wrong = if code == "111111" { "222222" } else { "111111" };
    for i in 1..=5u32 {
        let a = gql(
            &app,
            &key,
            CONFIRM,
            json!({ "u": "cy", "c": id, "k": wrong }),
        )
        .await;
        assert_eq!(a.error_code(), "INVALID_CODE");
        assert_eq!(
            a.body["errors"][0]["extensions"]["remainingAttempts"],
            10 - i
        );
    }
    let a = gql(
        &app,
        &key,
        CONFIRM,
        json!({ "u": "cy", "c": id, "k": code }),
    )
    .await;
    assert_eq!(
        a.error_code(),
        "CODE_EXPIRED",
        "the right code no longer works either"
    );
}

#[tokio::test]
async fn retries_and_resends_reuse_the_challenge_and_sends_are_rate_limited() {
    let app = spawn_app().await;
    let (_, key) = tenant(&app).await;
    let c = gql(
        &app,
        &key,
        ADD_EMAIL,
        json!({ "u": "di", "e": "di@example.com" }),
    )
    .await;
    let id = c.data()["addEmail"]["id"].clone();
    let code = mailed_code(&app, 1).await;
    gql(
        &app,
        &key,
        CONFIRM,
        json!({ "u": "di", "c": id, "k": code }),
    )
    .await
    .data();

    // A retried request with the same idempotency key, and a resend within 30 s, get the same
    // challenge and no second message.
    let first = gql(&app, &key, SEND, json!({ "u": "di", "i": "login-1" })).await;
    let retry = gql(&app, &key, SEND, json!({ "u": "di", "i": "login-1" })).await;
    let resend = gql(&app, &key, SEND, json!({ "u": "di" })).await;
    let first_id = first.data()["sendCode"]["id"].clone();
    assert_eq!(retry.data()["sendCode"]["id"], first_id);
    assert_eq!(resend.data()["sendCode"]["id"], first_id);
    let mut mails = 2;
    app.smtp.wait_for(mails, WAIT).await;

    // Using a code closes its challenge, so the next send is a new code; the fifth code to one
    // destination in ten minutes is the last.
    let mut challenge = first_id;
    for _ in 0..3 {
        let code = mailed_code(&app, mails).await;
        gql(
            &app,
            &key,
            VERIFY,
            json!({ "u": "di", "m": "EMAIL", "k": code, "c": challenge }),
        )
        .await
        .data();
        let next = gql(&app, &key, SEND, json!({ "u": "di" })).await;
        challenge = next.data()["sendCode"]["id"].clone();
        mails += 1;
    }
    let code = mailed_code(&app, mails).await;
    gql(
        &app,
        &key,
        VERIFY,
        json!({ "u": "di", "m": "EMAIL", "k": code, "c": challenge }),
    )
    .await
    .data();
    let limited = gql(&app, &key, SEND, json!({ "u": "di" })).await;
    assert_eq!(limited.error_code(), "RATE_LIMITED");
    let retry_after = limited.body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_i64()
        .unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    assert_eq!(app.smtp.messages().len(), 5);
}

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

#[tokio::test]
async fn the_tenants_hourly_sms_budget_caps_sms_sends() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app).await;
    let set = gql(
        &app,
        &admin,
        "mutation { setPolicy(input: { smsHourlyBudget: 2 }) { smsHourlyBudget } }",
        json!({}),
    )
    .await;
    assert_eq!(set.data()["setPolicy"]["smsHourlyBudget"], 2);
    for (user, phone) in [("h1", "+995 555 11 11 11"), ("h2", "+995 555 22 22 22")] {
        gql(&app, &key, ADD_PHONE, json!({ "u": user, "p": phone }))
            .await
            .data();
    }
    let third = gql(
        &app,
        &key,
        ADD_PHONE,
        json!({ "u": "h3", "p": "+995 555 33 33 33" }),
    )
    .await;
    assert_eq!(third.error_code(), "RATE_LIMITED");
    assert!(third.error_message().contains("hourly SMS budget"));
    assert!(
        third.body["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_i64()
            .unwrap()
            > 0
    );
    // Email is not SMS: it still works.
    gql(
        &app,
        &key,
        ADD_EMAIL,
        json!({ "u": "h3", "e": "h3@example.com" }),
    )
    .await
    .data();
    assert_eq!(
        app.count_events_like("%/user/h3", "PhoneFactorAdded").await,
        0
    );
}

#[tokio::test]
async fn a_channel_the_policy_no_longer_allows_cannot_be_confirmed_or_preferred() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app).await;
    let c = gql(
        &app,
        &key,
        ADD_EMAIL,
        json!({ "u": "ivo", "e": "ivo@example.com" }),
    )
    .await;
    let id = c.data()["addEmail"]["id"].clone();
    let code = mailed_code(&app, 1).await;
    gql(&app, &admin, "mutation { setPolicy(input: { allowedMethods: [TOTP, SMS, RECOVERY_CODE] }) { allowedMethods } }", json!({})).await.data();
    let a = gql(
        &app,
        &key,
        CONFIRM,
        json!({ "u": "ivo", "c": id, "k": code }),
    )
    .await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION");
    let a = gql(
        &app,
        &key,
        "mutation { setPreferredChannel(userId: \"ivo\", channel: EMAIL) { preferredChannel } }",
        json!({}),
    )
    .await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION");
    assert_eq!(
        app.count_events_like("%/user/ivo", "ChannelVerified").await,
        0
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

//! The rules on challenges and sends: attempts per challenge, idempotent and resent sends, the
//! per-destination limit and the tenant's SMS budget.

use serde_json::json;
use twofold_tests::{spawn_app, spawn_instance_of, TestOptions};

use super::{gql, mailed_code, tenant, ADD_EMAIL, ADD_PHONE, CONFIRM, SEND, VERIFY, WAIT};

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

// `sendCode` reads the user from this instance's memory only once the database confirms it is
// current: a code used on another instance is not handed back as the open challenge.
#[tokio::test]
async fn a_code_used_on_another_instance_is_not_handed_back_as_open() {
    let a = spawn_app().await;
    let b = spawn_instance_of(
        &a,
        TestOptions {
            run_worker: false,
            ..TestOptions::default()
        },
    )
    .await;
    let (_, key) = tenant(&a).await;
    let added = gql(
        &a,
        &key,
        ADD_EMAIL,
        json!({ "u": "rita", "e": "rita@example.com" }),
    )
    .await;
    let id = added.data()["addEmail"]["id"].as_str().unwrap().to_owned();
    let code = mailed_code(&a, 1).await;
    gql(
        &a,
        &key,
        CONFIRM,
        json!({ "u": "rita", "c": id, "k": code }),
    )
    .await
    .data();
    let sent = gql(&a, &key, SEND, json!({ "u": "rita", "ch": "EMAIL" })).await;
    let first = sent.data()["sendCode"]["id"].as_str().unwrap().to_owned();
    let code = mailed_code(&a, 2).await;
    let used = gql(
        &b,
        &key,
        VERIFY,
        json!({ "u": "rita", "m": "EMAIL", "k": code, "c": first }),
    )
    .await;
    assert_eq!(used.data()["verify"]["method"], "EMAIL", "{:?}", used.body);

    let again = gql(&a, &key, SEND, json!({ "u": "rita", "ch": "EMAIL" })).await;
    assert_ne!(
        again.data()["sendCode"]["id"].as_str().unwrap(),
        first,
        "a spent code was handed back as the open challenge"
    );
}

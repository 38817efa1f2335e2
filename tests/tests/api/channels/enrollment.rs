//! Adding an email address or a phone number, confirming it with the code it received, and
//! signing in with a code sent to it.

use serde_json::{json, Value};
use twofold_tests::spawn_app;

use super::{
    gql, mailed_code, tenant, texted_code, ADD_EMAIL, ADD_PHONE, CONFIRM, SEND, STATUS, VERIFY,
    WAIT,
};

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

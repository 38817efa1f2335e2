//! `testDelivery` through each channel, its rate limit and audit record, and who may see and
//! change the settings.

use serde_json::json;
use twofold_tests::fakes::{FakeTwilio, FakeWebhook, SmtpCapture};
use twofold_tests::spawn_app;

use super::*;

const HOOK_SECRET: &str = "whsec-never-shown-0123";

#[tokio::test]
async fn test_messages_go_through_each_channel_and_are_audited_masked() {
    let app = spawn_app().await;
    let own = SmtpCapture::start();
    let twilio = FakeTwilio::start_with_credentials(&sid("d4"), &token("d4"), vec![400]);
    let hook = FakeWebhook::start(HOOK_SECRET);
    let (_, admin, _) = tenant(&app, "Delta").await;

    // Nothing of its own yet: nothing to test.
    let none = app
        .gql(
            Some(&admin),
            TEST,
            json!({ "c": "EMAIL", "d": "dan@example.com" }),
        )
        .await;
    assert_eq!(none.error_code(), "INVALID_INPUT", "{}", none.body);

    set(
        &app,
        &admin,
        own_settings("Delta", &own.url(), &twilio.base_url(), "d4"),
    )
    .await
    .data();
    let mail = app
        .gql(
            Some(&admin),
            TEST,
            json!({ "c": "EMAIL", "d": "dan@example.com" }),
        )
        .await;
    let mail = &mail.data()["testDelivery"];
    assert_eq!(mail["delivered"], true, "{mail}");
    assert!(mail["providerMessageId"].is_string(), "{mail}");
    let received = own.wait_for(1, WAIT).await;
    assert_eq!(received[0].to, vec!["dan@example.com".to_owned()]);
    // A test says it is one and holds no code anyone could take for a sign-in.
    assert_eq!(
        received[0].header("Subject").as_deref(),
        Some("Test message from Delta")
    );
    assert!(!received[0].data.contains("000000"), "{}", received[0].data);
    assert!(
        app.smtp.messages().is_empty(),
        "not through the service's server"
    );

    // The fake refuses the first SMS (400): reported, not retried.
    let refused = app
        .gql(
            Some(&admin),
            TEST,
            json!({ "c": "SMS", "d": "+995 555 12 34 56" }),
        )
        .await;
    let refused = &refused.data()["testDelivery"];
    assert_eq!(refused["delivered"], false, "{refused}");
    assert_eq!(refused["retryable"], false, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("400"),
        "{refused}"
    );
    let sent = app
        .gql(
            Some(&admin),
            TEST,
            json!({ "c": "SMS", "d": "+995 555 12 34 56" }),
        )
        .await;
    assert_eq!(sent.data()["testDelivery"]["delivered"], true);
    let requests = twilio.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1].body.starts_with("Test message from"),
        "{}",
        requests[1].body
    );
    assert_eq!(requests[1].basic_auth, Some((sid("d4"), token("d4"))));

    // The webhook instead of Twilio.
    set(
        &app,
        &admin,
        json!({ "sms": { "webhook": { "url": format!("{}?token=hooktoken123", hook.url()), "secret": HOOK_SECRET } } }),
    )
    .await
    .data();
    let hooked = app
        .gql(
            Some(&admin),
            TEST,
            json!({ "c": "SMS", "d": "+995 555 12 34 56" }),
        )
        .await;
    assert_eq!(
        hooked.data()["testDelivery"]["delivered"],
        true,
        "{}",
        hooked.body
    );
    let calls = hook.wait_for(1, WAIT).await;
    assert!(calls[0].signature_valid, "signed with the tenant's secret");
    // The email settings were replaced (left out): email is the service's again.
    let read = app.gql(Some(&admin), READ, json!({})).await;
    let read = &read.data()["tenant"]["deliverySettings"];
    assert_eq!(read["email"], serde_json::Value::Null);
    assert_eq!(read["sms"]["webhookHost"], "127.0.0.1");
    assert_eq!(read["version"], 2);

    // Audited, masked: no destination, no credential. The history shows events below the commit
    // horizon (decision 52): the last test's event appears once the transactions that were open
    // when it committed (the processor's, another write's) have ended.
    let deadline = std::time::Instant::now() + WAIT;
    let audit = loop {
        let audit = app
            .gql(
                Some(&admin),
                "query { auditEvents(first: 50, filter: { eventTypes: [\"DeliveryTested\"] }) { nodes { data } } }",
                json!({}),
            )
            .await;
        let audit = audit.data()["auditEvents"]["nodes"].clone();
        if audit.as_array().unwrap().len() >= 4 || std::time::Instant::now() > deadline {
            break audit;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(audit.as_array().unwrap().len(), 4, "{audit}");
    let text = audit.to_string();
    assert!(text.contains("d***@example.com"), "{text}");
    for secret in [
        "dan@example.com",
        "555123456",
        HOOK_SECRET,
        "hooktoken123",
        &token("d4"),
    ] {
        assert!(!text.contains(secret), "{secret}: {text}");
        assert!(
            !all_events(&app).await.contains(secret),
            "{secret} in the events"
        );
    }
}

#[tokio::test]
async fn test_messages_are_rate_limited() {
    let app = spawn_app().await;
    let hook = FakeWebhook::start(HOOK_SECRET);
    let (_, admin, _) = tenant(&app, "Echo").await;
    set(
        &app,
        &admin,
        json!({ "sms": { "webhook": { "url": hook.url(), "secret": HOOK_SECRET } } }),
    )
    .await
    .data();
    for _ in 0..10 {
        app.gql(
            Some(&admin),
            TEST,
            json!({ "c": "SMS", "d": "+995 555 12 34 56" }),
        )
        .await
        .data();
    }
    let limited = app
        .gql(
            Some(&admin),
            TEST,
            json!({ "c": "SMS", "d": "+995 555 12 34 56" }),
        )
        .await;
    assert_eq!(limited.error_code(), "RATE_LIMITED", "{}", limited.body);
    assert_eq!(hook.requests().len(), 10);
}

#[tokio::test]
async fn auditors_read_masked_settings_apps_do_not_and_only_admins_change_or_test() {
    let app = spawn_app().await;
    let hook = FakeWebhook::start(HOOK_SECRET);
    let (_, admin, app_key) = tenant(&app, "Foxtrot").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    let input = json!({ "sms": { "webhook": { "url": hook.url(), "secret": HOOK_SECRET } } });
    set(&app, &admin, input.clone()).await.data();

    let read = app.gql(Some(&auditor), READ, json!({})).await;
    assert_eq!(
        read.data()["tenant"]["deliverySettings"]["sms"]["provider"],
        "WEBHOOK"
    );
    assert!(!read.body.to_string().contains(HOOK_SECRET));
    let read = app.gql(Some(&app_key), READ, json!({})).await;
    assert_eq!(read.error_code(), "FORBIDDEN", "{}", read.body);
    for key in [&auditor, &app_key] {
        assert_eq!(
            set(&app, key, input.clone()).await.error_code(),
            "FORBIDDEN"
        );
        let t = app
            .gql(
                Some(key),
                TEST,
                json!({ "c": "SMS", "d": "+995 555 12 34 56" }),
            )
            .await;
        assert_eq!(t.error_code(), "FORBIDDEN");
        let c = app
            .gql(Some(key), "mutation { clearDeliverySettings }", json!({}))
            .await;
        assert_eq!(c.error_code(), "FORBIDDEN");
    }
    // The APP key still reads the rest of the tenant.
    let name = app
        .gql(Some(&app_key), "query { tenant { name } }", json!({}))
        .await;
    assert_eq!(name.data()["tenant"]["name"], "Foxtrot");
}

/// A tenant that sends through a Twilio Messaging Service (no From number) gets its test
/// messages, and so its notices, through that service: the notice path once sent an empty
/// `From` and no `MessagingServiceSid`.
#[tokio::test]
async fn a_messaging_service_carries_notices_too() {
    let app = spawn_app().await;
    let twilio = FakeTwilio::start_with_credentials(&sid("m5"), &token("m5"), vec![]);
    let (_, admin, _) = tenant(&app, "Mike").await;
    let service = format!("MG{}", "5".repeat(32));
    set(
        &app,
        &admin,
        json!({ "sms": { "twilio": {
            "accountSid": sid("m5"), "authToken": token("m5"),
            "messagingServiceSid": service, "apiBase": twilio.base_url(),
        } } }),
    )
    .await
    .data();
    let sent = app
        .gql(
            Some(&admin),
            TEST,
            json!({ "c": "SMS", "d": "+995 555 12 34 56" }),
        )
        .await;
    assert_eq!(
        sent.data()["testDelivery"]["delivered"],
        true,
        "{}",
        sent.body
    );
    let requests = twilio.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].messaging_service_sid.as_deref(),
        Some(service.as_str())
    );
    assert_eq!(requests[0].from, "", "no empty From beside the service");
}

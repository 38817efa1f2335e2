//! Two tenants with their own SMTP servers and Twilio accounts each get only their own traffic;
//! a tenant without settings keeps the service's; no credential shows anywhere.

use serde_json::json;
use twofold_tests::fakes::{FakeTwilio, SmtpCapture};
use twofold_tests::{captured_logs, spawn_app};

use super::*;

#[tokio::test]
async fn each_tenant_gets_only_its_own_traffic_and_credentials_never_show() {
    let app = spawn_app().await;
    let (smtp_a, smtp_b) = (SmtpCapture::start(), SmtpCapture::start());
    let twilio_a = FakeTwilio::start_with_credentials(&sid("a1"), &token("a1"), vec![]);
    let twilio_b = FakeTwilio::start_with_credentials(&sid("b2"), &token("b2"), vec![]);
    let (_, admin_a, key_a) = tenant(&app, "Tenant A").await;
    let (_, admin_b, key_b) = tenant(&app, "Tenant B").await;
    let (_, _, key_c) = tenant(&app, "Tenant C").await;

    let a = set(
        &app,
        &admin_a,
        own_settings("Alpha Mail", &smtp_a.url(), &twilio_a.base_url(), "a1"),
    )
    .await;
    let shown = a.data()["setDeliverySettings"].clone();
    assert_eq!(shown["senderName"], "Alpha Mail");
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["email"]["security"], "PLAIN");
    assert_eq!(shown["email"]["from"], "codes@a1.example");
    assert_eq!(shown["sms"]["provider"], "TWILIO");
    assert_eq!(shown["sms"]["twilio"]["accountSid"], "AC…a1a1");
    assert_eq!(shown["sms"]["twilio"]["apiBaseHost"], "127.0.0.1");
    set(
        &app,
        &admin_b,
        own_settings("Beta Mail", &smtp_b.url(), &twilio_b.base_url(), "b2"),
    )
    .await
    .data();

    for (key, user) in [(&key_a, "ann"), (&key_b, "bob"), (&key_c, "cid")] {
        app.gql(
            Some(key),
            ADD_EMAIL,
            json!({ "u": user, "e": format!("{user}@example.com") }),
        )
        .await
        .data();
        app.gql(
            Some(key),
            ADD_PHONE,
            json!({ "u": user, "p": "+995 555 12 34 56" }),
        )
        .await
        .data();
    }
    app.wait_for_events("%/user/%", "CodeDelivered", 6).await;

    let only = |mails: Vec<twofold_tests::fakes::ReceivedMail>, user: &str| {
        assert_eq!(mails.len(), 1, "{user}: {mails:#?}");
        assert_eq!(mails[0].to, vec![format!("{user}@example.com")]);
        mails[0].clone()
    };
    let mail_a = only(smtp_a.messages(), "ann");
    only(smtp_b.messages(), "bob");
    only(app.smtp.messages(), "cid");
    // The tenant's From and sender name, not the service's.
    assert_eq!(mail_a.from, "codes@a1.example");
    // The greeting names the From domain, never this machine's host name.
    assert_eq!(mail_a.helo, "a1.example");
    assert!(
        mail_a
            .header("From")
            .unwrap_or_default()
            .contains("Alpha Mail"),
        "{}",
        mail_a.data
    );
    assert!(
        mail_a
            .header("Subject")
            .unwrap_or_default()
            .contains("Alpha Mail"),
        "{}",
        mail_a.data
    );

    for (fake, seed) in [(&twilio_a, "a1"), (&twilio_b, "b2")] {
        let requests = fake.requests();
        assert_eq!(requests.len(), 1, "{seed}: {requests:#?}");
        assert_eq!(requests[0].status, 201);
        assert_eq!(requests[0].account_sid, sid(seed));
        assert_eq!(requests[0].basic_auth, Some((sid(seed), token(seed))));
        assert_eq!(requests[0].to, "+995555123456");
    }
    let service = app.twilio.requests();
    assert_eq!(service.len(), 1, "only tenant C's SMS: {service:#?}");
    assert_eq!(service[0].account_sid, twofold_tests::TWILIO_SID);

    // No credential anywhere: events, logs, the audit history, the read-back.
    let secrets = [sid("a1"), token("a1"), sid("b2"), token("b2")];
    let events = all_events(&app).await;
    let logs = captured_logs();
    let audit = app
        .gql(
            Some(&admin_a),
            "query { auditEvents(first: 100) { nodes { eventType data } } }",
            json!({}),
        )
        .await;
    let audit = audit.data().to_string();
    assert!(audit.contains("\"credentials\":\"changed\""), "{audit}");
    let read = app.gql(Some(&admin_a), READ, json!({})).await;
    let read = read.data().to_string();
    assert!(read.contains("AC…a1a1"), "{read}");
    for secret in &secrets {
        assert!(!events.contains(secret.as_str()), "{secret} in the events");
        assert!(!logs.contains(secret.as_str()), "{secret} in the logs");
        assert!(!audit.contains(secret.as_str()), "{secret} in the audit");
        assert!(!read.contains(secret.as_str()), "{secret} in the read-back");
    }
}

#[tokio::test]
async fn clearing_goes_back_to_the_service_providers_at_once() {
    let app = spawn_app().await;
    let own = SmtpCapture::start();
    let twilio = FakeTwilio::start_with_credentials(&sid("c3"), &token("c3"), vec![]);
    let (_, admin, key) = tenant(&app, "Gamma").await;
    set(
        &app,
        &admin,
        own_settings("Gamma", &own.url(), &twilio.base_url(), "c3"),
    )
    .await
    .data();
    app.gql(
        Some(&key),
        ADD_EMAIL,
        json!({ "u": "gus", "e": "gus@example.com" }),
    )
    .await
    .data();
    own.wait_for(1, WAIT).await;
    let cleared = app
        .gql(
            Some(&admin),
            "mutation { clearDeliverySettings }",
            json!({}),
        )
        .await;
    assert_eq!(cleared.data()["clearDeliverySettings"], true);
    let read = app.gql(Some(&admin), READ, json!({})).await;
    assert_eq!(
        read.data()["tenant"]["deliverySettings"],
        serde_json::Value::Null
    );
    app.gql(
        Some(&key),
        ADD_EMAIL,
        json!({ "u": "guy", "e": "guy@example.com" }),
    )
    .await
    .data();
    app.smtp.wait_for(1, WAIT).await;
    assert_eq!(
        own.messages().len(),
        1,
        "nothing more through the cleared server"
    );
}

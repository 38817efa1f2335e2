//! Refusals: every bad setting is a typed INVALID_INPUT naming its field, echoes no secret and
//! changes nothing; with the operator's allowance off, private, loopback and plain-protocol
//! providers are refused.

use std::sync::Arc;

use serde_json::{json, Value};
use twofold_infra::delivery::tenant::lookups::{Limits, Lookup, Lookups, Resolve};
use twofold_tests::{spawn_app, spawn_app_with, TestApp, TestOptions};

use super::*;

async fn refused(app: &TestApp, admin: &str, tenant: &str, input: Value, field: &str) {
    let a = set(app, admin, input.clone()).await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{input}: {}", a.body);
    let message = a.error_message();
    assert!(message.starts_with(field), "{input}: {message}");
    for secret in ["hunter2pw", "tok-zz-never-shown", "whsec-never-shown-0123"] {
        assert!(!message.contains(secret), "{message}");
    }
    assert_eq!(
        app.count_events(tenant, "DeliverySettingsChanged").await,
        0,
        "{input}: something changed"
    );
}

fn webhook(url: &str) -> Value {
    json!({ "sms": { "webhook": { "url": url, "secret": "whsec-never-shown-0123" } } })
}

fn twilio(extra: Value) -> Value {
    let mut t =
        json!({ "accountSid": sid("zz"), "authToken": token("zz"), "from": "+15005550006" });
    for (k, v) in extra.as_object().unwrap() {
        t[k] = v.clone();
    }
    json!({ "sms": { "twilio": t } })
}

fn smtp(url: &str) -> Value {
    json!({ "email": { "smtpUrl": url, "from": "codes@acme.example" } })
}

#[tokio::test]
async fn bad_settings_are_refused_field_by_field_and_change_nothing() {
    let app = spawn_app().await;
    let (tenant, admin, _) = tenant(&app, "Acme").await;
    let both = json!({ "sms": {
        "twilio": { "accountSid": sid("zz"), "authToken": token("zz"), "from": "+15005550006" },
        "webhook": { "url": "https://sms.acme.example/h", "secret": "whsec-never-shown-0123" },
    } });
    for (input, field) in [
        (both, "sms"),
        (json!({ "sms": {} }), "sms"),
        (
            twilio(json!({ "accountSid": "AC/../x" })),
            "sms.twilio.accountSid",
        ),
        (
            twilio(json!({ "authToken": "short" })),
            "sms.twilio.authToken",
        ),
        (twilio(json!({ "from": null })), "sms.twilio"),
        (
            twilio(json!({ "messagingServiceSid": "MG1" })),
            "sms.twilio.messagingServiceSid",
        ),
        (
            twilio(json!({ "apiBase": "https://u:hunter2pw@api.twilio.example" })),
            "sms.twilio.apiBase",
        ),
        (
            twilio(json!({ "apiBase": "ftp://api.twilio.example" })),
            "sms.twilio.apiBase",
        ),
        (
            webhook("https://sms.acme.example/h#frag"),
            "sms.webhook.url",
        ),
        (
            json!({ "sms": { "webhook": { "url": "https://sms.acme.example/h", "secret": "short" } } }),
            "sms.webhook.secret",
        ),
        (
            smtp("smtp://u:hunter2pw@smtp.acme.example?tls=opportunistic"),
            "email.smtpUrl",
        ),
        (smtp("smtps://u@smtp.acme.example"), "email.smtpUrl"),
        (
            json!({ "email": { "smtpUrl": "smtps://u:hunter2pw@smtp.acme.example", "from": "nope" } }),
            "email.from",
        ),
        (json!({ "senderName": "x".repeat(65) }), "senderName"),
        // Never allowed, even with the development allowance.
        (
            webhook("http://169.254.169.254/latest/meta-data"),
            "sms.webhook.url",
        ),
        (webhook("https://[fd00:ec2::254]/"), "sms.webhook.url"),
    ] {
        refused(&app, &admin, &tenant, input, field).await;
    }
    let read = app.gql(Some(&admin), READ, json!({})).await;
    assert_eq!(read.data()["tenant"]["deliverySettings"], Value::Null);
}

#[tokio::test]
async fn without_the_allowance_private_and_plain_providers_are_refused() {
    let app = spawn_app_with(TestOptions {
        allow_private_provider_urls: false,
        ..TestOptions::default()
    })
    .await;
    let (tenant, admin, _) = tenant(&app, "Acme").await;
    for (input, field) in [
        (smtp(&app.smtp.url()), "email.smtpUrl"),
        (smtp("smtps://u:hunter2pw@127.0.0.1:465"), "email.smtpUrl"),
        (
            smtp("smtp://u:hunter2pw@localhost:587?tls=required"),
            "email.smtpUrl",
        ),
        (smtp("smtps://u:hunter2pw@192.168.1.20"), "email.smtpUrl"),
        (
            twilio(json!({ "apiBase": app.twilio.base_url() })),
            "sms.twilio.apiBase",
        ),
        (
            twilio(json!({ "apiBase": "http://api.twilio.example" })),
            "sms.twilio.apiBase",
        ),
        (
            twilio(json!({ "apiBase": "https://10.1.2.3" })),
            "sms.twilio.apiBase",
        ),
        (webhook("https://localhost/h"), "sms.webhook.url"),
        (webhook("https://[::ffff:127.0.0.1]/h"), "sms.webhook.url"),
        (webhook("https://100.64.0.1/h"), "sms.webhook.url"),
        (webhook("https://0x7f.1/h"), "sms.webhook.url"),
        (webhook("https://intranet/h"), "sms.webhook.url"),
    ] {
        refused(&app, &admin, &tenant, input, field).await;
    }
    // Public names pass the form checks (they do not resolve here: checked again at each send).
    set(
        &app,
        &admin,
        json!({
            "email": { "smtpUrl": "smtps://u:hunter2pw@smtp.acme.example", "from": "codes@acme.example" },
            "sms": { "twilio": { "accountSid": sid("zz"), "authToken": token("zz"), "messagingServiceSid": format!("MG{}", "0".repeat(32)) } },
        }),
    )
    .await
    .data();
    let read = app.gql(Some(&admin), READ, json!({})).await;
    let shown = &read.data()["tenant"]["deliverySettings"];
    assert_eq!(shown["email"]["security"], "TLS");
    assert_eq!(shown["email"]["smtpPort"], 465);
    assert_eq!(shown["sms"]["twilio"]["apiBaseHost"], "api.twilio.com");
}

/// Lookups a tenant whose names go unanswered may hold, and lagging lookups in all.
const SILENT_BOUND: usize = 4;

/// Lookups where `*.silent.example` never answers, as behind a name server that drops every
/// query, and every other name is 127.0.0.1; a caller gives up after 100 ms.
fn silent_name_server() -> Arc<Lookups> {
    let resolve: Resolve = Arc::new(|host: String, port: u16| -> Lookup {
        Box::pin(async move {
            if host.ends_with(".silent.example") {
                std::future::pending::<()>().await;
            }
            Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
        })
    });
    Arc::new(Lookups::with_resolver(
        resolve,
        Limits {
            timeout: Duration::from_millis(100),
            slow: Duration::from_millis(30),
            per_slow_tenant: SILENT_BOUND,
            lagging_in_all: SILENT_BOUND,
            ..Limits::default()
        },
    ))
}

#[tokio::test]
async fn a_tenant_whose_lookups_go_unanswered_is_told_to_retry() {
    let app = spawn_app_with(TestOptions {
        lookups: silent_name_server(),
        ..TestOptions::default()
    })
    .await;
    let (tenant, admin, _) = tenant(&app, "Acme").await;
    // Each host below does not answer: the check gives up on it (a name that does not resolve
    // passes, and is checked again at each send), but its lookup runs on.
    for i in 0..SILENT_BOUND {
        let url = format!("smtps://u:hunter2pw@smtp{i}.silent.example");
        set(&app, &admin, smtp(&url)).await.data();
    }
    let recorded = app.count_events(&tenant, "DeliverySettingsChanged").await;
    assert_eq!(recorded, SILENT_BOUND as i64);

    let a = set(&app, &admin, smtp("smtps://u:hunter2pw@smtp.acme.example")).await;
    assert_eq!(a.error_code(), "RATE_LIMITED", "{}", a.body);
    assert_eq!(a.body["errors"][0]["extensions"]["retryAfterSeconds"], 30);
    let message = a.error_message();
    assert!(message.starts_with("email.smtpUrl"), "{message}");
    assert!(!message.contains("hunter2pw"), "{message}");
    assert_eq!(
        app.count_events(&tenant, "DeliverySettingsChanged").await,
        recorded,
        "the refused settings were recorded"
    );

    // The senders share the bound: a test message through the settings in force (a silent
    // host) is not even looked up, and says why.
    let test = app
        .gql(
            Some(&admin),
            TEST,
            json!({ "c": "EMAIL", "d": "dan@example.com" }),
        )
        .await;
    let test = &test.data()["testDelivery"];
    assert_eq!(test["delivered"], false, "{test}");
    assert_eq!(test["retryable"], true, "{test}");
    let error = test["error"].as_str().unwrap_or_default();
    assert!(error.contains("at their bound"), "{test}");
    assert!(!error.contains("silent.example"), "{test}");

    // A tenant whose names answer is not held back by another's silent ones, though as many
    // lookups lag as any tenant may.
    let (_, other, _) = super::tenant(&app, "Globex").await;
    set(
        &app,
        &other,
        smtp("smtps://u:hunter2pw@smtp.globex.example"),
    )
    .await
    .data();
}

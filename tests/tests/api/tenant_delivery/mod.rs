//! Tenants' own delivery providers, end to end: each tenant's codes through its own SMTP server
//! and SMS account, validation and SSRF refusals, credentials never shown, `testDelivery`,
//! failures before a send, and the queue's retention.

mod isolation;
mod test_delivery;
mod validation;
mod worker;

use std::time::Duration;

use serde_json::{json, Value};
use twofold_tests::{Answer, TestApp};

const SET: &str = "mutation($i: DeliverySettingsInput!) { setDeliverySettings(input: $i) { \
    senderName version changedAt \
    email { smtpHost smtpPort security from fromName } \
    sms { provider webhookHost twilio { accountSid from messagingServiceSid apiBaseHost } } } }";
const READ: &str = "query { tenant { deliverySettings { senderName version \
    email { smtpHost smtpPort security from fromName } \
    sms { provider webhookHost twilio { accountSid from messagingServiceSid apiBaseHost } } } } }";
const TEST: &str =
    "mutation($c: Channel!, $d: String!) { testDelivery(channel: $c, destination: $d) { \
    delivered providerMessageId error retryable } }";
const ADD_EMAIL: &str = "mutation($u: ID!, $e: String!) { addEmail(userId: $u, email: $e) { id } }";
const ADD_PHONE: &str = "mutation($u: ID!, $p: String!) { addPhone(userId: $u, phone: $p) { id } }";

const WAIT: Duration = Duration::from_secs(20);

/// A Twilio account SID of the right shape, from a two-character seed.
fn sid(seed: &str) -> String {
    format!("AC{}", seed.repeat(16))
}

/// A Twilio auth token that must never be shown.
fn token(seed: &str) -> String {
    format!("tok-{seed}-never-shown-0123456789")
}

/// Settings with the given SMTP URL and Twilio fake.
fn own_settings(sender: &str, smtp_url: &str, twilio_base: &str, seed: &str) -> Value {
    json!({
        "senderName": sender,
        "email": { "smtpUrl": smtp_url, "from": format!("codes@{seed}.example"), "fromName": sender },
        "sms": { "twilio": {
            "accountSid": sid(seed), "authToken": token(seed), "from": "+15005550006",
            "apiBase": twilio_base,
        } },
    })
}

async fn set(app: &TestApp, admin: &str, input: Value) -> Answer {
    app.gql(Some(admin), SET, json!({ "i": input })).await
}

/// A tenant: its id, ADMIN key and APP key.
async fn tenant(app: &TestApp, name: &str) -> (String, String, String) {
    let (id, admin) = app.create_tenant(name).await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    (id, admin, key)
}

/// Every event payload and metadata in the database, as text.
async fn all_events(app: &TestApp) -> String {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT payload::text || metadata::text FROM events")
            .fetch_all(&app.db)
            .await
            .unwrap();
    rows.join("\n")
}

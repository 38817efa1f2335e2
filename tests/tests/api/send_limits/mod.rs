//! Toll fraud and mail bombing: a destination gets at most 5 codes per 10 minutes per tenant and
//! 10 across tenants, whichever user it is registered to; the tenant's hourly SMS and email
//! budgets hold exactly under concurrency; disabling or resetting 2FA forgets nothing.

mod batches;
mod budgets;
mod destinations;
mod hang_ups;

use std::time::Duration;

use serde_json::json;
use twofold_tests::fakes::extract_code;
use twofold_tests::TestApp;

const ADD_EMAIL: &str = "mutation($u: ID!, $e: String!) { addEmail(userId: $u, email: $e) { id } }";
const ADD_PHONE: &str = "mutation($u: ID!, $p: String!) { addPhone(userId: $u, phone: $p) { id } }";
const CONFIRM: &str = "mutation($u: ID!, $c: ID!, $k: String!) { confirmChannel(userId: $u, challengeId: $c, code: $k) { codes } }";
const SEND: &str = "mutation($u: ID!, $ch: Channel, $i: String) { sendCode(userId: $u, channel: $ch, idempotencyKey: $i) { id } }";

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
        let done: i64 = sqlx::query_scalar(
            // Codes only: security notices share the queue, and a notice finished early
            // must not stand in for a code still on its way.
            "SELECT count(*) FROM deliveries WHERE kind = 'code' AND status <> 'pending'",
        )
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

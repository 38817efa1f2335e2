//! One-time codes by email and SMS, end to end: real SMTP into an in-process server, SMS into an
//! in-process Twilio-compatible API, codes read from what they received.

mod challenges;
mod delivery;
mod enrollment;
mod outbox;

use std::time::Duration;

use serde_json::Value;
use twofold_tests::fakes::extract_code;
use twofold_tests::{Answer, TestApp};

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

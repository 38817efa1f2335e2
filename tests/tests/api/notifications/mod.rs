//! Security notices end to end: each change to a user's 2FA sends one notice to their verified
//! address (the old one, when the change removed or replaced it), in their tenant's language,
//! through the real SMTP server and the Twilio-compatible fake, with no code or secret in it.

mod kinds;
mod policy;

use std::time::Duration;

use serde_json::{json, Value};
use twofold_tests::fakes::{extract_code, ReceivedMail};
use twofold_tests::{Answer, TestApp};

const ADD_EMAIL: &str = "mutation($u: ID!, $e: String!, $p: ProofInput) { addEmail(userId: $u, email: $e, proof: $p) { id } }";
const ADD_PHONE: &str = "mutation($u: ID!, $n: String!, $p: ProofInput) { addPhone(userId: $u, phone: $n, proof: $p) { id } }";
const CONFIRM: &str = "mutation($u: ID!, $c: ID!, $k: String!, $p: ProofInput) { confirmChannel(userId: $u, challengeId: $c, code: $k, proof: $p) { codes } }";
const SEND: &str = "mutation($u: ID!, $ch: Channel) { sendCode(userId: $u, channel: $ch) { id } }";
const WAIT: Duration = Duration::from_secs(20);

fn ok(a: &Answer) -> Value {
    assert!(a.body["errors"].is_null(), "{}", a.body);
    a.data().clone()
}

/// The code of the `n`-th code mail (1-based).
async fn mailed_code(app: &TestApp, n: usize) -> String {
    let mails = app.smtp.wait_for(n, WAIT).await;
    extract_code(&mails[n - 1].data, 6).expect("a code in the mail")
}

/// Adds and confirms `email` as `user`'s first factor (the `n`-th code mail); returns the
/// recovery codes.
async fn email_user(app: &TestApp, key: &str, user: &str, email: &str, n: usize) -> Vec<String> {
    let added = ok(&app
        .gql(Some(key), ADD_EMAIL, json!({ "u": user, "e": email }))
        .await);
    let code = mailed_code(app, n).await;
    let confirmed = ok(&app
        .gql(
            Some(key),
            CONFIRM,
            json!({ "u": user, "c": added["addEmail"]["id"], "k": code }),
        )
        .await);
    confirmed["confirmChannel"]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

/// A proof by a fresh email code (the `n`-th code mail): proves the user without spending a
/// recovery code, so no other notice comes with it.
async fn email_proof(app: &TestApp, key: &str, user: &str, n: usize) -> Value {
    let sent = ok(&app
        .gql(Some(key), SEND, json!({ "u": user, "ch": "EMAIL" }))
        .await);
    let code = mailed_code(app, n).await;
    json!({ "method": "EMAIL", "code": code, "challengeId": sent["sendCode"]["id"] })
}

/// Waits until `n` notices are recorded as delivered for the tenant's users, then returns the
/// notices the SMTP server holds (so a duplicate would show).
async fn notices_after(app: &TestApp, tenant: &str, n: i64) -> Vec<ReceivedMail> {
    app.wait_for_events(&format!("{tenant}/user/%"), "NotificationDelivered", n)
        .await;
    app.smtp.notices()
}

/// Subject, plain text and HTML of a notice.
fn texts(mail: &ReceivedMail) -> (String, String, String) {
    (
        decoded_subject(mail),
        mail.text().unwrap_or_default(),
        mail.html().unwrap_or_default(),
    )
}

/// The Subject header with RFC 2047 encoded words decoded (the space between two encoded
/// words is not part of the text; any other is).
fn decoded_subject(mail: &ReceivedMail) -> String {
    use base64::Engine as _;
    let raw = mail.header("Subject").unwrap_or_default();
    let words: Vec<(bool, String)> = raw
        .split_whitespace()
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            if lower.starts_with("=?utf-8?b?") && lower.ends_with("?=") {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&w[10..w.len() - 2])
                    .unwrap_or_default();
                (true, String::from_utf8(bytes).unwrap_or_default())
            } else if lower.starts_with("=?utf-8?q?") && lower.ends_with("?=") {
                let text = w[10..w.len() - 2].replace('_', " ");
                (true, twofold_tests::fakes::decode_quoted_printable(&text))
            } else {
                (false, w.to_owned())
            }
        })
        .collect();
    let mut out = String::new();
    for (i, (encoded, text)) in words.iter().enumerate() {
        if i > 0 && !(*encoded && words[i - 1].0) {
            out.push(' ');
        }
        out.push_str(text);
    }
    out
}

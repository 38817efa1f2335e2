//! Passkeys and security keys end to end: both ceremonies over HTTP with a software
//! authenticator (`authenticator.rs`) answering the options the service returns, as a browser
//! page on the tenant's site would.

mod attack;
pub(crate) mod authenticator;
mod ceremonies;
mod library_authenticator;
mod refusals;

use serde_json::{json, Value};
use twofold_tests::{spawn_app, Answer, TestApp};

use authenticator::{Context, SoftKey};

/// The tenant's sign-in page.
const ORIGIN: &str = "https://login.example.com";

const START_REGISTRATION: &str = "mutation($u: ID!, $n: String!, $p: ProofInput) { startWebAuthnRegistration(userId: $u, displayName: $n, proof: $p) { challengeId options } }";
const FINISH_REGISTRATION: &str = "mutation($u: ID!, $c: ID!, $cred: String!, $l: String) { finishWebAuthnRegistration(userId: $u, challengeId: $c, credential: $cred, label: $l) { codes } }";
const START_AUTHENTICATION: &str =
    "mutation($u: ID!) { startWebAuthnAuthentication(userId: $u) { challengeId options } }";
const VERIFY: &str = "mutation($u: ID!, $c: ID, $code: String!) { verify(userId: $u, method: WEBAUTHN, challengeId: $c, code: $code) { method recoveryCodesRemaining } }";
const STATUS: &str = "query($u: ID!) { user(userId: $u) { enabled methods recoveryCodesRemaining lockedUntil webAuthnCredentials { id label createdAt lastUsedAt } } }";
const SET_POLICY: &str = "mutation($i: PolicyInput!) { setPolicy(input: $i) { allowedMethods webAuthn { rpId rpName origins userVerification } } }";

/// A tenant whose policy allows WEBAUTHN for `example.com`, and its APP key.
struct Tenant {
    id: String,
    admin: String,
    key: String,
}

async fn tenant(app: &TestApp, name: &str, user_verification: &str) -> Tenant {
    let (id, admin) = app.create_tenant(name).await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    app.gql(
        Some(&admin),
        SET_POLICY,
        json!({ "i": {
            "allowedMethods": ["TOTP", "EMAIL", "SMS", "RECOVERY_CODE", "WEBAUTHN"],
            "webAuthn": {
                "rpId": "example.com",
                "rpName": name,
                "origins": [ORIGIN],
                "userVerification": user_verification,
            },
        }}),
    )
    .await
    .data();
    Tenant { id, admin, key }
}

async fn app_and_tenant() -> (TestApp, Tenant) {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme", "PREFERRED").await;
    (app, t)
}

/// (challengeId, options) of a started registration.
async fn start_registration(app: &TestApp, key: &str, user: &str, proof: Value) -> Answer {
    app.gql(
        Some(key),
        START_REGISTRATION,
        json!({ "u": user, "n": "Alice Example", "p": proof }),
    )
    .await
}

fn challenge(answer: &Answer, field: &str) -> (String, String) {
    let c = &answer.data()[field];
    (
        c["challengeId"].as_str().unwrap().to_owned(),
        c["options"].as_str().unwrap().to_owned(),
    )
}

async fn finish_registration(
    app: &TestApp,
    key: &str,
    user: &str,
    challenge_id: &str,
    credential: &str,
) -> Answer {
    app.gql(
        Some(key),
        FINISH_REGISTRATION,
        json!({ "u": user, "c": challenge_id, "cred": credential, "l": "YubiKey" }),
    )
    .await
}

/// Registers `soft` for `user` (proving with `proof` if given); the finish's `data`.
async fn register(app: &TestApp, key: &str, user: &str, soft: &mut SoftKey, proof: Value) -> Value {
    let (id, options) = challenge(
        &start_registration(app, key, user, proof).await,
        "startWebAuthnRegistration",
    );
    let credential = soft.register(&options, &Context::at(ORIGIN));
    finish_registration(app, key, user, &id, &credential)
        .await
        .data()
        .clone()
}

/// (challengeId, options) of a started sign-in.
async fn start_sign_in(app: &TestApp, key: &str, user: &str) -> (String, String) {
    let a = app
        .gql(Some(key), START_AUTHENTICATION, json!({ "u": user }))
        .await;
    challenge(&a, "startWebAuthnAuthentication")
}

async fn verify(
    app: &TestApp,
    key: &str,
    user: &str,
    challenge_id: &str,
    assertion: &str,
) -> Answer {
    app.gql(
        Some(key),
        VERIFY,
        json!({ "u": user, "c": challenge_id, "code": assertion }),
    )
    .await
}

/// A full sign-in with `soft` in context `cx`.
async fn sign_in(app: &TestApp, key: &str, user: &str, soft: &mut SoftKey, cx: &Context) -> Answer {
    let (id, options) = start_sign_in(app, key, user).await;
    let assertion = soft.sign(&options, cx);
    verify(app, key, user, &id, &assertion).await
}

async fn status(app: &TestApp, key: &str, user: &str) -> Value {
    app.gql(Some(key), STATUS, json!({ "u": user }))
        .await
        .data()["user"]
        .clone()
}

/// A user with one registered key; the recovery codes it got.
async fn enrolled(app: &TestApp, key: &str, user: &str, soft: &mut SoftKey) -> Vec<String> {
    let done = register(app, key, user, soft, Value::Null).await;
    done["finishWebAuthnRegistration"]["codes"]
        .as_array()
        .expect("first factor: recovery codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

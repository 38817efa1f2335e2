//! Findings of the attacker review of issue 16, each pinned by a test.

use serde_json::{json, Value};
use twofold_tests::captured_logs;

use super::authenticator::{Context, SoftKey};
use super::*;

/// A second origin the tenant lists at first and later withdraws (say, a subdomain taken over).
const WITHDRAWN: &str = "https://old.example.com";

async fn set_origins(app: &TestApp, admin: &str, origins: &[&str]) {
    app.gql(
        Some(admin),
        SET_POLICY,
        json!({ "i": { "webAuthn": {
            "rpId": "example.com",
            "rpName": "Acme",
            "origins": origins,
        }}}),
    )
    .await
    .data();
}

/// An admin withdrawing an origin means it from that moment: a ceremony started a minute before
/// must not be answered from it (the answer is judged against the policy in force as well as
/// the relying party the options named).
#[tokio::test]
async fn an_origin_withdrawn_from_the_policy_answers_no_ceremony_started_before() {
    let (app, t) = app_and_tenant().await;
    set_origins(&app, &t.admin, &[ORIGIN, WITHDRAWN]).await;
    let mut soft = SoftKey::new();
    enrolled(&app, &t.key, "alice", &mut soft).await;

    let (sign_in_id, sign_in_options) = start_sign_in(&app, &t.key, "alice").await;
    let (reg_id, reg_options) = challenge(
        &start_registration(&app, &t.key, "bob", Value::Null).await,
        "startWebAuthnRegistration",
    );
    set_origins(&app, &t.admin, &[ORIGIN]).await;

    let assertion = soft.sign(&sign_in_options, &Context::at(WITHDRAWN));
    let a = verify(&app, &t.key, "alice", &sign_in_id, &assertion).await;
    assert_eq!(a.error_code(), "INVALID_CODE", "{:?}", a.body);
    assert_eq!(app.count_events(&t.id, "VerificationFailed").await, 1);

    let credential = SoftKey::new().register(&reg_options, &Context::at(WITHDRAWN));
    let a = finish_registration(&app, &t.key, "bob", &reg_id, &credential).await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{:?}", a.body);
    assert_eq!(status(&app, &t.key, "bob").await["enabled"], false);
}

/// The library logs the attested credential (id and public key) at debug level, and the
/// ceremony state (the challenge) at trace: the service's own logs, at any level, show neither
/// (decision 109 seals the credential because it links a user to an authenticator).
#[tokio::test]
async fn logs_show_no_credential_id_or_public_key() {
    let (app, t) = app_and_tenant().await;
    let mut soft = SoftKey::new();
    enrolled(&app, &t.key, "alice", &mut soft).await;
    sign_in(&app, &t.key, "alice", &mut soft, &Context::at(ORIGIN))
        .await
        .data();
    let logs = captured_logs();
    assert!(logs.contains(&t.id), "the log capture saw this scenario");
    let id_b64 = soft.id_b64();
    let id_debug = format!("{:?}", soft.id)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    assert!(!logs.contains(&id_b64), "the credential id was logged");
    assert!(
        !logs.contains(&id_debug),
        "the credential id was logged as bytes"
    );
}

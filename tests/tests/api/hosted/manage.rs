//! The settings on the hosted pages: a user whose only factor is a phone proves it with a code
//! sent by SMS from the settings, and adds an authenticator app with that proof.

use serde_json::json;

use super::flows::{code, key_of, visit};
use super::links::tenant;
use crate::channels::texted_code;

const ADD_PHONE: &str = "mutation($p: String!) { addPhone(userId: \"nino\", phone: $p) { id } }";
const CONFIRM: &str = "mutation($c: ID!, $k: String!) { confirmChannel(userId: \"nino\", challengeId: $c, code: $k) { codes } }";

#[tokio::test]
async fn a_phone_only_user_adds_an_authenticator_app_proving_the_phone_with_an_sms_code() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let added = app
        .gql(Some(&acme.app), ADD_PHONE, json!({ "p": "+995555123456" }))
        .await;
    let challenge = added.data()["addPhone"]["id"].as_str().unwrap().to_owned();
    let sms = texted_code(&app, 1).await;
    app.gql(
        Some(&acme.app),
        CONFIRM,
        json!({ "c": challenge, "k": sms }),
    )
    .await
    .data();

    let (mut browser, page, _) = visit(&app, &acme, "nino", "MANAGE").await;
    assert!(page.body.contains("data-factor=\"SMS\""), "{}", page.body);
    assert!(page.body.contains("data-add=\"TOTP\""));
    let csrf = page.field("csrf");
    let sent = browser
        .post(
            "/hosted/manage/send",
            &[("csrf", &csrf), ("channel", "SMS")],
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let challenge = sent.field("challenge");
    assert!(!challenge.is_empty(), "{}", sent.body);
    assert!(
        sent.body.contains("<option value=\"SMS\">"),
        "{}",
        sent.body
    );
    let proof = texted_code(&app, 2).await;

    let started = browser
        .post(
            "/hosted/manage/add-totp",
            &[("csrf", &csrf), ("proof", "SMS"), ("challenge", &challenge)],
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert!(
        started.body.contains("name=\"proof_code\""),
        "{}",
        started.body
    );
    let key = key_of(&started);

    // Without proof, nothing is added.
    let unproven = browser
        .post(
            "/hosted/enroll/totp/confirm",
            &[("csrf", &csrf), ("code", &code(&key, 0))],
        )
        .await;
    assert_eq!(unproven.status, 403, "{}", unproven.body);

    let added = browser
        .post(
            "/hosted/enroll/totp/confirm",
            &[
                ("csrf", &csrf),
                ("code", &code(&key, 0)),
                ("proof", "SMS"),
                ("proof_code", &proof),
                ("challenge", &challenge),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(added.body.contains("data-notice"), "{}", added.body);
    assert!(
        added.body.contains("data-factor=\"TOTP\""),
        "{}",
        added.body
    );
    assert!(!added.body.contains("data-add=\"TOTP\""));
}

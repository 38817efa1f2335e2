//! Adding, replacing and removing factors on an account that already has 2FA: proof in the same
//! call, a replaced number that keeps working until its replacement is confirmed, trusted
//! devices revoked, `removeFactor`.

use std::time::Duration;

use serde_json::{json, Value};
use twofold_tests::{spawn_app, Answer, TestApp};

use crate::channels::texted_code;
use crate::sign_in::{acme, requirement};
use crate::totp::{enroll, verify};

const WAIT: Duration = Duration::from_secs(20);
const ADD_PHONE: &str = "mutation($u: ID!, $p: String!, $proof: ProofInput) { addPhone(userId: $u, phone: $p, proof: $proof) { id } }";
const CONFIRM: &str = "mutation($u: ID!, $c: ID!, $k: String!, $proof: ProofInput) { confirmChannel(userId: $u, challengeId: $c, code: $k, proof: $proof) { codes } }";
const SEND: &str = "mutation($u: ID!) { sendCode(userId: $u, channel: SMS) { id } }";
const REMOVE: &str = "mutation($u: ID!, $m: Method!, $proof: ProofInput!) { removeFactor(userId: $u, method: $m, proof: $proof) { enabled methods } }";

fn recovery(code: &str) -> Value {
    json!({ "method": "RECOVERY_CODE", "code": code })
}

/// A user whose only factor is the phone `+995 555 12 34 56`; returns the recovery codes.
async fn sms_only_user(app: &TestApp, key: &str, user: &str) -> Vec<String> {
    let added = app
        .gql(
            Some(key),
            ADD_PHONE,
            json!({ "u": user, "p": "+995 555 12 34 56" }),
        )
        .await;
    let code = texted_code(app, 1).await;
    let confirmed = app
        .gql(
            Some(key),
            CONFIRM,
            json!({ "u": user, "c": added.data()["addPhone"]["id"], "k": code }),
        )
        .await;
    confirmed.data()["confirmChannel"]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

fn ok(a: &Answer) {
    assert!(a.body["errors"].is_null(), "{}", a.body);
}

#[tokio::test]
async fn replacing_the_only_number_needs_proof_and_keeps_the_old_one_until_confirmed() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let codes = sms_only_user(&app, &t.app, "ana").await;
    let new_number = json!({ "u": "ana", "p": "+995 555 98 76 54" });

    // Without proof (a hijacked session right after sign-in): refused, nothing changes.
    let a = app.gql(Some(&t.app), ADD_PHONE, new_number.clone()).await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION", "{}", a.body);
    // A wrong proof is a wrong code, counted like one.
    let mut wrong = new_number.clone();
    wrong["proof"] = recovery("AAAA-BBBB-CCCC");
    let a = app.gql(Some(&t.app), ADD_PHONE, wrong).await;
    assert_eq!(a.error_code(), "INVALID_CODE", "{}", a.body);
    assert_eq!(app.count_events(&t.id, "VerificationFailed").await, 1);
    assert_eq!(app.count_events(&t.id, "PhoneFactorAdded").await, 1);

    // With proof: the new number gets its code, and the old one still signs the user in.
    let mut with_proof = new_number.clone();
    with_proof["proof"] = recovery(&codes[0]);
    let added = app.gql(Some(&t.app), ADD_PHONE, with_proof).await;
    ok(&added);
    let new_code = texted_code(&app, 2).await;
    assert_eq!(
        app.twilio.wait_for_delivered(2, WAIT).await[1].to,
        "+995555987654"
    );
    let r = requirement(&app, &t.app, "ana", None, false).await;
    assert_eq!(r["reason"], "ENROLLED", "{r}");
    assert!(r["methods"].as_array().unwrap().contains(&json!("SMS")));
    ok(&app.gql(Some(&t.app), SEND, json!({ "u": "ana" })).await);
    texted_code(&app, 3).await;
    assert_eq!(
        app.twilio.wait_for_delivered(3, WAIT).await[2].to,
        "+995555123456"
    );

    // Confirming the new number needs proof too, then sign-in codes go to it.
    let challenge = added.data()["addPhone"]["id"].clone();
    let a = app
        .gql(
            Some(&t.app),
            CONFIRM,
            json!({ "u": "ana", "c": challenge, "k": new_code }),
        )
        .await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION");
    let confirmed = app
        .gql(
            Some(&t.app),
            CONFIRM,
            json!({ "u": "ana", "c": challenge, "k": new_code, "proof": recovery(&codes[1]) }),
        )
        .await;
    ok(&confirmed);
    assert!(
        confirmed.data()["confirmChannel"].is_null(),
        "no new recovery codes"
    );
    // The sign-in code still open at the old number is not reused for the new one.
    let sent = app.gql(Some(&t.app), SEND, json!({ "u": "ana" })).await;
    ok(&sent);
    texted_code(&app, 4).await;
    assert_eq!(
        app.twilio.wait_for_delivered(4, WAIT).await[3].to,
        "+995555987654"
    );
    assert_eq!(app.count_events(&t.id, "TwoFactorDisabled").await, 0);
}

#[tokio::test]
async fn a_totp_code_used_as_proof_cannot_sign_in_again() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (mut authenticator, _) = enroll(&app, &t.app, "bo").await;
    let code = authenticator.next_code();
    let added = app
        .gql(
            Some(&t.app),
            ADD_PHONE,
            json!({ "u": "bo", "p": "+995 555 12 34 56", "proof": { "method": "TOTP", "code": code } }),
        )
        .await;
    ok(&added);
    let replay = verify(&app, &t.app, "bo", "TOTP", &code).await;
    assert_eq!(replay.error_code(), "INVALID_CODE", "{}", replay.body);
}

#[tokio::test]
async fn remove_factor_removes_one_revokes_devices_and_keeps_the_last_under_enforcement() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (mut authenticator, codes) = enroll(&app, &t.app, "cy").await;
    // A phone beside TOTP, and a trusted device.
    let added = app
        .gql(
            Some(&t.app),
            ADD_PHONE,
            json!({ "u": "cy", "p": "+995 555 12 34 56", "proof": recovery(&codes[0]) }),
        )
        .await;
    let code = texted_code(&app, 1).await;
    ok(&app
        .gql(
            Some(&t.app),
            CONFIRM,
            json!({ "u": "cy", "c": added.data()["addPhone"]["id"], "k": code, "proof": recovery(&codes[1]) }),
        )
        .await);
    let trusted = app
        .gql(
            Some(&t.app),
            "mutation($c: String!) { verify(userId: \"cy\", method: TOTP, code: $c, trustDevice: true) { deviceToken } }",
            json!({ "c": authenticator.next_code() }),
        )
        .await;
    let token = trusted.data()["verify"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let removed = app
        .gql(
            Some(&t.app),
            REMOVE,
            json!({ "u": "cy", "m": "SMS", "proof": recovery(&codes[3]) }),
        )
        .await;
    ok(&removed);
    assert_eq!(
        removed.data()["removeFactor"]["methods"],
        json!(["TOTP", "RECOVERY_CODE"])
    );
    assert_eq!(app.count_events(&t.id, "FactorRemoved").await, 1);
    let r = requirement(&app, &t.app, "cy", Some(&token), false).await;
    assert_eq!(
        r["reason"], "ENROLLED",
        "the device is no longer trusted: {r}"
    );

    // TOTP is the last factor: an enforcing policy keeps it.
    ok(&app
        .gql(
            Some(&t.admin),
            "mutation { setPolicy(input: { enforceTwoFactor: true }) { enforceTwoFactor } }",
            json!({}),
        )
        .await);
    let last = app
        .gql(
            Some(&t.app),
            REMOVE,
            json!({ "u": "cy", "m": "TOTP", "proof": recovery(&codes[2]) }),
        )
        .await;
    assert_eq!(last.error_code(), "POLICY_VIOLATION", "{}", last.body);
    let refused = app
        .gql(
            Some(&t.app),
            REMOVE,
            json!({ "u": "cy", "m": "RECOVERY_CODE", "proof": recovery(&codes[2]) }),
        )
        .await;
    assert_eq!(refused.error_code(), "INVALID_INPUT");
}

#[tokio::test]
async fn a_typo_in_the_new_code_does_not_cost_the_proof() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (_, codes) = enroll(&app, &t.app, "di").await;
    ok(&app
        .gql(
            Some(&t.app),
            "mutation { startTotpEnrollment(userId: \"di\") { secret } }",
            json!({}),
        )
        .await);
    let refused = app
        .gql(
            Some(&t.app),
            "mutation($p: String!) { confirmTotpEnrollment(userId: \"di\", code: \"000000\", proof: { method: RECOVERY_CODE, code: $p }) { codes } }",
            json!({ "p": codes[0] }),
        )
        .await;
    assert_eq!(refused.error_code(), "INVALID_CODE", "{}", refused.body);
    // The recovery code was not spent by the typo: it still signs the user in.
    let v = verify(&app, &t.app, "di", "RECOVERY_CODE", &codes[0]).await;
    ok(&v);
}

#[tokio::test]
async fn a_change_refused_for_want_of_proof_says_nothing_about_a_full_cap() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    // Five users register one number: its cap within the tenant is full.
    for i in 0..5 {
        ok(&app
            .gql(
                Some(&t.app),
                ADD_PHONE,
                json!({ "u": format!("s{i}"), "p": "+995 555 12 34 56" }),
            )
            .await);
    }
    let sixth = app
        .gql(
            Some(&t.app),
            ADD_PHONE,
            json!({ "u": "s5", "p": "+995 555 12 34 56" }),
        )
        .await;
    assert_eq!(sixth.error_code(), "RATE_LIMITED");
    // A user with a factor, asked to prove it, learns nothing about that number.
    let (_, codes) = enroll(&app, &t.app, "probe").await;
    let probe = app
        .gql(
            Some(&t.app),
            ADD_PHONE,
            json!({ "u": "probe", "p": "+995 555 12 34 56" }),
        )
        .await;
    assert_eq!(probe.error_code(), "POLICY_VIOLATION", "{}", probe.body);
    // Nor with a wrong proof: that is a wrong code, counted like one.
    let wrong = app
        .gql(
            Some(&t.app),
            ADD_PHONE,
            json!({ "u": "probe", "p": "+995 555 12 34 56", "proof": recovery("AAAA-BBBB-CCCC") }),
        )
        .await;
    assert_eq!(wrong.error_code(), "INVALID_CODE", "{}", wrong.body);
    // With its own factor proven, the user may hear that the number had too many codes; the
    // proof authorised nothing, so it stays usable.
    let right = app
        .gql(
            Some(&t.app),
            ADD_PHONE,
            json!({ "u": "probe", "p": "+995 555 12 34 56", "proof": recovery(&codes[0]) }),
        )
        .await;
    assert_eq!(right.error_code(), "RATE_LIMITED", "{}", right.body);
    ok(&verify(&app, &t.app, "probe", "RECOVERY_CODE", &codes[0]).await);
}

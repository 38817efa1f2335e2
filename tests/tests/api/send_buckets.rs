//! Verification codes (to a number someone registered) and sign-in codes (to the number its
//! owner proved) are capped in buckets of their own: registering someone else's number, which
//! anyone can do, must not leave its owner without sign-in codes.

use serde_json::json;
use twofold_tests::spawn_app;

use crate::channels::texted_code;
use crate::sign_in::acme;

const ADD_PHONE: &str =
    "mutation($u: ID!) { addPhone(userId: $u, phone: \"+995 555 12 34 56\") { id } }";

#[tokio::test]
async fn others_registering_a_number_do_not_spend_its_owner_s_sign_in_codes() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let added = app
        .gql(Some(&t.app), ADD_PHONE, json!({ "u": "owner" }))
        .await;
    let code = texted_code(&app, 1).await;
    let confirmed = app
        .gql(
            Some(&t.app),
            "mutation($c: ID!, $k: String!) { confirmChannel(userId: \"owner\", challengeId: $c, code: $k) { codes } }",
            json!({ "c": added.data()["addPhone"]["id"], "k": code }),
        )
        .await;
    assert!(confirmed.body["errors"].is_null(), "{}", confirmed.body);
    // Others register the owner's number until its verification cap is spent.
    let mut refused = false;
    for i in 0..6 {
        let a = app
            .gql(
                Some(&t.app),
                ADD_PHONE,
                json!({ "u": format!("other-{i}") }),
            )
            .await;
        if a.body["errors"].is_null() {
            continue;
        }
        assert_eq!(a.error_code(), "RATE_LIMITED", "{}", a.body);
        refused = true;
    }
    assert!(refused, "the verification cap never filled");
    // The owner still signs in by SMS.
    let sent = app
        .gql(
            Some(&t.app),
            "mutation { sendCode(userId: \"owner\", channel: SMS) { id } }",
            json!({}),
        )
        .await;
    assert!(sent.body["errors"].is_null(), "{}", sent.body);
}

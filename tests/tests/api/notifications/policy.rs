//! The tenant's switch, and notices in its language and by SMS.

use serde_json::json;
use twofold_tests::fakes::extract_code;
use twofold_tests::spawn_app;

use super::*;
use crate::sign_in::acme;

const SET: &str = "mutation($on: Boolean, $l: String) { setPolicy(input: { securityNotifications: $on, defaultLocale: $l }) { securityNotifications defaultLocale } }";
const POLICY: &str = "query { tenant { policy { securityNotifications } } }";
const VERIFY: &str = "mutation($u: ID!, $c: String!) { verify(userId: $u, method: RECOVERY_CODE, code: $c) { method } }";

#[tokio::test]
async fn notices_are_on_by_default_and_none_go_when_the_tenant_turns_them_off() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let shown = ok(&app.gql(Some(&t.admin), POLICY, json!({})).await);
    assert_eq!(shown["tenant"]["policy"]["securityNotifications"], true);
    let set = ok(&app.gql(Some(&t.admin), SET, json!({ "on": false })).await);
    assert_eq!(set["setPolicy"]["securityNotifications"], false);

    let codes = email_user(&app, &t.app, "cy", "cy@example.com", 1).await;
    ok(&app
        .gql(Some(&t.app), VERIFY, json!({ "u": "cy", "c": codes[0] }))
        .await);
    // Something that happened after both changes is delivered, so the notices would have too.
    ok(&app
        .gql(Some(&t.app), SEND, json!({ "u": "cy", "ch": "EMAIL" }))
        .await);
    app.wait_for_events(&format!("{}/user/%", t.id), "CodeDelivered", 2)
        .await;
    assert_eq!(app.count_events(&t.id, "NotificationQueued").await, 0);
    assert!(app.smtp.notices().is_empty());

    // Back on: the next recovery code is told.
    ok(&app.gql(Some(&t.admin), SET, json!({ "on": true })).await);
    ok(&app
        .gql(Some(&t.app), VERIFY, json!({ "u": "cy", "c": codes[1] }))
        .await);
    assert_eq!(notices_after(&app, &t.id, 1).await.len(), 1);
}

#[tokio::test]
async fn a_georgian_tenants_notice_is_georgian_by_email_and_one_sms_segment() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    ok(&app.gql(Some(&t.admin), SET, json!({ "l": "ka" })).await);
    let codes = email_user(&app, &t.app, "dali", "dali@example.ge", 1).await;
    let notices = notices_after(&app, &t.id, 1).await;
    let georgian = |s: &str| s.chars().any(|c| ('\u{10D0}'..='\u{10FF}').contains(&c));
    let (subject, plain, html) = texts(&notices[0]);
    assert!(
        georgian(&subject) && georgian(&plain) && georgian(&html),
        "{subject} {plain}"
    );
    assert!(plain.contains("d•••@example.ge"), "{plain}");

    // A user with a phone only is told by SMS.
    let added = ok(&app
        .gql(
            Some(&t.app),
            ADD_PHONE,
            json!({ "u": "gela", "n": "+995 555 12 34 56" }),
        )
        .await);
    let sms = app.twilio.wait_for_delivered(1, WAIT).await;
    let code = extract_code(&sms[0].body, 6).unwrap();
    let confirmed = ok(&app
        .gql(
            Some(&t.app),
            CONFIRM,
            json!({ "u": "gela", "c": added["addPhone"]["id"], "k": code }),
        )
        .await);
    let recovery = confirmed["confirmChannel"]["codes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&app
        .gql(Some(&t.app), VERIFY, json!({ "u": "gela", "c": recovery }))
        .await);
    let texts = app.twilio.wait_for_notices(2, WAIT).await;
    assert_eq!(
        texts.len(),
        2,
        "the number added, then the recovery code used"
    );
    for text in &texts {
        assert_eq!(text.to, "+995555123456");
        assert!(georgian(&text.body), "{}", text.body);
        assert!(
            text.body.chars().count() <= 70,
            "one UCS-2 segment: {}",
            text.body
        );
        assert!(!text.body.contains(&code) && !text.body.contains(&recovery));
    }
    assert!(
        texts.iter().any(|t| t.body.contains('9')),
        "codes left: {texts:?}"
    );
    drop(codes);
}

#[tokio::test]
async fn a_user_who_chose_german_gets_german_notices() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let added = ok(&app
        .gql(
            Some(&t.app),
            "mutation($u: ID!, $e: String!) { addEmail(userId: $u, email: $e, locale: \"de-CH\") { id } }",
            json!({ "u": "heidi", "e": "heidi@example.ch" }),
        )
        .await);
    let code = extract_code(&app.smtp.wait_for(1, WAIT).await[0].data, 6).unwrap();
    ok(&app
        .gql(
            Some(&t.app),
            CONFIRM,
            json!({ "u": "heidi", "c": added["addEmail"]["id"], "k": code }),
        )
        .await);
    let notices = notices_after(&app, &t.id, 1).await;
    let (subject, plain, _) = texts(&notices[0]);
    assert_eq!(subject, "Neue Anmeldemethode für Ihr Acme-Konto");
    assert!(plain.contains("Zeitpunkt:"), "{plain}");
}

//! Every kind of notice arrives once, at the address that protects the account.

use serde_json::json;
use twofold_tests::spawn_app;

use super::*;
use crate::sign_in::acme;

const VERIFY_TRUST: &str = "mutation($u: ID!, $c: String!) { verify(userId: $u, method: RECOVERY_CODE, code: $c, trustDevice: true) { method } }";
const WRONG: &str = "mutation($u: ID!) { verify(userId: $u, method: RECOVERY_CODE, code: \"AAAA-BBBB-CCCC\") { method } }";
const REMOVE: &str = "mutation($u: ID!, $m: Method!, $p: ProofInput!) { removeFactor(userId: $u, method: $m, proof: $p) { enabled } }";
const RESET: &str =
    "mutation($u: ID!) { resetTwoFactor(userId: $u, reason: \"lost phone\") { enabled } }";
const DISABLE: &str = "mutation($u: ID!, $c: String!, $ch: ID) { disableTwoFactor(userId: $u, method: EMAIL, code: $c, challengeId: $ch) { enabled } }";
const AUDIT: &str = "query($u: ID) { auditEvents(filter: { userId: $u }, first: 200, oldestFirst: true) { nodes { eventType data } } }";

#[tokio::test]
async fn each_change_is_told_once_to_the_verified_address_without_a_code() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    // 1. The first verified address hears of itself.
    let codes = email_user(&app, &t.app, "ana", "ana@example.com", 1).await;
    // 2, 3. A recovery code signs in and trusts the device: two notices.
    ok(&app
        .gql(
            Some(&t.app),
            VERIFY_TRUST,
            json!({ "u": "ana", "c": codes[0] }),
        )
        .await);
    // 4. A phone number added (proved by an email code) is told to the email address.
    let proof = email_proof(&app, &t.app, "ana", 2).await;
    let added = ok(&app
        .gql(
            Some(&t.app),
            ADD_PHONE,
            json!({ "u": "ana", "n": "+995 555 12 34 56", "p": proof }),
        )
        .await);
    let sms = app.twilio.wait_for_delivered(1, WAIT).await;
    let sms_code = extract_code(&sms[0].body, 6).unwrap();
    let proof = email_proof(&app, &t.app, "ana", 3).await;
    ok(&app
        .gql(
            Some(&t.app),
            CONFIRM,
            json!({ "u": "ana", "c": added["addPhone"]["id"], "k": sms_code, "p": proof }),
        )
        .await);
    // 5. The number removed.
    let proof = email_proof(&app, &t.app, "ana", 4).await;
    ok(&app
        .gql(
            Some(&t.app),
            REMOVE,
            json!({ "u": "ana", "m": "SMS", "p": proof }),
        )
        .await);
    // 6. Ten wrong codes lock the account.
    for _ in 0..10 {
        app.gql(Some(&t.app), WRONG, json!({ "u": "ana" })).await;
    }
    // 7. An admin resets 2FA: the address is gone from the account, the notice still goes.
    ok(&app.gql(Some(&t.admin), RESET, json!({ "u": "ana" })).await);

    let notices = notices_after(&app, &t.id, 7).await;
    // The worker sends several at once, so they may arrive in any order; each arrives once.
    let mut subjects: Vec<String> = notices.iter().map(|m| texts(m).0).collect();
    subjects.sort();
    let mut expected = [
        "A new sign-in method was added to your Acme account",
        "A recovery code was used for your Acme account",
        "A new trusted device for your Acme account",
        "A new sign-in method was added to your Acme account",
        "A sign-in method was removed from your Acme account",
        "Your Acme account was locked after wrong codes",
        "Your Acme two-step verification was reset",
    ];
    expected.sort();
    assert_eq!(subjects, expected, "once each");
    assert_eq!(app.count_events(&t.id, "NotificationQueued").await, 7);
    let mut ids: Vec<String> = notices
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 7, "no notice sent twice");
    let secrets: Vec<String> = (1..=4)
        .map(|n| extract_code(&app.smtp.messages()[n - 1].data, 6).unwrap())
        .chain([sms_code.clone()])
        .chain(codes.iter().cloned())
        .collect();
    for mail in &notices {
        assert_eq!(mail.to, ["ana@example.com"]);
        let (subject, plain, html) = texts(mail);
        for secret in &secrets {
            for part in [&subject, &plain, &html] {
                assert!(
                    !part.contains(secret.as_str()),
                    "a secret in a notice: {part}"
                );
            }
        }
        assert!(!plain.contains("555123456") && !plain.contains("12 34 56"));
        assert!(plain.contains("Acme support"), "{plain}");
        assert!(plain.contains("UTC"), "says when: {plain}");
        assert_eq!(
            mail.header("Auto-Submitted").as_deref(),
            Some("auto-generated")
        );
    }
    let about = |subject: &str| {
        notices
            .iter()
            .map(texts)
            .filter(|(s, _, _)| s == subject)
            .map(|(_, plain, _)| plain)
            .collect::<Vec<_>>()
    };
    let recovery = about("A recovery code was used for your Acme account").concat();
    let recovery = recovery.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        recovery.contains("You have 9 recovery codes left"),
        "{recovery}"
    );
    let added = about("A new sign-in method was added to your Acme account").concat();
    assert!(
        added.contains("+995\u{a0}••••\u{a0}56") && added.contains("a•••@example.com"),
        "masked contacts: {added}"
    );

    // The audit history shows each notice and its outcome, masked, never the sealed address.
    let audit = app.gql(Some(&t.admin), AUDIT, json!({ "u": "ana" })).await;
    let nodes = audit.data()["auditEvents"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    let queued: Vec<_> = nodes
        .iter()
        .filter(|n| n["eventType"] == "NotificationQueued")
        .collect();
    assert_eq!(queued.len(), 7);
    assert_eq!(queued[6]["data"]["kind"]["type"], "TWO_FACTOR_RESET");
    assert_eq!(queued[6]["data"]["sentTo"], "a***@example.com");
    let delivered = nodes
        .iter()
        .filter(|n| n["eventType"] == "NotificationDelivered")
        .count();
    assert_eq!(delivered, 7);
    let shown = serde_json::to_string(&nodes).unwrap();
    assert!(!shown.contains("ana@example.com") && !shown.contains("destination"));
}

#[tokio::test]
async fn a_replaced_address_and_a_disabled_account_are_told_to_the_old_address() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    email_user(&app, &t.app, "bo", "bo@old.example", 1).await;
    let proof = email_proof(&app, &t.app, "bo", 2).await;
    let added = ok(&app
        .gql(
            Some(&t.app),
            ADD_EMAIL,
            json!({ "u": "bo", "e": "mallory@new.example", "p": proof }),
        )
        .await);
    let code = mailed_code(&app, 3).await;
    let proof = email_proof(&app, &t.app, "bo", 4).await;
    ok(&app
        .gql(
            Some(&t.app),
            CONFIRM,
            json!({ "u": "bo", "c": added["addEmail"]["id"], "k": code, "p": proof }),
        )
        .await);
    let notices = notices_after(&app, &t.id, 2).await;
    assert_eq!(notices.len(), 2);
    let replaced = notices
        .iter()
        .find(|m| texts(m).0 == "A sign-in method of your Acme account was changed")
        .expect("the change is told");
    assert_eq!(replaced.to, ["bo@old.example"], "the old address is told");
    let (subject, plain, _) = texts(replaced);
    assert_eq!(subject, "A sign-in method of your Acme account was changed");
    assert!(plain.contains("m•••@new.example"), "{plain}");
    assert!(!plain.contains("mallory"), "never the full new address");

    // Turning 2FA off removes the (new) address; the notice still reaches it.
    let sent = ok(&app
        .gql(Some(&t.app), SEND, json!({ "u": "bo", "ch": "EMAIL" }))
        .await);
    let code = mailed_code(&app, 5).await;
    ok(&app
        .gql(
            Some(&t.app),
            DISABLE,
            json!({ "u": "bo", "c": code, "ch": sent["sendCode"]["id"] }),
        )
        .await);
    let notices = notices_after(&app, &t.id, 3).await;
    assert_eq!(notices.len(), 3);
    let off = notices
        .iter()
        .find(|m| texts(m).0 == "Two-step verification was turned off for your Acme account")
        .expect("turning 2FA off is told");
    assert_eq!(off.to, ["mallory@new.example"]);
}

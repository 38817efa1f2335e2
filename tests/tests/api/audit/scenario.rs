//! A full scenario read back in order, and searched for every secret it handled.

use serde_json::{json, Value};
use twofold_tests::{spawn_app, TestApp};

use super::export::export;
use super::{all_events, page, settled, types};
use crate::channels::{mailed_code, texted_code};
use crate::totp::{enroll, verify};

/// Everything secret the scenario handled, to look for in the audit output.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, s: impl Into<String>) {
        let s = s.into();
        assert!(s.len() >= 6, "too short to search for: {s}");
        self.0.push(s);
    }

    fn assert_absent(&self, what: &str, text: &str) {
        for s in &self.0 {
            if let Some(at) = text.find(s.as_str()) {
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                panic!(
                    "{what} shows a secret: {s} in {}",
                    &text[line_start..line_end]
                );
            }
        }
    }
}

/// Secrets as stored: sealed ciphertexts and keyed hashes in the tenant's event payloads.
async fn stored_secrets(app: &TestApp, tenant: &str, secrets: &mut Secrets) {
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT v #>> '{}' FROM events, \
           jsonb_each(payload) AS e(variant, body), \
           jsonb_each(body) AS f(field, v) \
         WHERE tenant_id = $1 AND field IN ('secret', 'email', 'phone', 'key_hash', 'token_hash') \
         UNION ALL \
         SELECT h #>> '{}' FROM events, jsonb_each(payload) AS e(variant, body), \
           jsonb_array_elements(body -> 'hashes') AS h \
         WHERE tenant_id = $1 AND event_type = 'RecoveryCodesGenerated'",
    )
    .bind(tenant)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(
        stored.len() >= 10,
        "the scenario stored secrets: {stored:?}"
    );
    for s in stored {
        secrets.add(s);
    }
}

#[tokio::test]
async fn a_full_scenario_is_audited_in_order_without_a_single_secret() {
    let app = spawn_app().await;
    let (tenant_id, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (auditor_id, auditor) = app.issue_key(&admin, "AUDITOR").await;
    let mut secrets = Secrets::default();
    secrets.add(admin.clone());
    secrets.add(app_key.clone());
    secrets.add(auditor.clone());
    let gql = |q: &'static str, v: Value| {
        let app = &app;
        let key = app_key.clone();
        async move { app.gql(Some(&key), q, v).await }
    };

    // TOTP, then a sign-in with it (which also allows adding more factors).
    let enrollment = app
        .gql(
            Some(&app_key),
            "mutation { startTotpEnrollment(userId: \"sam\") { secret } }",
            json!({}),
        )
        .await;
    let first_secret = enrollment.data()["startTotpEnrollment"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.add(first_secret);
    let (mut authenticator, codes) = enroll(&app, &app_key, "sam").await;
    secrets.0.extend(codes.iter().cloned());
    let v = verify(&app, &app_key, "sam", "TOTP", &authenticator.next_code()).await;
    assert_eq!(v.data()["verify"]["method"], "TOTP");

    // A phone and an email, each confirmed with the code it received; each change proves a
    // current factor (a recovery code).
    let phone = gql(
        "mutation($u: ID!, $p: String!, $r: String!) { addPhone(userId: $u, phone: $p, proof: { method: RECOVERY_CODE, code: $r }) { id } }",
        json!({ "u": "sam", "p": "+995 555 12 34 56", "r": codes[6] }),
    )
    .await;
    let challenge = phone.data()["addPhone"]["id"].clone();
    let code = texted_code(&app, 1).await;
    secrets.add(code.clone());
    app.wait_for_events("%/user/sam", "CodeDelivered", 1).await;
    let c = gql(
        "mutation($u: ID!, $c: ID!, $k: String!, $r: String!) { confirmChannel(userId: $u, challengeId: $c, code: $k, proof: { method: RECOVERY_CODE, code: $r }) { codes } }",
        json!({ "u": "sam", "c": challenge, "k": code, "r": codes[7] }),
    )
    .await;
    assert!(c.body["errors"].is_null(), "{}", c.body);
    let email = gql(
        "mutation($u: ID!, $e: String!, $r: String!) { addEmail(userId: $u, email: $e, proof: { method: RECOVERY_CODE, code: $r }) { id } }",
        json!({ "u": "sam", "e": "Sam.Sample@Example.com", "r": codes[8] }),
    )
    .await;
    let challenge = email.data()["addEmail"]["id"].clone();
    let code = mailed_code(&app, 1).await;
    secrets.add(code.clone());
    app.wait_for_events("%/user/sam", "CodeDelivered", 2).await;
    let c = gql(
        "mutation($u: ID!, $c: ID!, $k: String!, $r: String!) { confirmChannel(userId: $u, challengeId: $c, code: $k, proof: { method: RECOVERY_CODE, code: $r }) { codes } }",
        json!({ "u": "sam", "c": challenge, "k": code, "r": codes[9] }),
    )
    .await;
    assert!(c.body["errors"].is_null(), "{}", c.body);

    // A sign-in by SMS that trusts the device, then a sign-in decision on that device.
    let sent = gql(
        "mutation { sendCode(userId: \"sam\", channel: SMS) { id } }",
        json!({}),
    )
    .await;
    let challenge = sent.data()["sendCode"]["id"].clone();
    let code = texted_code(&app, 2).await;
    secrets.add(code.clone());
    app.wait_for_events("%/user/sam", "CodeDelivered", 3).await;
    let v = gql(
        "mutation($c: ID!, $k: String!) { verify(userId: \"sam\", method: SMS, code: $k, challengeId: $c, trustDevice: true, deviceLabel: \"work laptop\") { deviceToken } }",
        json!({ "c": challenge, "k": code }),
    )
    .await;
    let token = v.data()["verify"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.add(token.clone());
    let r = gql(
        "query($d: String) { signInRequirement(userId: \"sam\", deviceToken: $d) { reason } }",
        json!({ "d": token }),
    )
    .await;
    assert_eq!(r.data()["signInRequirement"]["reason"], "TRUSTED_DEVICE");

    // Ten wrong codes lock the user out; an admin clears it; a recovery code signs in.
    for _ in 0..10 {
        verify(&app, &app_key, "sam", "TOTP", &authenticator.wrong_code()).await;
    }
    let clear = app
        .gql(
            Some(&admin),
            "mutation { clearLockout(userId: \"sam\", reason: \"called the help desk\") { lockedUntil } }",
            json!({}),
        )
        .await;
    assert!(clear.data()["clearLockout"]["lockedUntil"].is_null());
    let v = verify(&app, &app_key, "sam", "RECOVERY_CODE", &codes[0]).await;
    // Four codes went as proofs of the factor changes above.
    assert_eq!(v.data()["verify"]["recoveryCodesRemaining"], 5);

    // New recovery codes, an admin reset, a policy change.
    let regen = gql(
        "mutation($c: String!) { regenerateRecoveryCodes(userId: \"sam\", method: RECOVERY_CODE, code: $c) { codes } }",
        json!({ "c": codes[1] }),
    )
    .await;
    for c in regen.data()["regenerateRecoveryCodes"]["codes"]
        .as_array()
        .unwrap()
    {
        secrets.add(c.as_str().unwrap());
    }
    let reset = app
        .gql(
            Some(&admin),
            "mutation { resetTwoFactor(userId: \"sam\", reason: \"lost phone\") { enabled } }",
            json!({}),
        )
        .await;
    assert_eq!(reset.data()["resetTwoFactor"]["enabled"], false);
    // Every security notice delivered first, so the policy change is the newest event and no
    // delivery lands between the reads below (counted, not assumed: a notice still on its way
    // made the history grow between two reads on a loaded machine).
    let users = format!("{tenant_id}/user/%");
    let queued = app.count_events_like(&users, "NotificationQueued").await;
    assert!(
        queued >= 10,
        "the scenario's changes queued notices: {queued}"
    );
    app.wait_for_events(&users, "NotificationDelivered", queued)
        .await;
    let policy = app
        .gql(
            Some(&admin),
            "mutation { setPolicy(input: { enforceTwoFactor: true }) { enforceTwoFactor } }",
            json!({}),
        )
        .await;
    assert_eq!(policy.data()["setPolicy"]["enforceTwoFactor"], true);

    // The user's history, oldest first: exactly what happened, in order.
    settled(&app, &tenant_id).await;
    let sam = all_events(&app, &auditor, json!({ "userId": "sam" }), 7).await;
    let mut expected = vec![
        "TotpEnrollmentStarted", // the first start, replaced by the second
        "TotpEnrollmentStarted",
        "TotpEnabled",
        "RecoveryCodesGenerated",
        "CodeVerified",
        "RecoveryCodeUsed", // each factor change proves a current factor
        "PhoneFactorAdded",
        "CodeSent",
        "CodeDelivered",
        "RecoveryCodeUsed",
        "ChannelVerified",
        "PreferredChannelChosen", // the first verified channel becomes the preferred one
        "RecoveryCodeUsed",
        "EmailFactorAdded",
        "CodeSent",
        "CodeDelivered",
        "RecoveryCodeUsed",
        "ChannelVerified",
        "CodeSent",
        "CodeDelivered",
        "CodeVerified",
        "DeviceTrusted",
        "SignInEvaluated",
    ];
    expected.extend(["VerificationFailed"; 10]);
    expected.extend([
        "UserLockedOut",
        "LockoutCleared",
        "RecoveryCodeUsed", // the sign-in
        "RecoveryCodeUsed", // the proof for new codes
        "RecoveryCodesGenerated",
        "DeviceTrustRevoked",
        "TwoFactorReset",
    ]);
    // Security notices (decision 116) come with the changes, and their outcomes whenever the
    // worker gets to them: checked apart from the order of the rest.
    let (notices, changes): (Vec<_>, Vec<_>) = types(&sam)
        .into_iter()
        .partition(|t| t.starts_with("Notification"));
    assert_eq!(changes, expected);
    assert_eq!(
        notices
            .iter()
            .filter(|t| **t == "NotificationQueued")
            .count(),
        10,
        "phone and email added, device trusted, the lockout, the reset, and five recovery codes"
    );
    assert!(sam.iter().all(|e| e["userId"] == "sam"));

    // Who did it: the app key for the user's steps, the admin for the reset, the delivery
    // worker for delivery outcomes; every request has an id.
    let by_type = |t: &str| sam.iter().find(|e| e["eventType"] == t).unwrap().clone();
    assert_eq!(by_type("TotpEnabled")["actor"]["role"], "APP");
    assert_eq!(by_type("TwoFactorReset")["actor"]["role"], "ADMIN");
    assert_eq!(by_type("CodeDelivered")["actor"], json!({ "system": true }));
    assert!(sam
        .iter()
        .all(|e| e["requestId"].as_str().is_some_and(|r| !r.is_empty())));
    assert_eq!(by_type("PhoneFactorAdded")["data"]["callingCode"], "995");
    assert_eq!(by_type("TwoFactorReset")["data"]["reason"], "lost phone");
    assert_eq!(by_type("DeviceTrusted")["data"]["label"], "work laptop");
    assert_eq!(
        by_type("SignInEvaluated")["data"]["reason"],
        "TRUSTED_DEVICE"
    );
    assert_eq!(by_type("RecoveryCodesGenerated")["data"]["count"], 10);

    // The tenant's whole history, newest first by default: the policy change leads, and the
    // tenant's own events carry no user.
    let newest = page(&app, &auditor, json!({ "n": 3 })).await;
    let top = &newest["nodes"][0];
    assert_eq!(top["eventType"], "TwoFactorPolicySet");
    assert!(top["userId"].is_null());
    assert_eq!(top["data"]["previous"]["enforceTwoFactor"], false);
    assert_eq!(top["data"]["policy"]["enforceTwoFactor"], true);
    let everything = all_events(&app, &auditor, Value::Null, 500).await;
    let issued: Vec<&Value> = everything
        .iter()
        .filter(|e| e["eventType"] == "ApiKeyIssued")
        .collect();
    assert!(issued
        .iter()
        .any(|e| e["data"]["keyId"] == auditor_id.as_str()));

    // Filters by type and time.
    let sent = all_events(
        &app,
        &auditor,
        json!({ "eventTypes": ["CodeSent", "CodeDelivered"] }),
        50,
    )
    .await;
    assert_eq!(types(&sent), ["CodeSent", "CodeDelivered"].repeat(3));
    // (An event's time is its transaction's: the lockout and the failure that caused it share
    // one, so both are at or after the cut.)
    let cut = by_type("UserLockedOut")["occurredAt"].clone();
    let after_cut = all_events(&app, &auditor, json!({ "userId": "sam", "from": cut }), 50).await;
    assert_eq!(
        types(&after_cut)[..2],
        ["VerificationFailed", "UserLockedOut"],
        "`from` is inclusive"
    );
    let before_cut = all_events(&app, &auditor, json!({ "userId": "sam", "to": cut }), 50).await;
    assert_eq!(before_cut.len() + after_cut.len(), sam.len());
    assert_eq!(
        types(&before_cut).last().copied(),
        Some("VerificationFailed")
    );

    // Not one secret anywhere: not in the query output, not in the export, not the phone
    // number or the email address in full.
    stored_secrets(&app, &tenant_id, &mut secrets).await;
    secrets.add("+995555123456");
    secrets.add("5551234");
    secrets.add("555 12 34");
    secrets.add("Sam.Sample");
    secrets.add("sam.sample");
    let shown = serde_json::to_string(&everything).unwrap();
    secrets.assert_absent("auditEvents", &shown);
    let export = export(&app, &auditor, "").await;
    assert_eq!(export.status(), 200);
    let body = export.text().await.unwrap();
    secrets.assert_absent("the export", &body);
}

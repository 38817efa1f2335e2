//! Role guards: what each role may and may not do.

use serde_json::json;
use twofold_tests::spawn_app;

const ISSUE: &str = "mutation { issueApiKey(role: APP, label: \"x\") { key { id } } }";
const POLICY: &str =
    "mutation { setPolicy(input: { enforceTwoFactor: true }) { enforceTwoFactor } }";
const CREATE: &str = "mutation { createTenant(name: \"Other\") { tenant { id } } }";

#[tokio::test]
async fn every_role_reads_its_tenant() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    for key in [&admin, &app_key, &auditor] {
        let a = app.gql(Some(key), "{ tenant { id } }", json!({})).await;
        assert_eq!(a.data()["tenant"]["id"], tenant.as_str());
    }
}

#[tokio::test]
async fn app_and_auditor_keys_cannot_manage_the_tenant() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (admin_id, _) = app.issue_key(&admin, "ADMIN").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let revoke = format!("mutation {{ revokeApiKey(keyId: \"{admin_id}\") {{ id }} }}");
    for key in [&app_key, &auditor] {
        for query in [ISSUE, POLICY, revoke.as_str(), CREATE] {
            let a = app.gql(Some(key), query, json!({})).await;
            assert_eq!(a.error_code(), "FORBIDDEN", "{query}");
            assert!(a.body["data"].is_null());
        }
    }
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        events_before, events_after,
        "a refused request changed something"
    );
    assert_eq!(app.count_events(&tenant, "TwoFactorPolicySet").await, 0);
}

#[tokio::test]
async fn admin_keys_cannot_create_tenants() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let a = app.gql(Some(&admin), CREATE, json!({})).await;
    assert_eq!(a.error_code(), "FORBIDDEN");
}

#[tokio::test]
async fn the_operator_token_may_only_create_tenants() {
    let app = spawn_app().await;
    app.create_tenant("Acme").await;
    for query in ["{ tenant { id } }", ISSUE, POLICY] {
        let a = app.gql(Some(&app.operator_token), query, json!({})).await;
        assert_eq!(a.error_code(), "FORBIDDEN", "{query}");
        assert!(a.error_message().contains("createTenant"));
    }
}

#[tokio::test]
async fn without_credentials_every_operation_is_unauthenticated() {
    let app = spawn_app().await;
    for query in ["{ tenant { id } }", ISSUE, POLICY, CREATE] {
        let a = app.gql(None, query, json!({})).await;
        assert_eq!(a.error_code(), "UNAUTHENTICATED", "{query}");
    }
}

/// Every operation of the API with the roles allowed to call it. The test below fails when an
/// operation is added without being listed here, so no guard is forgotten.
const OPERATIONS: &[(&str, &str, &[&str])] = &[
    ("tenant", "{ tenant { id } }", &["APP", "ADMIN", "AUDITOR"]),
    ("user", "{ user(userId: \"u\") { enabled } }", &["APP", "ADMIN"]),
    ("signInRequirement", "{ signInRequirement(userId: \"u\") { reason } }", &["APP"]),
    ("compliance", "{ compliance { totalUsers } }", &["ADMIN", "AUDITOR"]),
    ("auditEvents", "{ auditEvents { hasNextPage } }", &["ADMIN", "AUDITOR"]),
    ("createTenant", CREATE, &[]),
    ("issueApiKey", ISSUE, &["ADMIN"]),
    ("revokeApiKey", "mutation { revokeApiKey(keyId: \"nokey\") { id } }", &["ADMIN"]),
    ("setPolicy", POLICY, &["ADMIN"]),
    ("setDeliverySettings", "mutation { setDeliverySettings(input: { senderName: \"Acme\" }) { version } }", &["ADMIN"]),
    ("clearDeliverySettings", "mutation { clearDeliverySettings }", &["ADMIN"]),
    ("testDelivery", "mutation { testDelivery(channel: EMAIL, destination: \"a@example.com\") { delivered } }", &["ADMIN"]),
    ("resetTwoFactor", "mutation { resetTwoFactor(userId: \"u\", reason: \"r\") { enabled } }", &["ADMIN"]),
    ("clearLockout", "mutation { clearLockout(userId: \"u\", reason: \"r\") { enabled } }", &["ADMIN"]),
    ("eraseUser", "mutation { eraseUser(userId: \"u\", reason: \"r\") { keysDestroyed } }", &["ADMIN"]),
    ("startTotpEnrollment", "mutation { startTotpEnrollment(userId: \"u\") { secret } }", &["APP"]),
    ("confirmTotpEnrollment", "mutation { confirmTotpEnrollment(userId: \"u\", code: \"123456\") { codes } }", &["APP"]),
    ("addEmail", "mutation { addEmail(userId: \"u\", email: \"u@example.com\") { id } }", &["APP"]),
    ("addPhone", "mutation { addPhone(userId: \"u\", phone: \"+995555123456\") { id } }", &["APP"]),
    ("confirmChannel", "mutation { confirmChannel(userId: \"u\", challengeId: \"c\", code: \"123456\") { codes } }", &["APP"]),
    ("setPreferredChannel", "mutation { setPreferredChannel(userId: \"u\", channel: EMAIL) { enabled } }", &["APP"]),
    ("sendCode", "mutation { sendCode(userId: \"u\") { id } }", &["APP"]),
    ("verify", "mutation { verify(userId: \"u\", method: TOTP, code: \"123456\") { method } }", &["APP"]),
    ("regenerateRecoveryCodes", "mutation { regenerateRecoveryCodes(userId: \"u\", method: TOTP, code: \"123456\") { codes } }", &["APP"]),
    ("disableTwoFactor", "mutation { disableTwoFactor(userId: \"u\", method: TOTP, code: \"123456\") { enabled } }", &["APP"]),
    ("revokeTrustedDevice", "mutation { revokeTrustedDevice(userId: \"u\", deviceId: \"d\") { enabled } }", &["APP"]),
    ("removeFactor", "mutation { removeFactor(userId: \"u\", method: SMS, proof: { method: TOTP, code: \"123456\" }) { enabled } }", &["APP"]),
    ("startWebAuthnRegistration", "mutation { startWebAuthnRegistration(userId: \"u\", displayName: \"U\") { challengeId } }", &["APP"]),
    ("finishWebAuthnRegistration", "mutation { finishWebAuthnRegistration(userId: \"u\", challengeId: \"c\", credential: \"{}\") { codes } }", &["APP"]),
    ("startWebAuthnAuthentication", "mutation { startWebAuthnAuthentication(userId: \"u\") { challengeId } }", &["APP"]),
    ("createUserSession", "mutation { createUserSession(userId: \"u\", purpose: ENROLL, returnUrl: \"https://app.example.com/\") { id } }", &["APP"]),
    ("redeemUserSession", "mutation { redeemUserSession(code: \"tfr_x\", sessionId: \"hs_x\") { userId } }", &["APP"]),
];

#[tokio::test]
async fn each_role_reaches_exactly_its_operations_and_an_auditor_changes_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;

    // The table covers every query and mutation the schema has.
    let a = app
        .gql(
            Some(&admin),
            "{ q: __type(name: \"Query\") { fields { name } } m: __type(name: \"Mutation\") { fields { name } } }",
            json!({}),
        )
        .await;
    let mut exposed: Vec<String> = ["q", "m"]
        .iter()
        .flat_map(|t| a.data()[t]["fields"].as_array().unwrap().clone())
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    exposed.sort();
    let mut listed: Vec<String> = OPERATIONS.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(exposed, listed, "an operation is missing from OPERATIONS");

    // Delivery outcomes are recorded by the worker after a request returns, so they are left
    // out of the count.
    let events = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM events \
             WHERE event_type NOT IN ('CodeDelivered', 'CodeDeliveryFailed')",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    for (role, key) in [("APP", &app_key), ("ADMIN", &admin), ("AUDITOR", &auditor)] {
        for (name, query, allowed) in OPERATIONS {
            let before = events().await;
            let a = app.gql(Some(key), query, json!({})).await;
            let code = a.body["errors"][0]["extensions"]["code"].as_str();
            if allowed.contains(&role) {
                assert_ne!(
                    code,
                    Some("FORBIDDEN"),
                    "{role} may call {name}: {}",
                    a.body
                );
            } else {
                assert_eq!(code, Some("FORBIDDEN"), "{role} must not call {name}");
                assert_eq!(
                    events().await,
                    before,
                    "{role} was refused {name} but it recorded"
                );
            }
        }
    }
}

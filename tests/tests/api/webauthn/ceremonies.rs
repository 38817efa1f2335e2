//! Registering, signing in, managing keys, the policy, compliance and the audit view.

use serde_json::{json, Value};
use twofold_tests::spawn_app;

use super::authenticator::{Context, SoftKey};
use super::*;

#[tokio::test]
async fn a_first_key_gives_ten_recovery_codes_and_signs_in() {
    let (app, t) = app_and_tenant().await;
    let mut soft = SoftKey::new();

    let a = start_registration(&app, &t.key, "alice", Value::Null).await;
    let (id, options) = challenge(&a, "startWebAuthnRegistration");
    let o: Value = serde_json::from_str(&options).unwrap();
    assert_eq!(o["rp"]["id"], "example.com");
    assert_eq!(o["rp"]["name"], "Acme");
    assert_eq!(o["user"]["name"], "alice");
    assert_eq!(o["user"]["displayName"], "Alice Example");
    assert_eq!(o["attestation"], "none");
    assert_eq!(o["authenticatorSelection"]["userVerification"], "preferred");
    assert!(o["challenge"].as_str().unwrap().len() >= 43, "{o}");
    assert_eq!(o["excludeCredentials"], json!([]));

    let credential = soft.register(&options, &Context::at(ORIGIN));
    let done = finish_registration(&app, &t.key, "alice", &id, &credential).await;
    let codes = done.data()["finishWebAuthnRegistration"]["codes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(codes.len(), 10);

    let user = status(&app, &t.key, "alice").await;
    assert_eq!(user["enabled"], true);
    assert_eq!(user["methods"], json!(["WEBAUTHN", "RECOVERY_CODE"]));
    let keys = user["webAuthnCredentials"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["label"], "YubiKey");
    assert!(keys[0]["lastUsedAt"].is_null());

    let decision = app
        .gql(
            Some(&t.key),
            "query { signInRequirement(userId: \"alice\") { required methods reason } }",
            json!({}),
        )
        .await;
    assert_eq!(
        decision.data()["signInRequirement"],
        json!({ "required": true, "methods": ["WEBAUTHN", "RECOVERY_CODE"], "reason": "ENROLLED" })
    );

    let (id, options) = start_sign_in(&app, &t.key, "alice").await;
    let o: Value = serde_json::from_str(&options).unwrap();
    assert_eq!(o["rpId"], "example.com");
    assert_eq!(o["allowCredentials"][0]["id"], soft.id_b64());
    let assertion = soft.sign(&options, &Context::at(ORIGIN));
    let ok = verify(&app, &t.key, "alice", &id, &assertion).await;
    assert_eq!(ok.data()["verify"]["method"], "WEBAUTHN");
    assert_eq!(ok.data()["verify"]["recoveryCodesRemaining"], 10);

    let user = status(&app, &t.key, "alice").await;
    assert!(!user["webAuthnCredentials"][0]["lastUsedAt"].is_null());
    assert_eq!(app.count_events(&t.id, "WebAuthnCredentialUsed").await, 1);
}

#[tokio::test]
async fn a_further_key_needs_proof_and_the_options_exclude_the_first() {
    let (app, t) = app_and_tenant().await;
    let mut first = SoftKey::new();
    let codes = enrolled(&app, &t.key, "alice", &mut first).await;

    let refused = start_registration(&app, &t.key, "alice", Value::Null).await;
    assert_eq!(refused.error_code(), "POLICY_VIOLATION");

    let proof = json!({ "method": "RECOVERY_CODE", "code": codes[0] });
    let a = start_registration(&app, &t.key, "alice", proof).await;
    let (id, options) = challenge(&a, "startWebAuthnRegistration");
    let o: Value = serde_json::from_str(&options).unwrap();
    assert_eq!(o["excludeCredentials"][0]["id"], first.id_b64());
    let mut second = SoftKey::new();
    let credential = second.register(&options, &Context::at(ORIGIN));
    let done = finish_registration(&app, &t.key, "alice", &id, &credential).await;
    // Not the first factor: the saved recovery codes stay, none are issued.
    assert!(done.data()["finishWebAuthnRegistration"].is_null());
    let user = status(&app, &t.key, "alice").await;
    assert_eq!(user["webAuthnCredentials"].as_array().unwrap().len(), 2);
    assert_eq!(user["recoveryCodesRemaining"], 9);

    // Both sign in.
    for soft in [&mut first, &mut second] {
        let ok = sign_in(&app, &t.key, "alice", soft, &Context::at(ORIGIN)).await;
        assert_eq!(ok.data()["verify"]["method"], "WEBAUTHN");
    }
}

#[tokio::test]
async fn required_user_verification_runs_the_passkey_ceremonies() {
    let app = spawn_app().await;
    let t = tenant(&app, "Strict", "REQUIRED").await;
    let mut soft = SoftKey::new();
    let (id, options) = challenge(
        &start_registration(&app, &t.key, "alice", Value::Null).await,
        "startWebAuthnRegistration",
    );
    let o: Value = serde_json::from_str(&options).unwrap();
    assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
    let credential = soft.register(&options, &Context::at(ORIGIN));
    finish_registration(&app, &t.key, "alice", &id, &credential)
        .await
        .data();
    let ok = sign_in(&app, &t.key, "alice", &mut soft, &Context::at(ORIGIN)).await;
    assert_eq!(ok.data()["verify"]["method"], "WEBAUTHN");
}

const REMOVE: &str = "mutation($u: ID!, $m: Method!, $p: ProofInput!, $c: ID) { removeFactor(userId: $u, method: $m, proof: $p, credentialId: $c) { enabled methods webAuthnCredentials { id } } }";

#[tokio::test]
async fn one_key_is_removed_by_id_and_the_last_takes_2fa_with_it() {
    let (app, t) = app_and_tenant().await;
    let mut first = SoftKey::new();
    let codes = enrolled(&app, &t.key, "alice", &mut first).await;
    let mut second = SoftKey::new();
    register(
        &app,
        &t.key,
        "alice",
        &mut second,
        json!({ "method": "RECOVERY_CODE", "code": codes[0] }),
    )
    .await;
    let ids: Vec<String> = status(&app, &t.key, "alice").await["webAuthnCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();

    // Proving with the key being kept: a WebAuthn assertion is a proof like any code.
    let (challenge_id, options) = start_sign_in(&app, &t.key, "alice").await;
    let assertion = second.sign(&options, &Context::at(ORIGIN));
    let proof = json!({ "method": "WEBAUTHN", "code": assertion, "challengeId": challenge_id });
    let a = app
        .gql(
            Some(&t.key),
            REMOVE,
            json!({ "u": "alice", "m": "WEBAUTHN", "p": proof, "c": ids[0] }),
        )
        .await;
    assert_eq!(
        a.data()["removeFactor"]["webAuthnCredentials"],
        json!([{ "id": ids[1] }])
    );
    assert_eq!(
        app.count_events(&t.id, "WebAuthnCredentialRemoved").await,
        1
    );
    // The removed key no longer signs in.
    let gone = sign_in(&app, &t.key, "alice", &mut first, &Context::at(ORIGIN)).await;
    assert_eq!(gone.error_code(), "INVALID_CODE");

    let unknown = app
        .gql(
            Some(&t.key),
            REMOVE,
            json!({ "u": "alice", "m": "WEBAUTHN", "p": { "method": "RECOVERY_CODE", "code": codes[1] }, "c": "nosuchkey" }),
        )
        .await;
    assert_eq!(unknown.error_code(), "NOT_FOUND");

    let last = app
        .gql(
            Some(&t.key),
            REMOVE,
            json!({ "u": "alice", "m": "WEBAUTHN", "p": { "method": "RECOVERY_CODE", "code": codes[2] }, "c": ids[1] }),
        )
        .await;
    assert_eq!(
        last.data()["removeFactor"],
        json!({ "enabled": false, "methods": [], "webAuthnCredentials": [] })
    );
}

#[tokio::test]
async fn reset_and_disable_remove_every_key() {
    let (app, t) = app_and_tenant().await;
    let mut soft = SoftKey::new();
    let codes = enrolled(&app, &t.key, "alice", &mut soft).await;
    let off = app
        .gql(
            Some(&t.key),
            "mutation($c: String!) { disableTwoFactor(userId: \"alice\", method: RECOVERY_CODE, code: $c) { enabled webAuthnCredentials { id } } }",
            json!({ "c": codes[0] }),
        )
        .await;
    assert_eq!(
        off.data()["disableTwoFactor"],
        json!({ "enabled": false, "webAuthnCredentials": [] })
    );

    let mut other = SoftKey::new();
    enrolled(&app, &t.key, "bob", &mut other).await;
    let reset = app
        .gql(
            Some(&t.admin),
            "mutation { resetTwoFactor(userId: \"bob\", reason: \"lost key\") { enabled webAuthnCredentials { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        reset.data()["resetTwoFactor"],
        json!({ "enabled": false, "webAuthnCredentials": [] })
    );
    let a = app
        .gql(Some(&t.key), START_AUTHENTICATION, json!({ "u": "bob" }))
        .await;
    assert_eq!(a.error_code(), "NOT_FOUND");
}

#[tokio::test]
async fn the_relying_party_is_validated_and_read_back() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let set = |rp: Value, methods: Value| {
        app.gql(
            Some(&admin),
            SET_POLICY,
            json!({ "i": { "webAuthn": rp, "allowedMethods": methods } }),
        )
    };
    let rp = |id: &str, origin: &str| json!({ "rpId": id, "rpName": "Acme", "origins": [origin] });
    for (bad, origin) in [
        ("com", "https://example.com"),
        ("co.uk", "https://shop.example.co.uk"),
        ("example.org", "https://example.com"),
        ("example.com", "http://example.com"),
        ("example.com", "https://example.com/login"),
    ] {
        let a = set(rp(bad, origin), Value::Null).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{bad} {origin}");
    }
    let unconfigured = set(Value::Null, json!(["TOTP", "WEBAUTHN"])).await;
    assert_eq!(unconfigured.error_code(), "INVALID_INPUT");
    let ok = set(
        rp("example.com", "https://login.example.com/"),
        json!(["TOTP", "WEBAUTHN"]),
    )
    .await;
    assert_eq!(
        ok.data()["setPolicy"],
        json!({
            "allowedMethods": ["TOTP", "WEBAUTHN"],
            "webAuthn": {
                "rpId": "example.com",
                "rpName": "Acme",
                "origins": ["https://login.example.com"],
                "userVerification": "PREFERRED",
            },
        })
    );
    let local = set(rp("localhost", "http://localhost:8080"), Value::Null).await;
    assert_eq!(
        local.data()["setPolicy"]["webAuthn"]["origins"],
        json!(["http://localhost:8080"])
    );
}

#[tokio::test]
async fn without_webauthn_in_the_policy_no_ceremony_starts() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let a = start_registration(&app, &key, "alice", Value::Null).await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION");
}

#[tokio::test]
async fn a_user_with_only_a_passkey_counts_as_enrolled() {
    let (app, t) = app_and_tenant().await;
    let mut soft = SoftKey::new();
    enrolled(&app, &t.key, "alice", &mut soft).await;
    app.gql(
        Some(&t.key),
        "query { signInRequirement(userId: \"bob\") { required } }",
        json!({}),
    )
    .await
    .data();
    let report = app
        .gql(
            Some(&t.admin),
            "{ compliance { totalUsers enrolledUsers nonCompliant { userId } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        report.data()["compliance"],
        json!({ "totalUsers": 2, "enrolledUsers": 1, "nonCompliant": [{ "userId": "bob" }] })
    );
}

#[tokio::test]
async fn auditors_see_webauthn_events_without_keys_or_challenges() {
    let (app, t) = app_and_tenant().await;
    let mut soft = SoftKey::new();
    enrolled(&app, &t.key, "alice", &mut soft).await;
    sign_in(&app, &t.key, "alice", &mut soft, &Context::at(ORIGIN))
        .await
        .data();
    crate::audit::settled(&app, &t.id).await;
    let a = app
        .gql(
            Some(&t.admin),
            "{ auditEvents(filter: { userId: \"alice\" }, oldestFirst: true) { nodes { eventType data } } }",
            json!({}),
        )
        .await;
    let nodes = a.data()["auditEvents"]["nodes"].as_array().unwrap().clone();
    let types: Vec<&str> = nodes
        .iter()
        .map(|n| n["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "WebAuthnRegistrationStarted",
            "WebAuthnCredentialRegistered",
            "RecoveryCodesGenerated",
            "WebAuthnAuthenticationStarted",
            "CodeVerified",
            "WebAuthnCredentialUsed",
        ]
    );
    let registered = &nodes[1]["data"];
    let shown = registered["authenticatorCredentialId"].as_str().unwrap();
    assert_eq!(shown, format!("{}…", &soft.id_b64()[..8]));
    // What is stored, sealed, never reaches the auditor.
    let stored: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE tenant_id = $1 \
         AND (event_type LIKE 'WebAuthn%Started' OR event_type = 'WebAuthnCredentialRegistered')",
    )
    .bind(&t.id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let everything = a.body.to_string();
    for payload in stored {
        let event = payload.as_object().unwrap().values().next().unwrap();
        for field in ["state", "credential"] {
            if let Some(sealed) = event[field].as_str() {
                assert!(!everything.contains(sealed), "{field} shown to auditors");
            }
        }
    }
    assert!(
        !everything.contains(&soft.id_b64()),
        "full credential id shown"
    );
}

#[tokio::test]
async fn a_passkey_sign_in_may_trust_the_device() {
    let (app, t) = app_and_tenant().await;
    let mut soft = SoftKey::new();
    enrolled(&app, &t.key, "alice", &mut soft).await;
    let (id, options) = start_sign_in(&app, &t.key, "alice").await;
    let assertion = soft.sign(&options, &Context::at(ORIGIN));
    let a = app
        .gql(
            Some(&t.key),
            "mutation($c: ID, $code: String!) { verify(userId: \"alice\", method: WEBAUTHN, challengeId: $c, code: $code, trustDevice: true, deviceLabel: \"Laptop\") { method deviceToken } }",
            json!({ "c": id, "code": assertion }),
        )
        .await;
    let token = a.data()["verify"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let decision = app
        .gql(
            Some(&t.key),
            "query($d: String) { signInRequirement(userId: \"alice\", deviceToken: $d) { required reason } }",
            json!({ "d": token }),
        )
        .await;
    assert_eq!(
        decision.data()["signInRequirement"],
        json!({ "required": false, "reason": "TRUSTED_DEVICE" })
    );
}

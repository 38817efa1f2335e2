//! "Remember this device": a verification with `trustDevice` returns an opaque token that
//! stands in for the second factor at later sign-ins, until it expires or is revoked (by the
//! user, by disabling 2FA, by an admin reset or by new recovery codes).

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use twofold_tests::{captured_logs, spawn_app, TestApp};

use crate::sign_in::{acme, requirement, set_policy};
use crate::totp::{enroll, status};

const TRUST: &str = "mutation($u: ID!, $c: String!, $l: String) { verify(userId: $u, method: RECOVERY_CODE, code: $c, trustDevice: true, deviceLabel: $l) { method deviceToken recoveryCodesRemaining } }";
const REVOKE: &str = "mutation($u: ID!, $d: ID!) { revokeTrustedDevice(userId: $u, deviceId: $d) { trustedDevices { id } } }";
const DEVICES: &str =
    "query($u: ID!) { user(userId: $u) { trustedDevices { id label createdAt expiresAt } } }";

/// Verifies with a recovery code and trusts the device; returns the token.
async fn trust(app: &TestApp, key: &str, user: &str, code: &str, label: Option<&str>) -> String {
    let a = app
        .gql(
            Some(key),
            TRUST,
            json!({ "u": user, "c": code, "l": label }),
        )
        .await;
    let token = a.data()["verify"]["deviceToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no device token: {}", a.body))
        .to_owned();
    assert!(token.starts_with("tfd_") && token.len() > 50, "{token}");
    token
}

async fn devices(app: &TestApp, key: &str, user: &str) -> Vec<Value> {
    let a = app.gql(Some(key), DEVICES, json!({ "u": user })).await;
    a.data()["user"]["trustedDevices"]
        .as_array()
        .unwrap()
        .clone()
}

async fn reason(app: &TestApp, key: &str, user: &str, token: &str) -> String {
    requirement(app, key, user, Some(token), false).await["reason"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn revocations(app: &TestApp, user: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT payload -> 'DeviceTrustRevoked' ->> 'reason' FROM events \
         WHERE aggregate_id LIKE '%/user/' || $1 AND event_type = 'DeviceTrustRevoked' \
         ORDER BY global_position",
    )
    .bind(user)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_trusted_device_skips_the_factor_for_its_user_only() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (_, codes) = enroll(&app, &t.app, "alice").await;
    enroll(&app, &t.app, "bob").await;
    let token = trust(&app, &t.app, "alice", &codes[0], Some("Work laptop")).await;

    let listed = devices(&app, &t.app, "alice").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["label"], "Work laptop");
    let created = DateTime::parse_from_rfc3339(listed[0]["createdAt"].as_str().unwrap()).unwrap();
    let expires = DateTime::parse_from_rfc3339(listed[0]["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires - created,
        Duration::days(30),
        "the default lifetime"
    );

    let r = requirement(&app, &t.app, "alice", Some(&token), false).await;
    assert_eq!(r["reason"], "TRUSTED_DEVICE");
    assert_eq!(r["required"], false);
    assert_eq!(r["trustedDeviceId"], listed[0]["id"]);
    // Without the token, with someone else's user, or with a made-up token: the factor.
    assert_eq!(
        requirement(&app, &t.app, "alice", None, false).await["reason"],
        "ENROLLED"
    );
    assert_eq!(reason(&app, &t.app, "bob", &token).await, "ENROLLED");
    let last = if token.ends_with('a') { 'b' } else { 'a' };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    assert_eq!(reason(&app, &t.app, "alice", &forged).await, "ENROLLED");
    let rejected: Vec<bool> = sqlx::query_scalar(
        "SELECT (payload -> 'SignInEvaluated' ->> 'device_token_rejected')::boolean FROM events \
         WHERE event_type = 'SignInEvaluated' ORDER BY global_position",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(rejected, [false, false, true, true]);

    // Another tenant's app cannot use it either.
    let (_, other_admin) = app.create_tenant("Other").await;
    let (_, other_app) = app.issue_key(&other_admin, "APP").await;
    assert_eq!(
        reason(&app, &other_app, "alice", &token).await,
        "NOT_ENROLLED"
    );

    // The token exists only with the caller: no table and no log line holds it.
    let stored: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%' \
                   OR metadata::text LIKE '%' || $1 || '%') \
              + (SELECT count(*) FROM aggregate_snapshots WHERE state::text LIKE '%' || $1 || '%')",
    )
    .bind(&token[4..])
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(stored, 0);
    assert!(!captured_logs().contains(&token[4..]));
}

#[tokio::test]
async fn revoking_ends_the_trust_of_that_device_only() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (_, codes) = enroll(&app, &t.app, "alice").await;
    let phone = trust(&app, &t.app, "alice", &codes[0], Some("Phone")).await;
    let laptop = trust(&app, &t.app, "alice", &codes[1], None).await;
    let listed = devices(&app, &t.app, "alice").await;
    assert_eq!(listed.len(), 2);
    let phone_id = listed[0]["id"].as_str().unwrap().to_owned();

    let a = app
        .gql(Some(&t.app), REVOKE, json!({ "u": "alice", "d": phone_id }))
        .await;
    assert_eq!(
        a.data()["revokeTrustedDevice"]["trustedDevices"],
        json!([{ "id": listed[1]["id"] }])
    );
    assert_eq!(reason(&app, &t.app, "alice", &phone).await, "ENROLLED");
    assert_eq!(
        reason(&app, &t.app, "alice", &laptop).await,
        "TRUSTED_DEVICE"
    );
    // Revoking again, or a device that never was: not found, and nothing recorded.
    for id in [phone_id.as_str(), "nosuchdevice"] {
        let a = app
            .gql(Some(&t.app), REVOKE, json!({ "u": "alice", "d": id }))
            .await;
        assert_eq!(a.error_code(), "NOT_FOUND", "{id}");
    }
    assert_eq!(revocations(&app, "alice").await, ["REVOKED"]);
}

#[tokio::test]
async fn new_recovery_codes_disable_and_reset_revoke_every_device() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let regen = "mutation($u: ID!, $c: String!) { regenerateRecoveryCodes(userId: $u, method: RECOVERY_CODE, code: $c) { codes } }";
    let disable = "mutation($u: ID!, $c: String!) { disableTwoFactor(userId: $u, method: RECOVERY_CODE, code: $c) { enabled } }";
    let reset =
        "mutation($u: ID!) { resetTwoFactor(userId: $u, reason: \"lost phone\") { enabled } }";

    // New recovery codes.
    let (_, codes) = enroll(&app, &t.app, "alice").await;
    let first = trust(&app, &t.app, "alice", &codes[0], None).await;
    let second = trust(&app, &t.app, "alice", &codes[1], None).await;
    let a = app
        .gql(Some(&t.app), regen, json!({ "u": "alice", "c": codes[2] }))
        .await;
    let new_codes: Vec<String> =
        serde_json::from_value(a.data()["regenerateRecoveryCodes"]["codes"].clone()).unwrap();
    for token in [&first, &second] {
        assert_eq!(reason(&app, &t.app, "alice", token).await, "ENROLLED");
    }
    assert!(devices(&app, &t.app, "alice").await.is_empty());
    assert_eq!(
        revocations(&app, "alice").await,
        ["RECOVERY_CODES_REGENERATED", "RECOVERY_CODES_REGENERATED"]
    );

    // Disabling.
    let third = trust(&app, &t.app, "alice", &new_codes[0], None).await;
    let a = app
        .gql(
            Some(&t.app),
            disable,
            json!({ "u": "alice", "c": new_codes[1] }),
        )
        .await;
    assert_eq!(a.data()["disableTwoFactor"]["enabled"], false);
    assert!(devices(&app, &t.app, "alice").await.is_empty());
    assert_eq!(reason(&app, &t.app, "alice", &third).await, "NOT_ENROLLED");
    assert_eq!(
        revocations(&app, "alice").await.last().unwrap(),
        "TWO_FACTOR_DISABLED"
    );

    // An admin reset.
    let (_, codes) = enroll(&app, &t.app, "bob").await;
    let token = trust(&app, &t.app, "bob", &codes[0], None).await;
    let a = app.gql(Some(&t.admin), reset, json!({ "u": "bob" })).await;
    assert_eq!(a.data()["resetTwoFactor"]["enabled"], false);
    assert_eq!(revocations(&app, "bob").await, ["TWO_FACTOR_RESET"]);
    assert_eq!(reason(&app, &t.app, "bob", &token).await, "NOT_ENROLLED");
    assert!(status(&app, &t.app, "bob").await["trustedDevices"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_policy_can_turn_trusted_devices_off() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (_, codes) = enroll(&app, &t.app, "alice").await;
    let token = trust(&app, &t.app, "alice", &codes[0], None).await;
    set_policy(&app, &t.admin, json!({ "trustedDeviceDays": 0 })).await;
    // Existing tokens stop working at once...
    assert_eq!(reason(&app, &t.app, "alice", &token).await, "ENROLLED");
    // ...and no new device can be trusted: refused before the code is even checked.
    let events = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    let before = events().await;
    let a = app
        .gql(Some(&t.app), TRUST, json!({ "u": "alice", "c": codes[1] }))
        .await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION");
    assert_eq!(events().await, before);
    // A shorter lifetime applies to new devices.
    set_policy(&app, &t.admin, json!({ "trustedDeviceDays": 1 })).await;
    assert_eq!(
        reason(&app, &t.app, "alice", &token).await,
        "TRUSTED_DEVICE"
    );
    trust(&app, &t.app, "alice", &codes[1], None).await;
    let listed = devices(&app, &t.app, "alice").await;
    let created = DateTime::parse_from_rfc3339(listed[1]["createdAt"].as_str().unwrap()).unwrap();
    let expires = DateTime::parse_from_rfc3339(listed[1]["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, Duration::days(1));
    assert!(Utc::now() < expires);
}

#[tokio::test]
async fn bad_device_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (_, codes) = enroll(&app, &t.app, "alice").await;
    let user_events = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM events WHERE aggregate_id LIKE '%/user/alice'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
    };
    let before = user_events().await;
    let long = "l".repeat(65);
    for (query, vars, code) in [
        (TRUST, json!({ "u": "alice", "c": codes[0], "l": long }), "INVALID_INPUT"),
        (TRUST, json!({ "u": "alice", "c": codes[0], "l": " " }), "INVALID_INPUT"),
        (
            "mutation($u: ID!, $c: String!) { verify(userId: $u, method: RECOVERY_CODE, code: $c, deviceLabel: \"x\") { method } }",
            json!({ "u": "alice", "c": codes[0] }),
            "INVALID_INPUT",
        ),
        (REVOKE, json!({ "u": "alice", "d": "" }), "NOT_FOUND"),
    ] {
        let a = app.gql(Some(&t.app), query, vars.clone()).await;
        assert_eq!(a.error_code(), code, "{vars}");
    }
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;
    for key in [&t.admin, &auditor] {
        let a = app
            .gql(Some(key), REVOKE, json!({ "u": "alice", "d": "x" }))
            .await;
        assert_eq!(a.error_code(), "FORBIDDEN");
    }
    assert_eq!(
        user_events().await,
        before,
        "a refused request recorded something"
    );
}

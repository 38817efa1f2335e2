//! Enrolling an authenticator: the secret, its URI and QR codes, the policy's algorithm and
//! digits, a pending enrollment, and who may start one with what input.

use serde_json::json;
use twofold_tests::spawn_app;

use super::{start, status, tenant, verify, App, CONFIRM, START, STATUS};

fn decode_png_qr(data_uri: &str) -> String {
    use base64::Engine;
    let b64 = data_uri
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URI");
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let img = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

#[tokio::test]
async fn enrollment_gives_a_secret_a_uri_and_qr_codes_of_that_uri() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme Corp").await;
    let e = start(&app, &t.app, "alice").await;
    let secret = e["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    assert!(secret
        .chars()
        .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
    let uri = e["otpauthUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(uri.contains("issuer=Acme%20Corp"), "{uri}");
    assert!(uri.contains("alice%40acme"), "{uri}");
    assert_eq!(
        (
            e["algorithm"].as_str(),
            e["digits"].as_i64(),
            e["period"].as_i64()
        ),
        (Some("SHA1"), Some(6), Some(30))
    );
    assert_eq!(decode_png_qr(e["qrPng"].as_str().unwrap()), uri);
    let svg = e["qrSvg"].as_str().unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("viewBox"), "{svg}");

    // Restarting replaces the secret.
    let again = start(&app, &t.app, "alice").await;
    assert_ne!(again["secret"], e["secret"]);
}

#[tokio::test]
async fn policy_selects_algorithm_and_digits() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    app.gql(
        Some(&t.admin),
        "mutation { setPolicy(input: { totpAlgorithm: \"SHA512\", totpDigits: 8 }) { totpDigits } }",
        json!({}),
    )
    .await
    .data();
    let e = start(&app, &t.app, "bob").await;
    assert_eq!(
        (e["algorithm"].as_str(), e["digits"].as_i64()),
        (Some("SHA512"), Some(8))
    );
    let uri = e["otpauthUri"].as_str().unwrap();
    assert!(
        uri.contains("algorithm=SHA512") && uri.contains("digits=8"),
        "{uri}"
    );
    let mut authenticator = App::from_uri(uri);
    let code = authenticator.next_code();
    assert_eq!(code.len(), 8);
    let a = app
        .gql(Some(&t.app), CONFIRM, json!({ "u": "bob", "c": code }))
        .await;
    assert_eq!(
        a.data()["confirmTotpEnrollment"]["codes"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
}

#[tokio::test]
async fn a_pending_enrollment_does_nothing_until_confirmed() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    assert!(status(&app, &t.app, "carol").await.is_null(), "never seen");
    let first = start(&app, &t.app, "carol").await;
    let s = status(&app, &t.app, "carol").await;
    assert_eq!(
        (s["enabled"].as_bool(), s["totpPending"].as_bool()),
        (Some(false), Some(true))
    );
    let mut old = App::from_uri(first["otpauthUri"].as_str().unwrap());
    let a = verify(&app, &t.app, "carol", "TOTP", &old.next_code()).await;
    assert_eq!(
        a.error_code(),
        "NOT_FOUND",
        "a pending factor cannot sign in"
    );

    // A restart replaces the pending secret: the first one's codes no longer confirm.
    let second = start(&app, &t.app, "carol").await;
    let a = app
        .gql(
            Some(&t.app),
            CONFIRM,
            json!({ "u": "carol", "c": old.next_code() }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_CODE");
    assert_eq!(a.body["errors"][0]["extensions"]["remainingAttempts"], 9);
    let mut new = App::from_uri(second["otpauthUri"].as_str().unwrap());
    let a = app
        .gql(
            Some(&t.app),
            CONFIRM,
            json!({ "u": "carol", "c": new.next_code() }),
        )
        .await;
    a.data();
    let s = status(&app, &t.app, "carol").await;
    assert_eq!(s["enabled"], true);
    assert_eq!(s["methods"], json!(["TOTP", "RECOVERY_CODE"]));
    assert_eq!(s["recoveryCodesRemaining"], 10);
}

#[tokio::test]
async fn roles_and_bad_input_on_user_operations() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;
    for key in [&t.admin, &auditor] {
        let a = app
            .gql(Some(key), START, json!({ "u": "x", "l": null }))
            .await;
        assert_eq!(a.error_code(), "FORBIDDEN");
    }
    let a = app.gql(Some(&auditor), STATUS, json!({ "u": "x" })).await;
    assert_eq!(a.error_code(), "FORBIDDEN");
    for user in ["", &"u".repeat(129), "bad\nid"] {
        let a = app
            .gql(Some(&t.app), START, json!({ "u": user, "l": null }))
            .await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{user:?}");
    }
    let a = app
        .gql(
            Some(&t.app),
            START,
            json!({ "u": "ok", "l": "l".repeat(101) }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT");
    // The longest user id enrolls without a label (the label is the id, shortened).
    let a = app
        .gql(
            Some(&t.app),
            START,
            json!({ "u": "u".repeat(128), "l": null }),
        )
        .await;
    assert!(a.data()["startTotpEnrollment"]["otpauthUri"].is_string());
    let a = app
        .gql(Some(&t.app), CONFIRM, json!({ "u": "ok", "c": "123456" }))
        .await;
    assert_eq!(a.error_code(), "CONFLICT", "nothing to confirm");
    let a = verify(&app, &t.app, "ok", "CARRIER_PIGEON", "1").await;
    assert_eq!(a.error_code(), "INVALID_INPUT");
}

#[tokio::test]
async fn a_label_too_long_for_a_qr_code_is_invalid_input_not_internal() {
    let app = twofold_tests::spawn_app().await;
    // Each emoji takes 12 characters of the percent-encoded URI: 100 in the organisation's name
    // and 100 in the label do not fit in any QR code.
    let (_, admin) = app.create_tenant(&"😀".repeat(100)).await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let a = app
        .gql(
            Some(&key),
            START,
            serde_json::json!({ "u": "u1", "l": "😀".repeat(100) }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
    assert!(a.error_message().contains("too long for a QR code"));
    assert!(
        app.gql(
            Some(&key),
            "{ user(userId: \"u1\") { methods } }",
            serde_json::json!({})
        )
        .await
        .data()["user"]
            .is_null(),
        "nothing was recorded"
    );
}

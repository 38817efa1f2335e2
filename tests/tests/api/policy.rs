//! setPolicy: validated, all-or-nothing, recorded with old and new values.

use serde_json::{json, Value};
use twofold_tests::spawn_app;

const SET: &str = "mutation($i: PolicyInput!) { setPolicy(input: $i) { enforceTwoFactor enrollmentGracePeriodDays allowedMethods allowedCallingCodes ssoBypassesTwoFactor trustedDeviceDays codeDigits codeTtlSeconds totpDigits totpAlgorithm } }";

#[tokio::test]
async fn an_admin_sets_every_field_and_reads_it_back() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let input = json!({
        "enforceTwoFactor": true,
        "enrollmentGracePeriodDays": 14,
        "allowedMethods": ["TOTP", "SMS", "RECOVERY_CODE"],
        "allowedCallingCodes": ["995", "+44"],
        "ssoBypassesTwoFactor": true,
        "trustedDeviceDays": 0,
        "codeDigits": 8,
        "codeTtlSeconds": 300,
        "totpDigits": 8,
        "totpAlgorithm": "sha256",
    });
    let a = app.gql(Some(&admin), SET, json!({ "i": input })).await;
    let expected = json!({
        "enforceTwoFactor": true,
        "enrollmentGracePeriodDays": 14,
        "allowedMethods": ["TOTP", "SMS", "RECOVERY_CODE"],
        "allowedCallingCodes": ["44", "995"],
        "ssoBypassesTwoFactor": true,
        "trustedDeviceDays": 0,
        "codeDigits": 8,
        "codeTtlSeconds": 300,
        "totpDigits": 8,
        "totpAlgorithm": "SHA256",
    });
    assert_eq!(a.data()["setPolicy"], expected);
    let read = app
        .gql(
            Some(&admin),
            "{ tenant { policy { enforceTwoFactor enrollmentGracePeriodDays allowedMethods allowedCallingCodes ssoBypassesTwoFactor trustedDeviceDays codeDigits codeTtlSeconds totpDigits totpAlgorithm } } }",
            json!({}),
        )
        .await;
    assert_eq!(read.data()["tenant"]["policy"], expected);

    // One event, with both the old and the new policy for auditors.
    let payload: Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE tenant_id = $1 AND event_type = 'TwoFactorPolicySet'",
    )
    .bind(&tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let set = &payload["TwoFactorPolicySet"];
    assert_eq!(set["previous"]["codeDigits"], 6);
    assert_eq!(set["policy"]["codeDigits"], 8);
}

#[tokio::test]
async fn fields_left_null_keep_their_value() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    app.gql(Some(&admin), SET, json!({ "i": { "codeDigits": 7 } }))
        .await
        .data();
    let a = app
        .gql(
            Some(&admin),
            SET,
            json!({ "i": { "enforceTwoFactor": true } }),
        )
        .await;
    assert_eq!(a.data()["setPolicy"]["codeDigits"], 7);
    assert_eq!(a.data()["setPolicy"]["enforceTwoFactor"], true);
}

#[tokio::test]
async fn out_of_bounds_values_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let cases = [
        (
            json!({ "codeDigits": 5 }),
            "codeDigits must be between 6 and 8",
        ),
        (
            json!({ "codeDigits": 9 }),
            "codeDigits must be between 6 and 8",
        ),
        (
            json!({ "codeTtlSeconds": 59 }),
            "codeTtlSeconds must be between 60 and 3600",
        ),
        (
            json!({ "codeTtlSeconds": 3601 }),
            "codeTtlSeconds must be between 60 and 3600",
        ),
        (
            json!({ "trustedDeviceDays": -1 }),
            "trustedDeviceDays must be between 0 and 365",
        ),
        (
            json!({ "enrollmentGracePeriodDays": -3 }),
            "enrollmentGracePeriodDays must be between",
        ),
        (json!({ "totpDigits": 7 }), "totpDigits must be 6 or 8"),
        (
            json!({ "totpAlgorithm": "MD5" }),
            "totpAlgorithm must be one of",
        ),
        (
            json!({ "allowedCallingCodes": ["9950"] }),
            "not a country calling code",
        ),
        (
            json!({ "allowedCallingCodes": ["abc"] }),
            "not a country calling code",
        ),
        (
            json!({ "allowedMethods": [] }),
            "at least one of TOTP, EMAIL, SMS or WEBAUTHN",
        ),
        (
            json!({ "allowedMethods": ["RECOVERY_CODE"] }),
            "at least one of TOTP, EMAIL, SMS or WEBAUTHN",
        ),
        // A valid field does not rescue an invalid one in the same change.
        (
            json!({ "enforceTwoFactor": true, "codeDigits": 4 }),
            "codeDigits",
        ),
    ];
    for (input, message) in cases {
        let a = app.gql(Some(&admin), SET, json!({ "i": input })).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{input}");
        assert!(
            a.error_message().contains(message),
            "{input}: {}",
            a.error_message()
        );
    }
    // Unknown enum values and wrong types are refused by the schema itself.
    for input in [
        json!({ "allowedMethods": ["CARRIER_PIGEON"] }),
        json!({ "codeDigits": "six" }),
        json!({ "noSuchField": true }),
    ] {
        let a = app.gql(Some(&admin), SET, json!({ "i": input })).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{input}");
    }
    assert_eq!(app.count_events(&tenant, "TwoFactorPolicySet").await, 0);
    let read = app
        .gql(
            Some(&admin),
            "{ tenant { policy { enforceTwoFactor codeDigits } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        read.data()["tenant"]["policy"],
        json!({ "enforceTwoFactor": false, "codeDigits": 6 })
    );
}

#[tokio::test]
async fn a_change_to_the_current_values_records_nothing() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let a = app
        .gql(
            Some(&admin),
            SET,
            json!({ "i": { "codeDigits": 6, "enforceTwoFactor": false } }),
        )
        .await;
    assert_eq!(a.data()["setPolicy"]["codeDigits"], 6);
    assert_eq!(app.count_events(&tenant, "TwoFactorPolicySet").await, 0);
}

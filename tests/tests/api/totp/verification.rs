//! Signing in with TOTP and recovery codes: each code once, the lockout, new recovery codes,
//! disabling, an admin's reset, tenants kept apart, and the policy's allowed methods.

use futures::future::join_all;
use serde_json::{json, Value};
use twofold_tests::spawn_app;

use super::{enroll, status, tenant, verify, START};

#[tokio::test]
async fn sign_in_with_totp_and_recovery_codes() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, codes) = enroll(&app, &t.app, "dave").await;
    assert_eq!(codes.len(), 10);
    for c in &codes {
        assert_eq!(c.len(), 19, "four groups of four: {c}");
        assert_eq!(c.split('-').count(), 4);
    }

    let code = authenticator.next_code();
    let a = verify(&app, &t.app, "dave", "TOTP", &code).await;
    assert_eq!(a.data()["verify"]["method"], "TOTP");
    assert_eq!(a.data()["verify"]["recoveryCodesRemaining"], 10);
    // The same code (same time step) never works twice.
    let a = verify(&app, &t.app, "dave", "TOTP", &code).await;
    assert_eq!(a.error_code(), "INVALID_CODE");

    // Recovery codes: any order, any case, with or without separators, each once.
    let messy = codes[7].to_uppercase().replace('-', " ");
    let a = verify(&app, &t.app, "dave", "RECOVERY_CODE", &messy).await;
    assert_eq!(a.data()["verify"]["recoveryCodesRemaining"], 9);
    let a = verify(&app, &t.app, "dave", "RECOVERY_CODE", &codes[7]).await;
    assert_eq!(a.error_code(), "INVALID_CODE");
    let a = verify(
        &app,
        &t.app,
        "dave",
        "RECOVERY_CODE",
        &codes[2].replace('-', ""),
    )
    .await;
    assert_eq!(a.data()["verify"]["recoveryCodesRemaining"], 8);

    let s = status(&app, &t.app, "dave").await;
    assert!(s["lastVerifiedAt"].is_string());
    assert_eq!(s["recoveryCodesRemaining"], 8);
    assert_eq!(
        app.count_events_like("%/user/dave", "RecoveryCodeUsed")
            .await,
        2
    );
}

#[tokio::test]
async fn regenerating_recovery_codes_needs_a_factor_and_kills_the_old_ones() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, old) = enroll(&app, &t.app, "erin").await;
    let regen = "mutation($u: ID!, $m: Method!, $c: String!) { regenerateRecoveryCodes(userId: $u, method: $m, code: $c) { codes } }";
    let a = app
        .gql(
            Some(&t.app),
            regen,
            json!({ "u": "erin", "m": "TOTP", "c": authenticator.wrong_code() }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_CODE");
    let a = app
        .gql(
            Some(&t.app),
            regen,
            json!({ "u": "erin", "m": "TOTP", "c": authenticator.next_code() }),
        )
        .await;
    let new: Vec<String> = a.data()["regenerateRecoveryCodes"]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    for c in &old[..3] {
        let a = verify(&app, &t.app, "erin", "RECOVERY_CODE", c).await;
        assert_eq!(a.error_code(), "INVALID_CODE", "an old code still works");
    }
    let a = verify(&app, &t.app, "erin", "RECOVERY_CODE", &new[0]).await;
    assert_eq!(a.data()["verify"]["recoveryCodesRemaining"], 9);
}

#[tokio::test]
async fn parallel_verifies_of_one_code_succeed_exactly_once() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, _) = enroll(&app, &t.app, "frank").await;
    let code = authenticator.next_code();
    let answers = join_all((0..8).map(|_| verify(&app, &t.app, "frank", "TOTP", &code))).await;
    let ok = answers
        .iter()
        .filter(|a| a.body["errors"].is_null())
        .count();
    assert_eq!(ok, 1, "{answers:?}");
    for a in answers.iter().filter(|a| !a.body["errors"].is_null()) {
        assert_eq!(a.error_code(), "INVALID_CODE");
    }
    let accepted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'CodeVerified' AND aggregate_id LIKE '%/user/frank'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn ten_failures_lock_the_user_until_an_admin_clears_it() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, codes) = enroll(&app, &t.app, "gina").await;
    for i in 1..=9u32 {
        // Failures count across methods.
        let (method, code) = if i % 2 == 0 {
            ("TOTP", authenticator.wrong_code())
        } else {
            ("RECOVERY_CODE", "aaaa-bbbb-cccc-dddd".to_owned())
        };
        let a = verify(&app, &t.app, "gina", method, &code).await;
        assert_eq!(a.error_code(), "INVALID_CODE");
        assert_eq!(
            a.body["errors"][0]["extensions"]["remainingAttempts"],
            10 - i
        );
    }
    let a = verify(&app, &t.app, "gina", "TOTP", &authenticator.wrong_code()).await;
    assert_eq!(a.error_code(), "LOCKED_OUT");
    let retry = a.body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_i64()
        .unwrap();
    assert!((290..=300).contains(&retry), "{retry}");

    // While locked, even a valid code or recovery code is refused, and not counted.
    let a = verify(&app, &t.app, "gina", "TOTP", &authenticator.next_code()).await;
    assert_eq!(a.error_code(), "LOCKED_OUT");
    let a = verify(&app, &t.app, "gina", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(a.error_code(), "LOCKED_OUT");
    let s = status(&app, &t.app, "gina").await;
    assert!(s["lockedUntil"].is_string());

    // Only an admin, with a reason, can end it early.
    let clear =
        "mutation($u: ID!, $r: String!) { clearLockout(userId: $u, reason: $r) { lockedUntil } }";
    let a = app
        .gql(Some(&t.app), clear, json!({ "u": "gina", "r": "x" }))
        .await;
    assert_eq!(a.error_code(), "FORBIDDEN");
    let a = app
        .gql(Some(&t.admin), clear, json!({ "u": "gina", "r": "  " }))
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT");
    let a = app
        .gql(
            Some(&t.admin),
            clear,
            json!({ "u": "gina", "r": "verified by phone" }),
        )
        .await;
    assert!(a.data()["clearLockout"]["lockedUntil"].is_null());
    let a = verify(&app, &t.app, "gina", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(a.data()["verify"]["recoveryCodesRemaining"], 9);

    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_id LIKE '%/user/gina' ORDER BY sequence",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        types.iter().filter(|t| *t == "VerificationFailed").count(),
        10
    );
    assert_eq!(types.iter().filter(|t| *t == "UserLockedOut").count(), 1);
    assert!(types.contains(&"LockoutCleared".to_owned()));
    assert_eq!(types.last().map(String::as_str), Some("RecoveryCodeUsed"));
}

#[tokio::test]
async fn disabling_needs_a_factor_and_is_refused_while_enforced() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, codes) = enroll(&app, &t.app, "hank").await;
    let disable = "mutation($u: ID!, $m: Method!, $c: String!) { disableTwoFactor(userId: $u, method: $m, code: $c) { enabled methods recoveryCodesRemaining } }";
    app.gql(
        Some(&t.admin),
        "mutation { setPolicy(input: { enforceTwoFactor: true }) { enforceTwoFactor } }",
        json!({}),
    )
    .await
    .data();
    let a = app
        .gql(
            Some(&t.app),
            disable,
            json!({ "u": "hank", "m": "TOTP", "c": authenticator.peek_code() }),
        )
        .await;
    assert_eq!(
        a.error_code(),
        "POLICY_VIOLATION",
        "refused even with a valid code"
    );
    app.gql(
        Some(&t.admin),
        "mutation { setPolicy(input: { enforceTwoFactor: false }) { enforceTwoFactor } }",
        json!({}),
    )
    .await
    .data();
    let a = app
        .gql(
            Some(&t.app),
            disable,
            json!({ "u": "hank", "m": "RECOVERY_CODE", "c": "nope-nope-nope-nope" }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_CODE");
    let a = app
        .gql(
            Some(&t.app),
            disable,
            json!({ "u": "hank", "m": "RECOVERY_CODE", "c": codes[4] }),
        )
        .await;
    assert_eq!(
        a.data()["disableTwoFactor"],
        json!({ "enabled": false, "methods": [], "recoveryCodesRemaining": 0 })
    );
    let a = verify(&app, &t.app, "hank", "TOTP", &authenticator.next_code()).await;
    assert_eq!(a.error_code(), "NOT_FOUND");
    assert_eq!(
        app.count_events_like("%/user/hank", "TwoFactorDisabled")
            .await,
        1
    );
}

#[tokio::test]
async fn an_admin_reset_removes_everything_in_one_audited_event() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, codes) = enroll(&app, &t.app, "ivy").await;
    let reset = "mutation($u: ID!, $r: String!) { resetTwoFactor(userId: $u, reason: $r) { enabled methods recoveryCodesRemaining totpPending } }";
    let a = app
        .gql(
            Some(&t.app),
            reset,
            json!({ "u": "ivy", "r": "lost phone" }),
        )
        .await;
    assert_eq!(a.error_code(), "FORBIDDEN");
    let a = app
        .gql(Some(&t.admin), reset, json!({ "u": "ivy", "r": "" }))
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT");
    let a = app
        .gql(Some(&t.admin), reset, json!({ "u": "nobody", "r": "typo" }))
        .await;
    assert_eq!(a.error_code(), "NOT_FOUND");
    let a = app
        .gql(
            Some(&t.admin),
            reset,
            json!({ "u": "ivy", "r": "lost phone, ticket 42" }),
        )
        .await;
    assert_eq!(
        a.data()["resetTwoFactor"],
        json!({ "enabled": false, "methods": [], "recoveryCodesRemaining": 0, "totpPending": false })
    );
    assert_eq!(
        verify(&app, &t.app, "ivy", "TOTP", &authenticator.next_code())
            .await
            .error_code(),
        "NOT_FOUND"
    );
    assert_eq!(
        verify(&app, &t.app, "ivy", "RECOVERY_CODE", &codes[0])
            .await
            .error_code(),
        "NOT_FOUND"
    );

    let (payload, metadata): (Value, Value) =
        sqlx::query_as("SELECT payload, metadata FROM events WHERE event_type = 'TwoFactorReset'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let reset = &payload["TwoFactorReset"];
    assert_eq!(reset["reason"], "lost phone, ticket 42");
    assert_eq!(reset["by"].as_str().unwrap(), &t.admin[4..20]);
    assert!(metadata["actor"].as_str().unwrap().contains("ADMIN"));
    assert_eq!(
        app.count_events_like("%/user/ivy", "TwoFactorReset").await,
        1
    );
}

#[tokio::test]
async fn users_of_one_tenant_are_invisible_to_another() {
    let app = spawn_app().await;
    let a_tenant = tenant(&app, "Alpha").await;
    let b_tenant = tenant(&app, "Beta").await;
    let (mut authenticator, codes) = enroll(&app, &a_tenant.app, "same-id").await;
    assert!(status(&app, &b_tenant.app, "same-id").await.is_null());
    let a = verify(
        &app,
        &b_tenant.app,
        "same-id",
        "TOTP",
        &authenticator.next_code(),
    )
    .await;
    assert_eq!(a.error_code(), "NOT_FOUND");
    let a = verify(&app, &b_tenant.app, "same-id", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(a.error_code(), "NOT_FOUND");
    let a = app
        .gql(
            Some(&b_tenant.admin),
            "mutation { resetTwoFactor(userId: \"same-id\", reason: \"attack\") { enabled } }",
            json!({}),
        )
        .await;
    assert_eq!(a.error_code(), "NOT_FOUND");
    assert_eq!(
        status(&app, &a_tenant.app, "same-id").await["enabled"],
        true
    );
}

#[tokio::test]
async fn a_method_the_policy_no_longer_allows_cannot_be_used() {
    let app = spawn_app().await;
    let t = tenant(&app, "Acme").await;
    let (mut authenticator, codes) = enroll(&app, &t.app, "jo").await;
    app.gql(
        Some(&t.admin),
        "mutation { setPolicy(input: { allowedMethods: [EMAIL, SMS] }) { allowedMethods } }",
        json!({}),
    )
    .await
    .data();
    let a = verify(&app, &t.app, "jo", "TOTP", &authenticator.peek_code()).await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION");
    let a = verify(&app, &t.app, "jo", "RECOVERY_CODE", &codes[0]).await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION");
    let a = app
        .gql(Some(&t.app), START, json!({ "u": "kim", "l": null }))
        .await;
    assert_eq!(a.error_code(), "POLICY_VIOLATION");
    // Nothing was checked or counted.
    assert_eq!(
        app.count_events_like("%/user/jo", "VerificationFailed")
            .await,
        0
    );
    app.gql(
        Some(&t.admin),
        "mutation { setPolicy(input: { allowedMethods: [TOTP, RECOVERY_CODE] }) { allowedMethods } }",
        json!({}),
    )
    .await
    .data();
    let a = verify(&app, &t.app, "jo", "TOTP", &authenticator.next_code()).await;
    assert_eq!(a.data()["verify"]["method"], "TOTP");
}

//! `signInRequirement`: every reason of the contract, end to end, and every decision recorded
//! as a `SignInEvaluated` event an auditor can read.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use twofold_tests::{spawn_app, TestApp};

use crate::totp::{enroll, verify};

pub(crate) const REQUIREMENT: &str = "query($u: ID!, $d: String, $s: Boolean) { signInRequirement(userId: $u, deviceToken: $d, ssoLogin: $s) { required methods reason lockedUntil graceEndsAt trustedDeviceId } }";
const POLICY: &str = "mutation($i: PolicyInput!) { setPolicy(input: $i) { enforceTwoFactor } }";

/// A tenant with its id, ADMIN and APP keys.
pub(crate) struct Acme {
    pub(crate) id: String,
    pub(crate) admin: String,
    pub(crate) app: String,
}

pub(crate) async fn acme(app: &TestApp) -> Acme {
    let (id, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    Acme {
        id,
        admin,
        app: app_key,
    }
}

pub(crate) async fn requirement(
    app: &TestApp,
    key: &str,
    user: &str,
    device: Option<&str>,
    sso: bool,
) -> Value {
    let a = app
        .gql(
            Some(key),
            REQUIREMENT,
            json!({ "u": user, "d": device, "s": sso }),
        )
        .await;
    a.data()["signInRequirement"].clone()
}

pub(crate) async fn set_policy(app: &TestApp, admin: &str, input: Value) {
    let a = app.gql(Some(admin), POLICY, json!({ "i": input })).await;
    assert!(a.body["errors"].is_null(), "{}", a.body);
}

/// The reasons recorded for `user`, oldest first.
async fn recorded(app: &TestApp, tenant: &str, user: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT payload -> 'SignInEvaluated' ->> 'reason' FROM events \
         WHERE aggregate_id = $1 AND event_type = 'SignInEvaluated' ORDER BY global_position",
    )
    .bind(format!("{tenant}/user/{user}"))
    .fetch_all(&app.db)
    .await
    .unwrap()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a date-time"))
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn without_2fa_nothing_is_required_and_with_it_the_user_s_methods_are() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let r = requirement(&app, &t.app, "newcomer", None, false).await;
    assert_eq!(
        r,
        json!({ "required": false, "methods": [], "reason": "NOT_ENROLLED", "lockedUntil": null,
                "graceEndsAt": null, "trustedDeviceId": null })
    );
    enroll(&app, &t.app, "alice").await;
    let r = requirement(&app, &t.app, "alice", None, false).await;
    assert_eq!(r["required"], true);
    assert_eq!(r["reason"], "ENROLLED");
    assert_eq!(r["methods"], json!(["TOTP", "RECOVERY_CODE"]));
    // Methods the policy no longer allows are not offered.
    set_policy(
        &app,
        &t.admin,
        json!({ "allowedMethods": ["TOTP", "EMAIL"] }),
    )
    .await;
    let r = requirement(&app, &t.app, "alice", None, false).await;
    assert_eq!(r["methods"], json!(["TOTP"]));
    assert_eq!(recorded(&app, &t.id, "newcomer").await, ["NOT_ENROLLED"]);
    assert_eq!(
        recorded(&app, &t.id, "alice").await,
        ["ENROLLED", "ENROLLED"]
    );
    // Asking about a user is seeing them: the tenant now knows the newcomer.
    let a = app
        .gql(
            Some(&t.app),
            "query { user(userId: \"newcomer\") { enabled } }",
            json!({}),
        )
        .await;
    assert_eq!(a.data()["user"]["enabled"], false);
}

#[tokio::test]
async fn enforcement_gives_a_grace_period_then_requires_enrollment() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    requirement(&app, &t.app, "early", None, false).await;
    let before = Utc::now();
    set_policy(
        &app,
        &t.admin,
        json!({ "enforceTwoFactor": true, "enrollmentGracePeriodDays": 7 }),
    )
    .await;
    let after = Utc::now();
    // Seen before enforcement: the grace period runs from the moment enforcement began.
    let r = requirement(&app, &t.app, "early", None, false).await;
    assert_eq!(r["reason"], "GRACE_PERIOD");
    assert_eq!(r["required"], false);
    assert_eq!(r["methods"], json!([]));
    let ends = time(&r["graceEndsAt"]);
    assert!(ends >= before + Duration::days(7) && ends <= after + Duration::days(7));
    // First seen later: from their first sighting.
    tokio::task::yield_now().await;
    let r = requirement(&app, &t.app, "late", None, false).await;
    assert_eq!(r["reason"], "GRACE_PERIOD");
    assert!(time(&r["graceEndsAt"]) > ends);
    // An enrolled user is not affected by the grace period.
    enroll(&app, &t.app, "alice").await;
    assert_eq!(
        requirement(&app, &t.app, "alice", None, false).await["reason"],
        "ENROLLED"
    );
    // No grace period left: enrollment is required, with the methods that can be enrolled.
    set_policy(&app, &t.admin, json!({ "enrollmentGracePeriodDays": 0 })).await;
    let r = requirement(&app, &t.app, "early", None, false).await;
    assert_eq!(r["reason"], "ENROLLMENT_REQUIRED");
    assert_eq!(r["required"], true);
    assert_eq!(r["methods"], json!(["TOTP", "EMAIL", "SMS"]));
    assert_eq!(
        recorded(&app, &t.id, "early").await,
        ["NOT_ENROLLED", "GRACE_PERIOD", "ENROLLMENT_REQUIRED"]
    );
    // Enforcement off: nobody without 2FA is asked for it.
    set_policy(&app, &t.admin, json!({ "enforceTwoFactor": false })).await;
    let r = requirement(&app, &t.app, "early", None, false).await;
    assert_eq!(r["reason"], "NOT_ENROLLED");
    assert!(r["graceEndsAt"].is_null());
}

#[tokio::test]
async fn sso_sign_ins_skip_the_factor_only_when_the_tenant_says_so() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    enroll(&app, &t.app, "alice").await;
    assert_eq!(
        requirement(&app, &t.app, "alice", None, true).await["reason"],
        "ENROLLED"
    );
    set_policy(&app, &t.admin, json!({ "ssoBypassesTwoFactor": true })).await;
    let r = requirement(&app, &t.app, "alice", None, true).await;
    assert_eq!(r["reason"], "SSO_BYPASS");
    assert_eq!(r["required"], false);
    // The same user signing in with a password still needs the factor.
    let r = requirement(&app, &t.app, "alice", None, false).await;
    assert_eq!(r["reason"], "ENROLLED");
    assert_eq!(
        recorded(&app, &t.id, "alice").await,
        ["ENROLLED", "SSO_BYPASS", "ENROLLED"]
    );
    let sso: Vec<bool> = sqlx::query_scalar(
        "SELECT (payload -> 'SignInEvaluated' ->> 'sso_login')::boolean FROM events \
         WHERE event_type = 'SignInEvaluated' ORDER BY global_position",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(sso, [true, true, false]);
}

#[tokio::test]
async fn a_locked_out_user_is_told_until_when() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (authenticator, _) = enroll(&app, &t.app, "alice").await;
    for _ in 0..10 {
        verify(&app, &t.app, "alice", "TOTP", &authenticator.wrong_code()).await;
    }
    set_policy(&app, &t.admin, json!({ "ssoBypassesTwoFactor": true })).await;
    for sso in [false, true] {
        let r = requirement(&app, &t.app, "alice", None, sso).await;
        assert_eq!(r["reason"], "LOCKED_OUT", "sso: {sso}");
        assert_eq!(r["required"], true);
        assert_eq!(r["methods"], json!([]));
        let until = time(&r["lockedUntil"]);
        assert!(until > Utc::now() + Duration::minutes(4));
        assert!(until <= Utc::now() + Duration::minutes(5));
    }
    assert_eq!(
        recorded(&app, &t.id, "alice").await,
        ["LOCKED_OUT", "LOCKED_OUT"]
    );
}

#[tokio::test]
async fn only_the_app_asks_and_bad_input_changes_nothing() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    let before = count().await;
    for key in [&t.admin, &auditor] {
        let a = app
            .gql(Some(key), REQUIREMENT, json!({ "u": "alice" }))
            .await;
        assert_eq!(a.error_code(), "FORBIDDEN");
    }
    for (user, device) in [
        ("", None),
        ("bad\nid", None),
        ("alice", Some("x".repeat(129))),
    ] {
        let a = app
            .gql(Some(&t.app), REQUIREMENT, json!({ "u": user, "d": device }))
            .await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{user:?}");
    }
    let a = app
        .gql(
            Some(&t.app),
            REQUIREMENT,
            json!({ "u": "alice", "s": "yes" }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT");
    assert_eq!(
        count().await,
        before,
        "a refused request recorded something"
    );
}

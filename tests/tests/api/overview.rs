//! `Tenant.overview`: users seen, enrolled, in grace and locked out now, and sign-ins and wrong
//! codes per UTC day, served from the `activity` and `user_compliance` projections.

use chrono::{Duration, NaiveDate, Utc};
use serde_json::{json, Value};
use twofold_tests::{spawn_app, Answer, TestApp};

use crate::sign_in::{acme, requirement, set_policy};
use crate::totp::{enroll, verify};

const OVERVIEW: &str = "query($d: Int) { tenant { overview(days: $d) { enforced usersSeen enrolled inGrace lockedOut days { day signIns failedCodes } } } }";
const DEFAULT_OVERVIEW: &str =
    "{ tenant { overview { usersSeen days { day signIns failedCodes } } } }";

async fn ask(app: &TestApp, key: &str, days: Option<i64>) -> Answer {
    app.gql(Some(key), OVERVIEW, json!({ "d": days })).await
}

async fn overview(app: &TestApp, key: &str) -> Value {
    let a = ask(app, key, None).await;
    assert!(a.body["errors"].is_null(), "{}", a.body);
    a.data()["tenant"]["overview"].clone()
}

/// Sign-ins and wrong codes over the whole window (so a test running across midnight UTC still
/// sees every event it caused).
fn totals(o: &Value) -> (i64, i64) {
    o["days"]
        .as_array()
        .unwrap()
        .iter()
        .fold((0, 0), |(s, f), d| {
            (
                s + d["signIns"].as_i64().unwrap(),
                f + d["failedCodes"].as_i64().unwrap(),
            )
        })
}

/// The users' figures: (seen, enrolled, in grace, locked out).
fn users(o: &Value) -> (i64, i64, i64, i64) {
    let n = |k: &str| o[k].as_i64().unwrap();
    (n("usersSeen"), n("enrolled"), n("inGrace"), n("lockedOut"))
}

#[tokio::test]
async fn the_counts_follow_sign_ins_failures_lockouts_enrollment_and_enforcement() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;

    let o = overview(&app, &t.admin).await;
    assert_eq!(o["enforced"], false);
    assert_eq!(users(&o), (0, 0, 0, 0));
    assert_eq!(totals(&o), (0, 0));

    // Asked about at sign-in: seen, not enrolled; enrolling is not a sign-in.
    requirement(&app, &t.app, "early", None, false).await;
    let (mut alice, codes) = enroll(&app, &t.app, "alice").await;
    let o = overview(&app, &t.admin).await;
    assert_eq!(users(&o), (2, 1, 0, 0));
    assert_eq!(totals(&o), (0, 0));

    // Two sign-ins (TOTP, then a recovery code) and one wrong code.
    let a = verify(&app, &t.app, "alice", "TOTP", &alice.next_code()).await;
    assert!(a.body["errors"].is_null(), "{}", a.body);
    let a = verify(&app, &t.app, "alice", "RECOVERY_CODE", &codes[0]).await;
    assert!(a.body["errors"].is_null(), "{}", a.body);
    let a = verify(&app, &t.app, "alice", "TOTP", &alice.wrong_code()).await;
    assert_eq!(a.error_code(), "INVALID_CODE");
    assert_eq!(totals(&overview(&app, &t.admin).await), (2, 1));

    // A code that proves a change (new recovery codes) is not a sign-in.
    let regen = "mutation($c: String!) { regenerateRecoveryCodes(userId: \"alice\", method: RECOVERY_CODE, code: $c) { codes } }";
    let a = app.gql(Some(&t.app), regen, json!({ "c": codes[1] })).await;
    assert!(a.body["errors"].is_null(), "{}", a.body);
    assert_eq!(totals(&overview(&app, &t.admin).await), (2, 1));

    // Ten wrong codes lock gina out; an admin clears it.
    let (gina, _) = enroll(&app, &t.app, "gina").await;
    for _ in 0..10 {
        verify(&app, &t.app, "gina", "TOTP", &gina.wrong_code()).await;
    }
    let o = overview(&app, &t.admin).await;
    assert_eq!(users(&o), (3, 2, 0, 1));
    assert_eq!(totals(&o), (2, 11));
    let clear = "mutation { clearLockout(userId: \"gina\", reason: \"called the help desk\") { lockedUntil } }";
    let a = app.gql(Some(&t.admin), clear, json!({})).await;
    assert!(a.body["errors"].is_null(), "{}", a.body);
    assert_eq!(users(&overview(&app, &t.admin).await), (3, 2, 0, 0));

    // The lockout and the last sign-in are in the read model.
    let (locked, last): (Option<chrono::DateTime<Utc>>, Option<chrono::DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT locked_until, last_sign_in_at FROM user_activity \
             WHERE tenant_id = $1 AND user_id = 'alice'",
        )
        .bind(&t.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(locked.is_none());
    assert!(last.is_some());

    // Enforced with a grace period: the user without 2FA is in grace; without one, not.
    set_policy(
        &app,
        &t.admin,
        json!({ "enforceTwoFactor": true, "enrollmentGracePeriodDays": 14 }),
    )
    .await;
    let o = overview(&app, &auditor).await;
    assert_eq!(o["enforced"], true);
    assert_eq!(users(&o), (3, 2, 1, 0));
    assert_eq!(totals(&o), (2, 11));
    set_policy(
        &app,
        &t.admin,
        json!({ "enforceTwoFactor": true, "enrollmentGracePeriodDays": 0 }),
    )
    .await;
    assert_eq!(users(&overview(&app, &auditor).await), (3, 2, 0, 0));

    // An admin reset ends a lockout too.
    for _ in 0..10 {
        verify(&app, &t.app, "gina", "TOTP", &gina.wrong_code()).await;
    }
    assert_eq!(users(&overview(&app, &t.admin).await).3, 1);
    let reset = "mutation { resetTwoFactor(userId: \"gina\", reason: \"lost phone\") { enabled } }";
    let a = app.gql(Some(&t.admin), reset, json!({})).await;
    assert!(a.body["errors"].is_null(), "{}", a.body);
    assert_eq!(users(&overview(&app, &t.admin).await), (3, 1, 0, 0));
}

#[tokio::test]
async fn every_day_of_the_window_is_there_oldest_first_ending_today() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let today_before = Utc::now().date_naive();
    let o = overview(&app, &t.admin).await;
    let today_after = Utc::now().date_naive();
    let days: Vec<NaiveDate> = o["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["day"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(days.len(), 30);
    let last = *days.last().unwrap();
    assert!(last == today_before || last == today_after, "{last}");
    for pair in days.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::days(1));
    }
    for (n, expected) in [(1, 1), (90, 90)] {
        let a = ask(&app, &t.admin, Some(n)).await;
        assert_eq!(
            a.data()["tenant"]["overview"]["days"]
                .as_array()
                .unwrap()
                .len(),
            expected
        );
    }
    let a = app.gql(Some(&t.admin), DEFAULT_OVERVIEW, json!({})).await;
    assert_eq!(
        a.data()["tenant"]["overview"]["days"]
            .as_array()
            .unwrap()
            .len(),
        30
    );
}

#[tokio::test]
async fn days_out_of_range_are_invalid_input() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    for days in [0, -1, 91, 100_000] {
        let a = ask(&app, &t.admin, Some(days)).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{days}: {}", a.body);
    }
}

#[tokio::test]
async fn one_document_cannot_ask_for_it_over_and_over() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    // Each read catches the projections up and runs its queries: aliases must not multiply that.
    let aliases: String = (0..11)
        .map(|i| format!("o{i}: overview(days: 90) {{ usersSeen }} "))
        .collect();
    let a = app
        .gql(
            Some(&t.admin),
            &format!("{{ tenant {{ {aliases} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
}

#[tokio::test]
async fn app_keys_may_not_read_it_and_auditors_may() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let a = ask(&app, &t.app, None).await;
    assert_eq!(a.error_code(), "FORBIDDEN", "{}", a.body);
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;
    assert_eq!(overview(&app, &auditor).await["usersSeen"], 0);
}

#[tokio::test]
async fn another_tenants_users_and_activity_never_show() {
    let app = spawn_app().await;
    let acme = acme(&app).await;
    let (_, other_admin) = app.create_tenant("Other").await;
    let (_, other_app) = app.issue_key(&other_admin, "APP").await;

    let (mut bob, _) = enroll(&app, &other_app, "bob").await;
    verify(&app, &other_app, "bob", "TOTP", &bob.next_code()).await;
    for _ in 0..10 {
        verify(&app, &other_app, "bob", "TOTP", &bob.wrong_code()).await;
    }
    // The same user id in acme is another user.
    requirement(&app, &acme.app, "bob", None, false).await;

    let other = overview(&app, &other_admin).await;
    assert_eq!(users(&other), (1, 1, 0, 1));
    assert_eq!(totals(&other), (1, 10));
    let mine = overview(&app, &acme.admin).await;
    assert_eq!(users(&mine), (1, 0, 0, 0));
    assert_eq!(totals(&mine), (0, 0));
}

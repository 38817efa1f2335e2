//! `compliance`: who has 2FA and who does not yet, with when their grace period ends, served
//! from the `user_compliance` projection.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use twofold_tests::{spawn_app, TestApp};

use crate::sign_in::{acme, requirement, set_policy};
use crate::totp::enroll;

const REPORT: &str = "query($f: Int, $a: String) { compliance(first: $f, after: $a) { enforced enforcedSince totalUsers enrolledUsers nonCompliant { userId firstSeenAt graceEndsAt } endCursor hasNextPage } }";

async fn report(app: &TestApp, key: &str, first: i64, after: Option<&str>) -> Value {
    let a = app
        .gql(Some(key), REPORT, json!({ "f": first, "a": after }))
        .await;
    assert!(a.body["errors"].is_null(), "{}", a.body);
    a.data()["compliance"].clone()
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a date-time"))
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn the_report_counts_users_and_lists_who_has_no_2fa_with_their_grace_end() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;
    requirement(&app, &t.app, "early", None, false).await;
    enroll(&app, &t.app, "alice").await;

    // Not enforced: everyone without 2FA is listed, with no grace end.
    let r = report(&app, &auditor, 50, None).await;
    assert_eq!(r["enforced"], false);
    assert!(r["enforcedSince"].is_null());
    assert_eq!(r["totalUsers"], 2);
    assert_eq!(r["enrolledUsers"], 1);
    assert_eq!(r["nonCompliant"].as_array().unwrap().len(), 1);
    assert_eq!(r["nonCompliant"][0]["userId"], "early");
    assert!(r["nonCompliant"][0]["graceEndsAt"].is_null());
    assert_eq!(r["hasNextPage"], false);

    // Enforced: users known before start their grace period now; users first seen later, then.
    set_policy(
        &app,
        &t.admin,
        json!({ "enforceTwoFactor": true, "enrollmentGracePeriodDays": 14 }),
    )
    .await;
    requirement(&app, &t.app, "late", None, false).await;
    let r = report(&app, &t.admin, 50, None).await;
    assert_eq!(r["enforced"], true);
    let since = time(&r["enforcedSince"]);
    let listed = r["nonCompliant"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["userId"], "early");
    assert!(time(&listed[0]["firstSeenAt"]) < since);
    assert_eq!(time(&listed[0]["graceEndsAt"]), since + Duration::days(14));
    assert_eq!(listed[1]["userId"], "late");
    let late_seen = time(&listed[1]["firstSeenAt"]);
    assert!(late_seen >= since);
    assert_eq!(
        time(&listed[1]["graceEndsAt"]),
        late_seen + Duration::days(14)
    );
    // The report agrees with what the sign-in decision says.
    let r = requirement(&app, &t.app, "early", None, false).await;
    assert_eq!(time(&r["graceEndsAt"]), since + Duration::days(14));

    // Enrolling makes a user compliant; a reset makes them non-compliant again.
    enroll(&app, &t.app, "late").await;
    let r = report(&app, &t.admin, 50, None).await;
    assert_eq!(
        (r["totalUsers"].as_i64(), r["enrolledUsers"].as_i64()),
        (Some(3), Some(2))
    );
    let a = app
        .gql(
            Some(&t.admin),
            "mutation { resetTwoFactor(userId: \"alice\", reason: \"new phone\") { enabled } }",
            json!({}),
        )
        .await;
    assert_eq!(a.data()["resetTwoFactor"]["enabled"], false);
    let r = report(&app, &t.admin, 50, None).await;
    assert_eq!(r["enrolledUsers"], 1);
    let ids: Vec<&str> = r["nonCompliant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["early", "alice"], "in the order they were first seen");

    // Another tenant sees none of it.
    let (_, other) = app.create_tenant("Other").await;
    let r = report(&app, &other, 50, None).await;
    assert_eq!(
        (r["totalUsers"].as_i64(), r["enrolledUsers"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(r["nonCompliant"], json!([]));
}

#[tokio::test]
async fn pages_list_every_non_compliant_user_once_in_grace_end_order() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let mut expected = Vec::new();
    for i in 0..7 {
        let user = format!("user-{i}");
        requirement(&app, &t.app, &user, None, false).await;
        expected.push(user);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let r = report(&app, &t.admin, 3, after.as_deref()).await;
        pages += 1;
        for u in r["nonCompliant"].as_array().unwrap() {
            seen.push(u["userId"].as_str().unwrap().to_owned());
        }
        if r["hasNextPage"] == false {
            break;
        }
        after = Some(r["endCursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
}

#[tokio::test]
async fn only_admins_and_auditors_read_it_and_bad_input_is_refused() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let a = app.gql(Some(&t.app), REPORT, json!({})).await;
    assert_eq!(a.error_code(), "FORBIDDEN");
    for (first, after) in [
        (json!(0), json!(null)),
        (json!(-1), json!(null)),
        (json!(501), json!(null)),
        (json!("ten"), json!(null)),
        (json!(10), json!("not-a-cursor")),
        (json!(10), json!("c1zz")),
    ] {
        let a = app
            .gql(Some(&t.admin), REPORT, json!({ "f": first, "a": after }))
            .await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{first} {after}");
    }
}

#[tokio::test]
async fn a_cursor_is_opaque_and_works_only_for_its_own_tenant() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    for user in ["alice@acme.example", "bob@acme.example"] {
        requirement(&app, &t.app, user, None, false).await;
    }
    let first = report(&app, &t.admin, 1, None).await;
    let cursor = first["endCursor"].as_str().unwrap().to_owned();
    // Nothing of the user id can be read from it, in any usual encoding.
    let id = "alice@acme.example";
    let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    use base64::Engine as _;
    for shown in [
        id.to_owned(),
        hex,
        base64::engine::general_purpose::STANDARD.encode(id),
    ] {
        assert!(!cursor.contains(&shown[..12]), "{cursor} shows {shown}");
    }
    // Its own tenant pages on with it.
    let next = report(&app, &t.admin, 1, Some(&cursor)).await;
    assert_eq!(next["nonCompliant"][0]["userId"], "bob@acme.example");

    // Another tenant, with users of its own, is refused the cursor instead of paging with it.
    let (_, other_admin) = app.create_tenant("Other").await;
    let (_, other_app) = app.issue_key(&other_admin, "APP").await;
    requirement(&app, &other_app, "carol", None, false).await;
    let a = app
        .gql(Some(&other_admin), REPORT, json!({ "f": 1, "a": cursor }))
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
}

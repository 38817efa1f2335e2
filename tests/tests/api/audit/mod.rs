//! The audit history: what auditors read (query, export, live stream), in commit-safe order,
//! tenant by tenant, and never a secret.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use twofold_tests::{spawn_app, TestApp};

use crate::channels::{mailed_code, texted_code};
use crate::totp::{enroll, tenant, verify};
use crate::ws_support::{connect, next_message, Socket};

const EVENTS: &str = "query($f: AuditFilter, $n: Int, $a: String, $o: Boolean) { auditEvents(filter: $f, first: $n, after: $a, oldestFirst: $o) { nodes { position eventType userId occurredAt actor requestId data } endCursor hasNextPage } }";
const WAIT: Duration = Duration::from_secs(20);

async fn page(app: &TestApp, key: &str, vars: Value) -> Value {
    app.gql(Some(key), EVENTS, vars).await.data()["auditEvents"].clone()
}

/// Every page of a query, oldest first, following the cursors.
async fn all_events(app: &TestApp, key: &str, filter: Value, first: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = Value::Null;
    loop {
        let p = page(
            app,
            key,
            json!({ "f": filter, "n": first, "a": after, "o": true }),
        )
        .await;
        out.extend(p["nodes"].as_array().unwrap().iter().cloned());
        if !p["hasNextPage"].as_bool().unwrap() {
            return out;
        }
        after = p["endCursor"].clone();
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect()
}

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
            assert!(!text.contains(s.as_str()), "{what} shows a secret: {s}");
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
    assert_eq!(types(&sam), expected);
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

async fn export(app: &TestApp, key: &str, query: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/audit/export{query}", app.address))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap()
}

/// Waits (bounded) until every event of the tenant is below the commit horizon, so a read sees
/// them all: the event processor's own short transactions hold the horizon back for a moment
/// after a burst of writes.
async fn settled(app: &TestApp, tenant: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE tenant_id = $1 \
             AND tx_id >= pg_snapshot_xmin(pg_current_snapshot())",
        )
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events never became readable"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` sign-in decisions spread over `users` users, `parallel` at a time: one event each.
async fn sign_ins(app: &TestApp, key: &str, prefix: &str, n: usize) {
    let requests = (0..n).map(|i| {
        let key = key.to_owned();
        let user = format!("{prefix}-{}", i % 16);
        async move {
            let a = app
                .gql(
                    Some(&key),
                    "query($u: ID!) { signInRequirement(userId: $u) { reason } }",
                    json!({ "u": user }),
                )
                .await;
            assert_eq!(a.data()["signInRequirement"]["reason"], "NOT_ENROLLED");
        }
    });
    futures::stream::iter(requests)
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::test]
async fn paging_through_a_thousand_events_loses_and_repeats_nothing_while_new_ones_arrive() {
    let app = spawn_app().await;
    let (tenant_id, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    // A thousand requests as fast as the test can send them: above the default rate per key.
    let raised = app
        .gql(
            Some(&admin),
            "mutation { setPolicy(input: { requestsPerSecondPerKey: 10000 }) { requestsPerSecondPerKey } }",
            json!({}),
        )
        .await;
    assert!(raised.body["errors"].is_null(), "{}", raised.body);
    sign_ins(&app, &app_key, "u", 1_000).await;
    settled(&app, &tenant_id).await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1")
        .bind(&tenant_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(before >= 1_000);

    // Newest first, with events being written between pages: the pages hold exactly the
    // events there were when the first page was read, each once, newest first.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let p = page(&app, &auditor, json!({ "n": 97, "a": after })).await;
        seen.extend(
            p["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["position"].as_str().unwrap().parse::<i64>().unwrap()),
        );
        pages += 1;
        if pages <= 3 {
            sign_ins(&app, &app_key, "late", 5).await;
        }
        if !p["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = p["endCursor"].clone();
    }
    let distinct: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "no event twice");
    assert_eq!(
        seen.len() as i64,
        before,
        "every event there was, and no later one"
    );
    // Newest first in commit order (transaction, then position: positions of concurrent
    // transactions may interleave).
    let committed: Vec<i64> = sqlx::query_scalar(
        "SELECT global_position FROM events WHERE tenant_id = $1 \
         ORDER BY tx_id DESC, global_position DESC",
    )
    .bind(&tenant_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let expected: Vec<i64> = committed
        .into_iter()
        .filter(|p| distinct.contains(p))
        .collect();
    assert_eq!(seen, expected, "newest first");

    // Oldest first, until the end: every event of the tenant, including the late ones.
    settled(&app, &tenant_id).await;
    let all = all_events(&app, &auditor, Value::Null, 113).await;
    let positions: Vec<i64> = all
        .iter()
        .map(|e| e["position"].as_str().unwrap().parse().unwrap())
        .collect();
    let stored: Vec<i64> = sqlx::query_scalar(
        "SELECT global_position FROM events WHERE tenant_id = $1 ORDER BY tx_id, global_position",
    )
    .bind(&tenant_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(positions, stored);
    assert_eq!(stored.len() as i64, before + 15);
}

#[tokio::test]
async fn an_event_committed_behind_an_open_transaction_is_never_behind_a_cursor() {
    let app = spawn_app().await;
    let (tenant_id, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    sign_ins(&app, &app_key, "early", 4).await;
    settled(&app, &tenant_id).await;
    let first = page(&app, &auditor, json!({ "n": 2 })).await;
    assert!(first["hasNextPage"].as_bool().unwrap());

    // A transaction that started earlier and is still open holds the horizon back: what
    // commits after it is not shown yet, so no reader can page past a gap it might fill.
    let mut open = app.db.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *open)
        .await
        .unwrap();
    sign_ins(&app, &app_key, "during", 1).await;
    let held = page(&app, &auditor, json!({ "n": 2 })).await;
    assert_eq!(
        held["nodes"], first["nodes"],
        "not shown while an older transaction is open"
    );
    open.rollback().await.unwrap();
    settled(&app, &tenant_id).await;

    let now = page(&app, &auditor, json!({ "n": 1 })).await;
    assert_eq!(now["nodes"][0]["userId"], "during-0");
    // The first page's cursor continues into older events only.
    let rest = page(&app, &auditor, json!({ "n": 500, "a": first["endCursor"] })).await;
    assert!(rest["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["userId"] != "during-0"));
}

#[tokio::test]
async fn tenants_see_only_their_own_history_and_crafted_cursors_are_refused() {
    let app = spawn_app().await;
    let a = tenant(&app, "Alpha").await;
    let b = tenant(&app, "Beta").await;
    let (_, auditor_a) = app.issue_key(&a.admin, "AUDITOR").await;
    let (_, auditor_b) = app.issue_key(&b.admin, "AUDITOR").await;
    enroll(&app, &a.app, "same-id").await;
    sign_ins(&app, &b.app, "b", 3).await;

    let seen_by_b = all_events(&app, &auditor_b, Value::Null, 50).await;
    assert!(seen_by_b
        .iter()
        .all(|e| e["userId"].is_null() || e["userId"].as_str().unwrap().starts_with("b-")));
    let theirs = all_events(&app, &auditor_b, json!({ "userId": "same-id" }), 50).await;
    assert!(theirs.is_empty(), "{theirs:?}");

    // A's cursor is refused for B, in either order, and so is an edited one.
    let pa = page(&app, &auditor_a, json!({ "n": 1 })).await;
    let cursor = pa["endCursor"].as_str().unwrap().to_owned();
    let refused = app
        .gql(Some(&auditor_b), EVENTS, json!({ "n": 5, "a": cursor }))
        .await;
    assert_eq!(refused.error_code(), "INVALID_INPUT");
    let wrong_order = app
        .gql(
            Some(&auditor_a),
            EVENTS,
            json!({ "n": 5, "a": cursor, "o": true }),
        )
        .await;
    assert_eq!(wrong_order.error_code(), "INVALID_INPUT");
    let mut edited = cursor.clone();
    edited.replace_range(4..6, if &cursor[4..6] == "00" { "01" } else { "00" });
    let forged = app
        .gql(Some(&auditor_a), EVENTS, json!({ "n": 5, "a": edited }))
        .await;
    assert_eq!(forged.error_code(), "INVALID_INPUT");

    // Roles: APP may not read the history; bad filters are typed errors.
    let app_key = app.gql(Some(&a.app), EVENTS, json!({})).await;
    assert_eq!(app_key.error_code(), "FORBIDDEN");
    for (vars, what) in [
        (
            json!({ "f": { "eventTypes": ["NoSuchEvent"] } }),
            "unknown type",
        ),
        (json!({ "f": { "eventTypes": [] } }), "empty types"),
        (json!({ "n": 0 }), "first 0"),
        (json!({ "n": 501 }), "first 501"),
        (
            json!({ "f": { "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z" } }),
            "reversed range",
        ),
        (json!({ "a": "not-a-cursor" }), "garbage cursor"),
    ] {
        let r = app.gql(Some(&auditor_a), EVENTS, vars).await;
        assert_eq!(r.error_code(), "INVALID_INPUT", "{what}");
    }
}

#[tokio::test]
async fn the_export_streams_json_lines_for_auditors_and_admins_only() {
    let app = spawn_app().await;
    let (tenant_id, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let t = crate::totp::Tenant {
        admin,
        app: app_key,
    };
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;
    sign_ins(&app, &t.app, "x", 40).await;
    settled(&app, &tenant_id).await;
    let listed = all_events(&app, &auditor, Value::Null, 500).await;

    let res = export(&app, &auditor, "").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let body = res.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(
        lines, listed,
        "the same events, fields and order as oldest-first pages"
    );

    let res = export(
        &app,
        &t.admin,
        "?eventType=SignInEvaluated&userId=x-3&oldestFirst=false",
    )
    .await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    assert!(lines
        .iter()
        .all(|e| e["eventType"] == "SignInEvaluated" && e["userId"] == "x-3"));
    let positions: Vec<i64> = lines
        .iter()
        .map(|e| e["position"].as_str().unwrap().parse().unwrap())
        .collect();
    let committed: Vec<i64> = sqlx::query_scalar(
        "SELECT global_position FROM events WHERE tenant_id = $1 AND event_type = 'SignInEvaluated' \
         AND aggregate_id LIKE '%/user/x-3' ORDER BY tx_id DESC, global_position DESC",
    )
    .bind(&tenant_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(positions, committed, "newest first on request");

    for (key, query, status, code) in [
        (Some(t.app.as_str()), "", 403, "FORBIDDEN"),
        (None, "", 401, "UNAUTHENTICATED"),
        (Some("tfk_nope_nope"), "", 401, "UNAUTHENTICATED"),
        (
            Some(auditor.as_str()),
            "?eventType=Nope",
            400,
            "INVALID_INPUT",
        ),
        (
            Some(auditor.as_str()),
            "?from=yesterday",
            400,
            "INVALID_INPUT",
        ),
        (
            Some(auditor.as_str()),
            "?tenant=other",
            400,
            "INVALID_INPUT",
        ),
    ] {
        let mut req = reqwest::Client::new().get(format!("{}/audit/export{query}", app.address));
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{query}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], code, "{query}");
    }
}

async fn subscribe(socket: &mut Socket, query: &str) {
    socket
        .send(Message::text(
            json!({ "id": "1", "type": "subscribe", "payload": { "query": query } }).to_string(),
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_live_stream_pushes_the_tenant_s_new_events_in_order_and_nothing_else() {
    let app = spawn_app().await;
    let a = tenant(&app, "Alpha").await;
    let b = tenant(&app, "Beta").await;
    let (_, auditor) = app.issue_key(&a.admin, "AUDITOR").await;

    let mut socket = connect(
        &app,
        json!({ "Authorization": format!("Bearer {auditor}") }),
    )
    .await;
    assert_eq!(
        next_message(&mut socket, WAIT).await.unwrap()["type"],
        "connection_ack"
    );
    subscribe(
        &mut socket,
        "subscription { auditEvents { eventType userId data } }",
    )
    .await;
    // The stream starts when the server has handled the subscribe message: until the first
    // pushed event, keep recording one (each is a new event, so one will be pushed).
    let mut first = None;
    for _ in 0..40 {
        sign_ins(&app, &a.app, "warm", 1).await;
        if let Some(m) = next_message(&mut socket, Duration::from_millis(500)).await {
            first = Some(m);
            break;
        }
    }
    let first = first.expect("the live stream pushed an event");
    assert_eq!(first["type"], "next", "{first}");
    assert_eq!(
        first["payload"]["data"]["auditEvents"]["eventType"],
        "SignInEvaluated"
    );
    // Beta's events are never pushed; Alpha's come in order, masked.
    sign_ins(&app, &b.app, "beta", 2).await;
    let (_, codes) = enroll(&app, &a.app, "live").await;
    // Beta's events committed first: had they leaked, they would come first.
    let mut pushed = Vec::new();
    while pushed.len() < 3 {
        let m = next_message(&mut socket, WAIT)
            .await
            .expect("an event pushed");
        assert_eq!(m["type"], "next", "{m}");
        let event = m["payload"]["data"]["auditEvents"].clone();
        // A warm-up decision that committed while the stream was starting may come late.
        if event["userId"] != "warm-0" {
            pushed.push(event);
        }
    }
    assert_eq!(
        types_of(&pushed),
        [
            "TotpEnrollmentStarted",
            "TotpEnabled",
            "RecoveryCodesGenerated"
        ],
        "{pushed:?}"
    );
    assert!(pushed[..3].iter().all(|e| e["userId"] == "live"));
    let shown = serde_json::to_string(&pushed).unwrap();
    for c in &codes {
        assert!(!shown.contains(c.as_str()));
    }

    // An APP key may not subscribe; a bad key does not get a connection.
    let mut app_socket = connect(
        &app,
        json!({ "Authorization": format!("Bearer {}", a.app) }),
    )
    .await;
    assert_eq!(
        next_message(&mut app_socket, WAIT).await.unwrap()["type"],
        "connection_ack"
    );
    subscribe(
        &mut app_socket,
        "subscription { auditEvents { eventType } }",
    )
    .await;
    let refused = next_message(&mut app_socket, WAIT).await.unwrap();
    let errors = if refused["type"] == "error" {
        refused["payload"].clone()
    } else {
        refused["payload"]["errors"].clone()
    };
    assert_eq!(errors[0]["extensions"]["code"], "FORBIDDEN", "{refused}");
    let mut bad = connect(&app, json!({ "Authorization": "Bearer tfk_nope_nope" })).await;
    let closed = next_message(&mut bad, WAIT).await.unwrap();
    assert_eq!(closed["type"], "close", "{closed}");
    // A refused `connection_init` closes with 4403 (Forbidden) and the reason.
    assert_eq!(closed["code"], 4403);
    assert_eq!(closed["reason"], "invalid or revoked credentials");
}

fn types_of(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect()
}

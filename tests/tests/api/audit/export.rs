//! The JSON-lines export: the same events as the pages, for auditors and admins only.

use serde_json::Value;
use twofold_tests::{spawn_app, TestApp};

use super::{all_events, settled, sign_ins};

pub(super) async fn export(app: &TestApp, key: &str, query: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/audit/export{query}", app.address))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap()
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

//! `GET /metrics`: the operator's counters, over every tenant and naming none.

use serde_json::json;
use twofold_tests::spawn_app;

async fn metrics(app: &twofold_tests::TestApp, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{}/metrics", app.address));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.send().await.unwrap()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test]
async fn metrics_count_answers_and_error_codes_for_the_operator_only() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;

    // Only the operator reads them.
    let anonymous = metrics(&app, None).await;
    assert_eq!(anonymous.status().as_u16(), 401);
    let tenant_admin = metrics(&app, Some(&admin)).await;
    assert_eq!(tenant_admin.status().as_u16(), 403);
    let body: serde_json::Value = tenant_admin.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");

    let before = metrics(&app, Some(&app.operator_token)).await;
    assert_eq!(before.status().as_u16(), 200);
    assert!(before.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let before = before.text().await.unwrap();

    // A wrong code for an enrolled user, an unknown field, and a bad key.
    let user = "metrics-user";
    let started = app
        .gql(
            Some(&key),
            "mutation($u: ID!) { startTotpEnrollment(userId: $u) { otpauthUri } }",
            json!({ "u": user }),
        )
        .await;
    assert!(started.body["errors"].is_null(), "{:?}", started.body);
    let wrong = app
        .gql(
            Some(&key),
            "mutation($u: ID!) { confirmTotpEnrollment(userId: $u, code: \"000000\") { codes } }",
            json!({ "u": user }),
        )
        .await;
    let unknown = app.gql(Some(&key), "{ noSuchField }", json!({})).await;
    assert_eq!(unknown.error_code(), "INVALID_INPUT");
    let bad_key = app
        .gql(Some("not-a-key"), "{ __typename }", json!({}))
        .await;
    assert_eq!(bad_key.error_code(), "UNAUTHENTICATED");

    let after = metrics(&app, Some(&app.operator_token))
        .await
        .text()
        .await
        .unwrap();
    let delta = |series: &str| value(&after, series) - value(&before, series);
    let wrong_code = format!(
        "twofold_graphql_errors_total{{code=\"{}\"}}",
        wrong.error_code()
    );
    assert_eq!(delta(&wrong_code), 1.0, "{after}");
    assert_eq!(
        delta("twofold_graphql_errors_total{code=\"INVALID_INPUT\"}"),
        1.0
    );
    assert_eq!(
        delta("twofold_graphql_errors_total{code=\"UNAUTHENTICATED\"}"),
        1.0
    );
    assert_eq!(
        delta("twofold_graphql_errors_total{code=\"INTERNAL\"}"),
        0.0
    );
    // The four GraphQL requests and the first metrics read, each counted once, by class and
    // in the latency histogram alike.
    let answered = delta("twofold_http_responses_total{class=\"2xx\"}")
        + delta("twofold_http_responses_total{class=\"4xx\"}");
    assert_eq!(answered, 5.0, "{after}");
    assert_eq!(delta("twofold_http_request_duration_seconds_count"), 5.0);

    // Totals only: nothing names a tenant, a key or a user.
    for secret in [tenant.as_str(), key.as_str(), admin.as_str(), user] {
        assert!(!after.contains(secret), "{secret} in\n{after}");
    }
}

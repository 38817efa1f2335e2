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

/// Reads `/metrics` until `series` has `want`, or fails after 20 s.
async fn until(app: &twofold_tests::TestApp, series: &str, want: f64) -> String {
    let started = std::time::Instant::now();
    loop {
        let text = metrics(app, Some(&app.operator_token))
            .await
            .text()
            .await
            .unwrap();
        if text
            .lines()
            .any(|l| l.strip_prefix(series) == Some(&format!(" {want}")))
        {
            return text;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{series} never reached {want}:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_show_the_pool_the_processor_the_queue_and_deliveries_per_channel() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let text = metrics(&app, Some(&app.operator_token))
        .await
        .text()
        .await
        .unwrap();
    for series in [
        "twofold_database_up",
        "twofold_delivery_worker_up",
        "twofold_db_pool_max_connections",
    ] {
        assert!(value(&text, series) >= 1.0, "{series} in\n{text}");
    }
    assert!(value(&text, "twofold_event_processor_lag_seconds") < 30.0);
    let delivered =
        "twofold_deliveries_total{channel=\"EMAIL\",kind=\"code\",outcome=\"delivered\"}";
    assert_eq!(value(&text, delivered), 0.0, "{text}");

    let email = "metrics-user@example.com";
    let added = app
        .gql(
            Some(&key),
            "mutation($u: ID!, $e: String!) { addEmail(userId: $u, email: $e) { id } }",
            json!({ "u": "metrics-user", "e": email }),
        )
        .await;
    assert!(added.body["errors"].is_null(), "{:?}", added.body);
    app.smtp
        .wait_for(1, std::time::Duration::from_secs(20))
        .await;
    // Counted once the queue records the outcome, just after the provider accepted it.
    let text = until(&app, delivered, 1.0).await;
    assert_eq!(
        value(
            &text,
            "twofold_deliveries_total{channel=\"SMS\",kind=\"code\",outcome=\"delivered\"}"
        ),
        0.0
    );
    let text = until(&app, "twofold_delivery_queue_due", 0.0).await;
    assert_eq!(
        value(&text, "twofold_delivery_queue_oldest_due_seconds"),
        0.0
    );
    for secret in [email, "metrics-user", key.as_str()] {
        assert!(!text.contains(secret), "{secret} in\n{text}");
    }
}

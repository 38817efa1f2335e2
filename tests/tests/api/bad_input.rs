//! Bad requests get a typed error and change nothing.

use serde_json::json;
use twofold_tests::spawn_app;

async fn event_count(app: &twofold_tests::TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn malformed_bodies_are_invalid_input() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let before = event_count(&app).await;
    for body in [
        &b"{\"query\": "[..],
        b"not json",
        b"[]",
        b"{\"variables\": {}}",
        b"{\"query\": 42}",
        b"",
        // An array is not a request, though it lists a query and its parts in order.
        b"[\"{ tenant { id } }\"]",
        b" [\"{ tenant { id } }\", null, {}, {}]",
        // A key given twice: a proxy that read the first would not know what ran.
        b"{\"query\": \"{ tenant { id } }\", \"query\": \"{ __typename }\"}",
    ] {
        let a = app.post_raw(Some(&admin), body.to_vec()).await;
        assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(a.error_code(), "INVALID_INPUT");
    }
    let a = app
        .post_raw(
            Some(&admin),
            b"{ \"query\": \"mutation { issueApiKey(\" }".to_vec(),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "GraphQL syntax error");
    assert_eq!(event_count(&app).await, before);
}

#[tokio::test]
async fn unknown_fields_and_arguments_are_invalid_input() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let before = event_count(&app).await;
    for query in [
        "{ tenant { id secretSauce } }",
        "{ nothingHere }",
        "mutation { issueApiKey(role: APP, label: \"x\", admin: true) { key { id } } }",
        "mutation { issueApiKey(role: KING, label: \"x\") { key { id } } }",
        "mutation { issueApiKey(role: APP) { key { id } } }",
    ] {
        let a = app.gql(Some(&admin), query, json!({})).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{query}");
        assert!(a.body["data"].is_null(), "{query}");
    }
    assert_eq!(event_count(&app).await, before);
}

#[tokio::test]
async fn oversized_input_is_refused() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let before = event_count(&app).await;
    let a = app
        .gql(
            Some(&admin),
            "mutation($l: String!) { issueApiKey(role: APP, label: $l) { key { id } } }",
            json!({ "l": "x".repeat(10_000) }),
        )
        .await;
    assert_eq!(a.error_code(), "INVALID_INPUT");
    assert!(a.error_message().contains("at most 100 characters"));

    let huge = json!({ "query": "{ tenant { id } }", "variables": { "pad": "y".repeat(100_000) } });
    let a = app
        .post_raw(Some(&admin), serde_json::to_vec(&huge).unwrap())
        .await;
    assert_eq!(a.status, 413);
    assert_eq!(a.error_code(), "INVALID_INPUT");
    assert_eq!(event_count(&app).await, before);
}

#[tokio::test]
async fn garbled_or_unknown_credentials_are_unauthenticated() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let garbled = [
        "Basic dXNlcjpwYXNz".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        admin.clone(),              // no scheme
        format!("Bearer {admin}x"), // one character off
        format!("Bearer {}", &admin[..admin.len() - 1]),
        "Bearer tfk_aaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbb".to_owned(),
        format!("Bearer {}", "z".repeat(5_000)),
    ];
    for header in &garbled {
        let res = app
            .post("/graphql")
            .header("authorization", header)
            .header("content-type", "application/json")
            .body(r#"{"query":"{ tenant { id } }"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401, "{header}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert!(body["data"].is_null());
        // The answer never echoes what was presented.
        assert!(!body.to_string().contains(&admin[4..20]));
    }
    // Non-UTF-8 header bytes.
    let res = app
        .post("/graphql")
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        )
        .body(r#"{"query":"{ tenant { id } }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn a_document_seen_before_is_still_checked_against_the_limits_and_the_caller() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    // Nested deeper than the schema's recursion limit (32), however often it is sent: a
    // parsed document is reused, the checks are not skipped.
    let deep = format!(
        "{{ {}tenant {{ id }}{} }}",
        "... on Query { ".repeat(40),
        " }".repeat(40)
    );
    for _ in 0..2 {
        let a = app.gql(Some(&admin), &deep, json!({})).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
        assert!(a.error_message().contains("recurs"), "{}", a.body);
    }
    let shallow = format!(
        "{{ {}tenant {{ id }}{} }}",
        "... on Query { ".repeat(3),
        " }".repeat(3)
    );
    assert!(app.gql(Some(&admin), &shallow, json!({})).await.data()["tenant"]["id"].is_string());
    // The same document answers each caller by the caller's own rights.
    let policy = "mutation { setPolicy(input: { codeDigits: 8 }) { codeDigits } }";
    assert_eq!(
        app.gql(Some(&admin), policy, json!({})).await.data()["setPolicy"]["codeDigits"],
        8
    );
    assert_eq!(
        app.gql(Some(&app_key), policy, json!({}))
            .await
            .error_code(),
        "FORBIDDEN"
    );
}

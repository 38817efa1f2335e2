//! The HTTP surface's hardening (issue 14, points 9 and 10): no caching of answers, coded 404
//! and 405 bodies, one-line syntax errors, introspection behind a key, strict export
//! parameters, sane request ids.

use serde_json::{json, Value};
use twofold_tests::{spawn_app, TestApp};

async fn export(app: &TestApp, key: &str, query: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/audit/export{query}", app.address))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap()
}

fn no_store(res: &reqwest::Response) -> bool {
    res.headers()
        .get("cache-control")
        .is_some_and(|v| v.to_str().unwrap_or_default().contains("no-store"))
}

/// The coded error body of a non-GraphQL answer: (status, code, message).
async fn coded(res: reqwest::Response) -> (u16, String, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("a JSON error body");
    assert_eq!(body["data"], Value::Null, "{body}");
    (
        status,
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code in {body}"))
            .to_owned(),
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn graphql_answers_and_the_export_are_never_cached() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let post = |body: &'static str, key: Option<String>| {
        let mut req = app
            .post("/graphql")
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        req.send()
    };
    let answers = [
        post(r#"{"query":"{ __typename }"}"#, None).await.unwrap(),
        post(r#"{"query":"{ nope }"}"#, None).await.unwrap(),
        post(r#"not json"#, None).await.unwrap(),
        post(r#"{"query":"{ __typename }"}"#, Some("tfk_bogus".into()))
            .await
            .unwrap(),
        app.get("/graphql").await,
        export(&app, &admin, "").await,
        export(&app, &admin, "?bogus=1").await,
        export(&app, "tfk_bogus", "").await,
    ];
    for (i, res) in answers.iter().enumerate() {
        assert!(no_store(res), "answer {i} ({}) may be cached", res.url());
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_get_coded_errors() {
    let app = spawn_app().await;
    let (status, code, message) = coded(app.get("/nowhere").await).await;
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
    assert!(
        message.contains("/nowhere") || message.contains("no such"),
        "{message}"
    );

    let res = reqwest::Client::new()
        .delete(format!("{}/graphql", app.address))
        .send()
        .await
        .unwrap();
    let allow = res
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, code, message) = coded(res).await;
    assert_eq!((status, code.as_str()), (405, "INVALID_INPUT"));
    assert!(message.contains("DELETE"), "{message}");
    assert!(allow.is_some_and(|a| a.contains("POST")), "an Allow header");

    let res = app.post("/health").send().await.unwrap();
    let (status, code, _) = coded(res).await;
    assert_eq!((status, code.as_str()), (405, "INVALID_INPUT"));
}

#[tokio::test]
async fn a_syntax_error_is_one_readable_line() {
    let app = spawn_app().await;
    for (document, line, column) in [
        ("{ user(", 1, 8),
        ("query {\n  __typename\n  tenant { id ", 3, 15),
        ("}", 1, 1),
    ] {
        let a = app.gql(None, document, json!({})).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{document}");
        let message = a.error_message();
        assert!(!message.contains('\n'), "a multi-line message: {message:?}");
        assert!(!message.contains("-->"), "a parser diagram: {message:?}");
        assert!(
            message.starts_with(&format!("syntax error at line {line} column {column}: ")),
            "{message:?}"
        );
        assert!(message.contains("expected"), "{message:?}");
    }
}

#[tokio::test]
async fn introspection_needs_a_valid_key() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let documents = [
        "{ __schema { queryType { name } } }",
        r#"{ __type(name: "Query") { name } }"#,
        "{ ... on Query { ... on Query { s: __schema { types { name } } } } }",
        "query { ...F } fragment F on Query { __type(name: \"Role\") { name } }",
    ];
    for document in documents {
        let a = app.gql(None, document, json!({})).await;
        assert_eq!(a.error_code(), "UNAUTHENTICATED", "{document}: {}", a.body);
        assert_eq!(a.body["data"], Value::Null, "{document}: {}", a.body);
    }
    // Refused for introspection before its arguments are checked: an anonymous caller learns
    // nothing from the input check's message about the fields around `__schema`.
    let a = app
        .gql(
            None,
            "{ __schema { queryType { name } } user(userId: \"a\\u0000b\") { userId } }",
            json!({}),
        )
        .await;
    assert_eq!(a.error_code(), "UNAUTHENTICATED", "{}", a.body);
    // A revoked or made-up key is no better than none.
    let a = app.gql(Some("tfk_madeup"), documents[0], json!({})).await;
    assert_eq!(a.error_code(), "UNAUTHENTICATED");
    // With a key it works, and `__typename` needs none.
    for document in documents {
        let a = app.gql(Some(&admin), document, json!({})).await;
        a.data();
    }
    let a = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(a.data()["__typename"], "Query");
    // Validation errors do not guess at names either: that would be introspection by typo.
    let a = app.gql(None, "{ tenan { i } }", json!({})).await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
    assert!(!a.body.to_string().contains("tenant"), "{}", a.body);
}

#[tokio::test]
async fn repeated_export_parameters_are_refused() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    for query in [
        "?userId=a&userId=b",
        "?userId=a&userId=a",
        "?from=2026-01-01T00:00:00Z&from=2026-02-01T00:00:00Z",
        "?to=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
        "?oldestFirst=true&oldestFirst=false",
    ] {
        let res = export(&app, &admin, query).await;
        let (status, code, message) = coded(res).await;
        assert_eq!((status, code.as_str()), (400, "INVALID_INPUT"), "{query}");
        assert!(message.contains("more than once"), "{query}: {message}");
    }
    // Event types are a list: giving the parameter twice adds to it.
    let res = export(
        &app,
        &admin,
        "?eventType=SignInEvaluated&eventType=CodeSent",
    )
    .await;
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn only_sane_request_ids_are_kept() {
    let app = spawn_app().await;
    let send = |id: String| {
        app.post("/graphql")
            .header("x-request-id", id)
            .body(r#"{"query":"{ __typename }"}"#)
            .send()
    };
    let longest = "a".repeat(64);
    for kept in [longest.clone(), "A-z_0.9".to_owned()] {
        let res = send(kept.clone()).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], kept.as_str());
    }
    for refused in [
        format!("{longest}b"),
        "a/b".to_owned(),
        "a:b".to_owned(),
        "id\u{7f}".to_owned(),
        "<script>".to_owned(),
    ] {
        let Ok(res) = send(refused.clone()).await else {
            continue; // the client itself would not send it
        };
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(id, refused);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "a minted id: {id}");
    }
}

//! Documents built to exhaust the service: values and selections nested thousands deep, by
//! HTTP and over a WebSocket. Each is refused with a coded error before anything recursive
//! reads it, and the service goes on answering.

use serde_json::json;
use twofold_tests::{spawn_app, TestApp};

use crate::ws_support::{
    close_code, connect, connect_with_key, next_message, open, result_of, send, subscribe, WAIT,
};

/// Nesting depths tried: past the old crash point (about 2,000) and far past the body limit.
const DEPTHS: [usize; 3] = [1_000, 2_000, 100_000];

/// Hostile documents nested `n` deep, by the shape of the probe that found the crash.
fn documents(n: usize) -> Vec<(&'static str, String)> {
    let list = format!("{}{}", "[".repeat(n), "]".repeat(n));
    let object = format!("{}1{}", "{a: ".repeat(n), "}".repeat(n));
    vec![
        ("__typename list", format!("{{ __typename(x: {list}) }}")),
        (
            "user list",
            format!("{{ user(userId: {list}) {{ userId }} }}"),
        ),
        (
            "auditEvents filter",
            format!("{{ auditEvents(filter: {{ userId: {object} }}) {{ hasNextPage }} }}"),
        ),
        (
            "selections",
            format!("{}{}", "{ a ".repeat(n), "}".repeat(n)),
        ),
    ]
}

async fn still_answers(app: &TestApp) {
    let a = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(a.data()["__typename"], "Query");
}

#[tokio::test]
async fn deeply_nested_documents_over_http_are_refused_and_the_service_keeps_answering() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Hostile").await;
    for n in DEPTHS {
        for (shape, document) in documents(n) {
            for key in [None, Some(admin.as_str())] {
                let a = app.gql(key, &document, json!({})).await;
                assert_eq!(
                    a.error_code(),
                    "INVALID_INPUT",
                    "{shape} at {n}: {}",
                    a.body
                );
                if document.len() > twofold_graphql::http::MAX_BODY_BYTES {
                    assert_eq!(a.status, 413, "{shape} at {n}");
                } else {
                    assert_eq!(a.status, 400, "{shape} at {n}");
                    assert!(a.error_message().contains("nested"), "{}", a.body);
                }
                still_answers(&app).await;
            }
        }
    }
    // A document just inside the bound is parsed and executed as before.
    let n = twofold_graphql::limits::MAX_NESTING - 2;
    let a = app
        .gql(
            None,
            &format!("{{ __typename(x: {}{}) }}", "[".repeat(n), "]".repeat(n)),
            json!({}),
        )
        .await;
    assert_eq!(a.data()["__typename"], "Query");
}

#[tokio::test]
async fn fragments_that_multiply_are_refused_before_validation_walks_them() {
    let app = spawn_app().await;
    // Each fragment spreads the next twice: 2^30 selections once inlined, in 2 KB. The
    // validator and the depth check inline fragments without memoising, so this used to keep a
    // worker thread busy for minutes.
    let mut document = String::from("{ ...F0 }\n");
    for i in 0..30 {
        document.push_str(&format!(
            "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    document.push_str("fragment F30 on Query { __typename }\n");
    let a = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.gql(None, &document, json!({})),
    )
    .await
    .expect("answered at once");
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
    assert!(a.error_message().contains("fragments"), "{}", a.body);
    // A fragment spread in a cycle is refused the same way.
    let cycle = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
    let a = app.gql(None, cycle, json!({})).await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
    still_answers(&app).await;
}

#[tokio::test]
async fn a_flood_of_unknown_arguments_gets_a_bounded_answer() {
    let app = spawn_app().await;
    // 5,000 unknown arguments in 50 KB each made an error of their own.
    let arguments: Vec<String> = (0..5_000).map(|i| format!("a{i}: 1")).collect();
    let document = format!("{{ tenant({}) {{ id }} }}", arguments.join(", "));
    let a = app.gql(None, &document, json!({})).await;
    assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
    let errors = a.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), twofold_graphql::http::MAX_ERRORS + 1);
    let last = &errors[twofold_graphql::http::MAX_ERRORS];
    assert_eq!(last["message"], "4950 more errors are not shown", "{last}");
    assert_eq!(last["extensions"]["code"], "INVALID_INPUT");
    still_answers(&app).await;
}

#[tokio::test]
async fn deeply_nested_variables_are_refused_with_a_coded_error() {
    let app = spawn_app().await;
    let query = "query($v: [Int]) { __typename }";
    for n in [100, 127, 1_000, 20_000] {
        // Written by hand: serde_json cannot build values past its own depth limit.
        let body = format!(
            r#"{{"query": {}, "variables": {{"v": {}{}}}}}"#,
            serde_json::to_string(query).unwrap(),
            "[".repeat(n),
            "]".repeat(n)
        );
        let a = app.post_raw(None, body.into_bytes()).await;
        assert_eq!(
            a.error_code(),
            "INVALID_INPUT",
            "variables at {n}: {}",
            a.body
        );
        still_answers(&app).await;
    }
}

#[tokio::test]
async fn deeply_nested_documents_over_a_websocket_are_refused_and_the_service_keeps_answering() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Hostile WS").await;
    for n in DEPTHS {
        for (shape, document) in documents(n) {
            // With a valid key: the operation is refused, the socket stays usable.
            let mut socket = connect_with_key(&app, &admin).await;
            subscribe(&mut socket, "1", &document).await;
            let message =
                json!({ "id": "1", "type": "subscribe", "payload": { "query": document } });
            if message.to_string().len() > twofold_graphql::http::MAX_BODY_BYTES {
                // Larger than an HTTP body may be: the socket is closed as "message too big".
                assert_eq!(
                    close_code(&mut socket, WAIT).await,
                    Some(1009),
                    "{shape} at {n}"
                );
            } else {
                let answer = result_of(&mut socket, "1").await;
                assert_eq!(
                    crate::ws_support::code(&answer),
                    "INVALID_INPUT",
                    "{shape} at {n}"
                );
                subscribe(&mut socket, "2", "{ __typename }").await;
                let answer = result_of(&mut socket, "2").await;
                assert_eq!(answer["data"]["__typename"], "Query", "{answer}");
            }
            still_answers(&app).await;

            // Without a key (an empty `connection_init`): nothing is read, the socket is closed.
            let mut socket = connect(&app, json!({})).await;
            subscribe(&mut socket, "1", &document).await;
            let closed = close_code(&mut socket, WAIT).await;
            assert!(
                matches!(closed, Some(4401) | Some(1009)),
                "{shape} at {n}: {closed:?}"
            );
            still_answers(&app).await;

            // No `connection_init` at all.
            let mut socket = open(&app).await;
            send(
                &mut socket,
                json!({ "id": "1", "type": "subscribe", "payload": { "query": document } }),
            )
            .await;
            let closed = next_message(&mut socket, WAIT).await;
            assert!(
                closed.as_ref().is_some_and(|m| m["type"] == "close"),
                "{shape} at {n}: {closed:?}"
            );
            still_answers(&app).await;
        }
    }
}

//! The HTTP path's limits on a socket: message size, time, depth and complexity, and the older
//! `graphql-ws` protocol held to the same rules.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use twofold_graphql::WsLimits;
use twofold_tests::{spawn_app, spawn_app_with, TestOptions};

use super::ISSUE_ADMIN;
use crate::ws_support::{
    close_code, code, connect_with_key, next_message, open_with, result_of, send, subscribe, WAIT,
};

#[tokio::test]
async fn a_message_larger_than_an_http_body_is_refused_with_1009() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Big messages").await;
    let max = twofold_graphql::http::MAX_BODY_BYTES;
    // Just under the limit: runs. The padding is a comment, so the document stays valid.
    let mut socket = connect_with_key(&app, &admin).await;
    let query = |size: usize| format!("{{ __typename }}\n#{}", "x".repeat(size));
    let envelope =
        |q: &str| json!({ "id": "1", "type": "subscribe", "payload": { "query": q } }).to_string();
    let overhead = envelope(&query(0)).len();
    send_raw(&mut socket, envelope(&query(max - overhead))).await;
    assert_eq!(
        result_of(&mut socket, "1").await["data"]["__typename"],
        "Query"
    );
    // One byte over: closed as too big, nothing run.
    let mut socket = connect_with_key(&app, &admin).await;
    send_raw(&mut socket, envelope(&query(max - overhead + 1))).await;
    assert_eq!(close_code(&mut socket, WAIT).await, Some(1009));
    // Four times over: the same.
    let mut socket = connect_with_key(&app, &admin).await;
    send_raw(&mut socket, envelope(&query(3 * max))).await;
    assert_eq!(close_code(&mut socket, WAIT).await, Some(1009));
    // Far over (4 MiB was accepted and executed): refused unread. The server may drop the
    // connection rather than finish the close handshake; either way nothing runs.
    let mut socket = connect_with_key(&app, &admin).await;
    let padded = format!("{ISSUE_ADMIN}\n#{}", "x".repeat(4 << 20));
    send_raw(&mut socket, envelope(&padded)).await;
    let closed = close_code(&mut socket, WAIT).await;
    assert!(matches!(closed, Some(1009) | None), "{closed:?}");
    assert_eq!(app.count_events(&tenant, "ApiKeyIssued").await, 1);
}

async fn send_raw(socket: &mut crate::ws_support::Socket, text: String) {
    use futures::SinkExt;
    let _ = socket.send(Message::text(text)).await;
}

#[tokio::test]
async fn operations_over_a_websocket_have_the_http_path_s_time_depth_and_complexity_limits() {
    let app = spawn_app_with(TestOptions {
        websocket: WsLimits {
            operation_timeout: Duration::from_secs(1),
            ..WsLimits::default()
        },
        ..TestOptions::default()
    })
    .await;
    let (_, admin) = app.create_tenant("Limits").await;
    let mut socket = connect_with_key(&app, &admin).await;
    // The time bound: a query stuck behind a lock on the events table is cut off.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let started = Instant::now();
    subscribe(
        &mut socket,
        "1",
        "{ auditEvents(first: 1) { hasNextPage } }",
    )
    .await;
    let answer = result_of(&mut socket, "1").await;
    assert_eq!(code(&answer), "INTERNAL", "{answer}");
    assert!(answer.to_string().contains("took too long"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    lock.rollback().await.unwrap();

    // Depth: the same refusal as over HTTP.
    let deep = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "fields { type { ofType { ofType { ofType { ".repeat(3),
        " } } } } }".repeat(3)
    );
    let over_http = app.gql(Some(&admin), &deep, json!({})).await;
    assert_eq!(over_http.error_code(), "INVALID_INPUT");
    subscribe(&mut socket, "2", &deep).await;
    let answer = result_of(&mut socket, "2").await;
    assert_eq!(code(&answer), "INVALID_INPUT", "{answer}");
    assert_eq!(
        answer["errors"][0]["message"],
        over_http.body["errors"][0]["message"]
    );

    // Complexity: 1,001 aliased `tenant { id }` (2 each), within the depth limit.
    let wide = format!(
        "{{ {} }}",
        (0..1_001)
            .map(|i| format!("t{i}: tenant {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let over_http = app.gql(Some(&admin), &wide, json!({})).await;
    assert_eq!(over_http.error_code(), "INVALID_INPUT");
    subscribe(&mut socket, "3", &wide).await;
    let answer = result_of(&mut socket, "3").await;
    assert_eq!(code(&answer), "INVALID_INPUT", "{answer}");
    assert_eq!(
        answer["errors"][0]["message"],
        over_http.body["errors"][0]["message"]
    );
}

#[tokio::test]
async fn the_older_graphql_ws_protocol_gets_the_same_rules() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Legacy").await;
    let mut socket = open_with(&app, "graphql-ws").await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "apiKey": admin } }),
    )
    .await;
    assert_eq!(
        next_message(&mut socket, WAIT).await.unwrap()["type"],
        "connection_ack"
    );
    send(
        &mut socket,
        json!({ "id": "1", "type": "start", "payload": { "query": "{ tenant { name } }" } }),
    )
    .await;
    let data = next_message(&mut socket, WAIT).await.unwrap();
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(data["payload"]["data"]["tenant"]["name"], "Legacy");
    assert_eq!(
        next_message(&mut socket, WAIT).await.unwrap()["type"],
        "complete"
    );
    let nested = format!(
        "{{ __typename(x: {}{}) }}",
        "[".repeat(2_000),
        "]".repeat(2_000)
    );
    send(
        &mut socket,
        json!({ "id": "2", "type": "start", "payload": { "query": nested } }),
    )
    .await;
    let refused = next_message(&mut socket, WAIT).await.unwrap();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"]["extensions"]["code"], "INVALID_INPUT");
    // Without a key it is closed like the current protocol.
    let mut keyless = open_with(&app, "graphql-ws").await;
    send(&mut keyless, json!({ "type": "connection_init" })).await;
    assert_eq!(close_code(&mut keyless, WAIT).await, Some(4401));
}

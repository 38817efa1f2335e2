//! The live stream over `graphql-transport-ws`: the tenant's new events, in order, and nothing
//! else.

use std::time::Duration;

use futures::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use twofold_tests::spawn_app;

use super::{sign_ins, WAIT};
use crate::totp::{enroll, tenant};
use crate::ws_support::{connect, next_message, Socket};

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

//! A valid key for everything: checked again for every operation, the socket closed on
//! revocation, and nothing run for a socket without one.

use std::time::{Duration, Instant};

use serde_json::json;
use twofold_tests::{spawn_app, TestApp};

use super::ISSUE_ADMIN;
use crate::ws_support::{
    close_code, connect, connect_with_key, next_message, open, result_of, send, subscribe, WAIT,
};

/// Waits until `key` is refused over HTTP (the revocation has reached this instance).
async fn wait_until_refused(app: &TestApp, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = app.gql(Some(key), "{ tenant { id } }", json!({})).await;
        if a.status == 401 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the revoked key is still accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_revoked_key_s_socket_is_closed_with_4403_and_runs_nothing_more() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Revoked socket").await;
    let (second_id, second) = app.issue_key(&admin, "ADMIN").await;

    // Two sockets of the second ADMIN key: one stays quiet, one tries to mint a key after the
    // revocation.
    let mut quiet = connect_with_key(&app, &second).await;
    let mut busy = connect_with_key(&app, &second).await;
    subscribe(&mut busy, "1", ISSUE_ADMIN).await;
    let minted = result_of(&mut busy, "1").await;
    assert!(
        minted["data"]["issueApiKey"]["secret"].is_string(),
        "{minted}"
    );
    let issued_before = app.count_events(&tenant, "ApiKeyIssued").await;

    app.gql(
        Some(&admin),
        "mutation($k: ID!) { revokeApiKey(keyId: $k) { id } }",
        json!({ "k": second_id }),
    )
    .await
    .data();
    wait_until_refused(&app, &second).await;
    let refused_at = Instant::now();

    subscribe(&mut busy, "2", ISSUE_ADMIN).await;
    // Operation 1's `complete` may still be queued; what answers operation 2 is the close.
    let answer = loop {
        let m = next_message(&mut busy, WAIT).await.expect("an answer");
        if m["type"] != "complete" {
            break m;
        }
    };
    assert_eq!(answer["type"], "close", "{answer}");
    assert_eq!(answer["code"], 4403, "{answer}");
    assert_eq!(
        close_code(&mut quiet, Duration::from_secs(2)).await,
        Some(4403)
    );
    assert!(
        refused_at.elapsed() < Duration::from_millis(1_500),
        "closed after {:?}",
        refused_at.elapsed()
    );
    assert_eq!(
        app.count_events(&tenant, "ApiKeyIssued").await,
        issued_before
    );
    // And a new socket with the revoked key is refused at once.
    let mut again = connect(&app, json!({ "apiKey": second })).await;
    assert_eq!(close_code(&mut again, WAIT).await, Some(4403));
}

#[tokio::test]
async fn a_socket_without_a_valid_key_is_closed_before_it_runs_anything() {
    let app = spawn_app().await;
    // No key at all: 4401.
    let mut socket = connect(&app, json!({})).await;
    assert_eq!(close_code(&mut socket, WAIT).await, Some(4401));
    // A wrong key: 4403.
    let mut socket = connect(&app, json!({ "Authorization": "Bearer tfk_nope_nope" })).await;
    assert_eq!(close_code(&mut socket, WAIT).await, Some(4403));
    // An operation before `connection_init`: 4401, and it is not run.
    let (tenant, admin) = app.create_tenant("No init").await;
    let mut socket = open(&app).await;
    subscribe(&mut socket, "1", ISSUE_ADMIN).await;
    assert_eq!(close_code(&mut socket, WAIT).await, Some(4401));
    // A second `connection_init`: 4429.
    let mut socket = connect_with_key(&app, &admin).await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": {} }),
    )
    .await;
    assert_eq!(close_code(&mut socket, WAIT).await, Some(4429));
    assert_eq!(app.count_events(&tenant, "ApiKeyIssued").await, 1);
    // Before `connection_init`, a `complete` is refused, and pings do not go on for ever.
    let mut socket = open(&app).await;
    send(&mut socket, json!({ "type": "complete", "id": "1" })).await;
    assert_eq!(close_code(&mut socket, WAIT).await, Some(4401));
    let mut socket = open(&app).await;
    for _ in 0..20 {
        send(&mut socket, json!({ "type": "ping" })).await;
    }
    assert_eq!(close_code(&mut socket, WAIT).await, Some(4429));
}

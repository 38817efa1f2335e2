//! The WebSocket path holds the HTTP path's rules: a valid key for everything, checked again
//! for every operation and closed on revocation; the body size, time, depth and complexity
//! limits; and bounds on sockets, operations and idleness.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use twofold_graphql::WsLimits;
use twofold_tests::{spawn_app, spawn_app_with, TestApp, TestOptions};

use crate::ws_support::{
    close_code, code, connect, connect_with_key, next_message, open, open_from, open_from_with,
    open_with, result_of, send, subscribe, WAIT,
};

const ISSUE_ADMIN: &str =
    r#"mutation { issueApiKey(role: ADMIN, label: "via socket") { secret } }"#;

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
async fn a_key_holds_a_bounded_number_of_sockets_and_a_socket_of_operations() {
    let app = spawn_app_with(TestOptions {
        websocket: WsLimits {
            max_sockets_per_key: 2,
            max_operations_per_socket: 2,
            ..WsLimits::default()
        },
        ..TestOptions::default()
    })
    .await;
    let (_, admin) = app.create_tenant("Socket caps").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;

    let first = connect_with_key(&app, &auditor).await;
    let mut second = connect_with_key(&app, &auditor).await;
    let mut third = connect(&app, json!({ "apiKey": auditor })).await;
    assert_eq!(close_code(&mut third, WAIT).await, Some(4429));
    // Another key is not affected; a closed socket frees its place.
    let _other = connect_with_key(&app, &admin).await;
    drop(first);
    let deadline = Instant::now() + WAIT;
    let _replacement = loop {
        let mut socket = connect(&app, json!({ "apiKey": auditor })).await;
        match next_message(&mut socket, WAIT).await {
            Some(m) if m["type"] == "connection_ack" => break socket,
            other => assert!(Instant::now() < deadline, "no place freed: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let live = "subscription { auditEvents { eventType } }";
    subscribe(&mut second, "a", live).await;
    subscribe(&mut second, "b", live).await;
    subscribe(&mut second, "c", live).await;
    let refused = result_of(&mut second, "c").await;
    assert_eq!(code(&refused), "RATE_LIMITED", "{refused}");
    // Completing one makes room for another.
    send(&mut second, json!({ "id": "a", "type": "complete" })).await;
    let deadline = Instant::now() + WAIT;
    loop {
        subscribe(&mut second, "d", live).await;
        // A live stream sends nothing until an event: silence means it was accepted.
        match next_message(&mut second, Duration::from_millis(300)).await {
            None => break,
            Some(m) => {
                assert_eq!(code(&json!({ "errors": m["payload"] })), "RATE_LIMITED");
                assert!(Instant::now() < deadline, "no room made");
            }
        }
    }
}

#[tokio::test]
async fn silent_and_idle_sockets_are_closed_but_a_live_stream_is_not_idle() {
    let app = spawn_app_with(TestOptions {
        websocket: WsLimits {
            init_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(600),
            ..WsLimits::default()
        },
        ..TestOptions::default()
    })
    .await;
    let (_, admin) = app.create_tenant("Idle").await;
    // No `connection_init`: 4408.
    let mut silent = open(&app).await;
    assert_eq!(close_code(&mut silent, WAIT).await, Some(4408));
    // Nothing in flight and nothing said: closed normally.
    let mut idle = connect_with_key(&app, &admin).await;
    assert_eq!(close_code(&mut idle, WAIT).await, Some(1000));
    // Pings are not work: a socket that only pings is idle too.
    let mut pinging = connect_with_key(&app, &admin).await;
    let started = Instant::now();
    let closed = loop {
        assert!(started.elapsed() < WAIT, "a pinging socket never idled out");
        send(&mut pinging, json!({ "type": "ping" })).await;
        if let Some(m) = next_message(&mut pinging, Duration::from_millis(200)).await {
            assert_eq!(m["type"], "close", "{m}");
            break m["code"].clone();
        }
    };
    assert_eq!(closed, 1000);
    // Nor is completing operations that are not running.
    let mut completing = connect_with_key(&app, &admin).await;
    let started = Instant::now();
    let closed = loop {
        assert!(
            started.elapsed() < WAIT,
            "a socket completing nothing never idled out"
        );
        send(
            &mut completing,
            json!({ "id": "nothing", "type": "complete" }),
        )
        .await;
        if let Some(m) = next_message(&mut completing, Duration::from_millis(200)).await {
            assert_eq!(m["type"], "close", "{m}");
            break m["code"].clone();
        }
    };
    assert_eq!(closed, 1000);
    // A socket holding a live stream stays open past the idle timeout.
    let mut live = connect_with_key(&app, &admin).await;
    subscribe(&mut live, "1", "subscription { auditEvents { eventType } }").await;
    assert_eq!(
        next_message(&mut live, Duration::from_millis(1_500)).await,
        None
    );
    send(&mut live, json!({ "type": "ping" })).await;
    let pong = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut live)).await;
    assert!(
        matches!(&pong, Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains("pong")),
        "{pong:?}"
    );
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

#[tokio::test]
async fn a_tenant_holds_a_bounded_number_of_live_audit_streams() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Streams").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let per_socket = 16;
    let max = twofold_services::audit::MAX_LIVE_PER_TENANT;
    let mut sockets = Vec::new();
    for s in 0..max.div_ceil(per_socket) {
        let key = if s % 2 == 0 { &admin } else { &auditor };
        let mut socket = connect_with_key(&app, key).await;
        for i in 0..per_socket.min(max - s * per_socket) {
            subscribe(
                &mut socket,
                &format!("{s}-{i}"),
                "subscription { auditEvents { eventType } }",
            )
            .await;
        }
        sockets.push(socket);
    }
    // Until every stream has pushed an event (so every one is running), record one more.
    let mut seen = std::collections::HashSet::new();
    let started = Instant::now();
    while seen.len() < max {
        assert!(
            started.elapsed() < WAIT * 3,
            "only {} streams ran",
            seen.len()
        );
        app.gql(
            Some(&app_key),
            "{ signInRequirement(userId: \"warm\") { required } }",
            json!({}),
        )
        .await
        .data();
        for socket in &mut sockets {
            while let Some(m) = next_message(socket, Duration::from_millis(100)).await {
                assert_eq!(m["type"], "next", "{m}");
                seen.insert(m["id"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    let mut one_more = connect_with_key(&app, &auditor).await;
    subscribe(
        &mut one_more,
        "extra",
        "subscription { auditEvents { eventType } }",
    )
    .await;
    let answer = result_of(&mut one_more, "extra").await;
    assert_eq!(code(&answer), "RATE_LIMITED", "{answer}");
    // Closing a stream gives its place back.
    drop(sockets.pop());
    let started = Instant::now();
    'retry: loop {
        assert!(started.elapsed() < WAIT, "the place never came back");
        let id = format!("again-{}", started.elapsed().as_millis());
        subscribe(
            &mut one_more,
            &id,
            "subscription { auditEvents { eventType } }",
        )
        .await;
        loop {
            match next_message(&mut one_more, Duration::from_millis(300)).await {
                // Nothing refused it: the stream runs.
                None => break 'retry,
                Some(m) if m["id"] == id.as_str() => continue 'retry,
                Some(_) => {}
            }
        }
    }
}

#[tokio::test]
async fn a_tenant_holds_a_bounded_number_of_sockets_and_an_address_of_waiting_ones() {
    let app = spawn_app_with(TestOptions {
        websocket: WsLimits {
            max_sockets_per_tenant: 3,
            max_pending_per_address: 4,
            ..WsLimits::default()
        },
        ..TestOptions::default()
    })
    .await;
    let (_, admin) = app.create_tenant("Many sockets").await;
    let (_, first) = app.issue_key(&admin, "APP").await;
    let (_, second) = app.issue_key(&admin, "APP").await;
    let (_, neighbour) = app.create_tenant("Neighbour").await;
    // Three sockets of the tenant, over two keys; a fourth is refused whichever key it uses.
    let _held = [
        connect_with_key(&app, &first).await,
        connect_with_key(&app, &first).await,
        connect_with_key(&app, &second).await,
    ];
    let mut fourth = connect(&app, json!({ "Authorization": format!("Bearer {second}") })).await;
    assert_eq!(close_code(&mut fourth, WAIT).await, Some(4429));
    // Another tenant is not affected.
    let _neighbours = connect_with_key(&app, &neighbour).await;

    // Sockets that have not given a key yet: four from one address, then 429 at the upgrade.
    let mut waiting = Vec::new();
    for _ in 0..4 {
        waiting.push(
            open_from(&app, "127.0.0.12")
                .await
                .unwrap_or_else(|(s, body)| panic!("refused with {s}: {body}")),
        );
    }
    let (status, body) = open_from(&app, "127.0.0.12").await.err().unwrap();
    assert_eq!(status, 429);
    assert!(body.contains("waiting for connection_init"), "{body}");
    assert!(open_from(&app, "127.0.0.13").await.is_ok());
    // A backend behind the same address, with a key this instance knows, still gets in.
    assert!(
        open_from_with(&app, "127.0.0.12", Some(&neighbour))
            .await
            .is_ok(),
        "sockets that never give a key locked a known key out"
    );
}

//! Bounds on what a key, a tenant or an address holds: sockets, operations, live audit streams,
//! sockets waiting for a key, and idle sockets.

use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use twofold_graphql::WsLimits;
use twofold_tests::{spawn_app, spawn_app_with, TestOptions};

use crate::ws_support::{
    close_code, code, connect, connect_with_key, next_message, open, open_forwarded, open_from,
    open_from_authorized, open_from_with, result_of, send, subscribe, WAIT,
};

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

/// Sockets waiting for their key are bounded per /48 too: one /48 holds 65,536 /64s.
#[tokio::test]
async fn sockets_waiting_from_one_48_are_bounded_across_its_64s() {
    let mut options = TestOptions {
        websocket: WsLimits {
            max_pending_per_address: 2,
            init_timeout: Duration::from_secs(3600),
            ..WsLimits::default()
        },
        ..TestOptions::default()
    };
    options.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let app = spawn_app_with(options).await;
    let per_site = 2 * twofold_graphql::websocket::PENDING_SITE_FACTOR;
    let mut waiting = Vec::new();
    for n in 0..per_site {
        let client = format!("2001:db8:5:{n:x}::1");
        let socket = open_forwarded(&app, &client).await;
        waiting.push(socket.unwrap_or_else(|(s, body)| panic!("{client}: {s} {body}")));
    }
    let fresh_64 = format!("2001:db8:5:{:x}::1", per_site);
    let (status, body) = open_forwarded(&app, &fresh_64).await.err().unwrap();
    assert_eq!(status, 429);
    assert!(body.contains("waiting for connection_init"), "{body}");
    assert!(open_forwarded(&app, "2001:db8:6::1").await.is_ok());
}

/// An address that spent its budget of requests without a valid key is refused at the upgrade
/// when its `Authorization` header is malformed, as when it names an unknown key, instead of
/// spending again (what kept a refused /64 charging its /48).
#[tokio::test]
async fn a_refused_address_s_malformed_upgrade_is_refused_before_it_spends() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for _ in 0..20 * twofold_graphql::anonymous::BURST {
        let status = match open_from_authorized(&app, "127.0.0.31", "Basic eA==").await {
            Ok(_) => 101,
            Err((status, _)) => status,
        };
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(
        statuses.first(),
        Some(&401),
        "a malformed header is refused"
    );
    assert_eq!(
        statuses.last(),
        Some(&429),
        "never refused as a spent address: {} answers",
        statuses.len()
    );
    assert!(open_from(&app, "127.0.0.32").await.is_ok());
}

/// An operation's payload is read as the HTTP body is: a key given twice is refused, not the
/// last one run (a proxy or filter in front may read the first); in the envelope, such a
/// message is outside the protocol.
#[tokio::test]
async fn a_key_given_twice_is_refused_as_over_http() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut socket = connect_with_key(&app, &admin).await;
    // Written out: serde_json's `Value` cannot hold a repeated key.
    let twice = r#"{"id": "1", "type": "subscribe",
        "payload": {"query": "{ __typename }", "query": "{ tenant { name } }"}}"#;
    socket.send(Message::text(twice)).await.unwrap();
    let answer = result_of(&mut socket, "1").await;
    assert_eq!(code(&answer), "INVALID_INPUT", "{answer}");
    assert!(
        answer.to_string().contains("wrong JSON shape"),
        "says why: {answer}"
    );

    // The socket goes on.
    subscribe(&mut socket, "2", "{ tenant { name } }").await;
    let answer = result_of(&mut socket, "2").await;
    assert_eq!(answer["data"]["tenant"]["name"], "Acme", "{answer}");

    let twice = r#"{"id": "3", "type": "subscribe", "type": "complete",
        "payload": {"query": "{ __typename }"}}"#;
    socket.send(Message::text(twice)).await.unwrap();
    assert_eq!(close_code(&mut socket, WAIT).await, Some(4400));
}

/// The `connection_init` payload carries the key: a name given twice is refused, as a gateway
/// in front (or the HTTP path's first `Authorization` header) would read another key than the
/// last (attacker review of the WebSocket parsing, L4).
#[tokio::test]
async fn a_key_named_twice_at_connection_init_closes_the_socket() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut socket = open(&app).await;
    let twice = format!(
        r#"{{"type": "connection_init", "payload": {{"apiKey": "tfk_decoy_x", "apiKey": "{admin}"}}}}"#
    );
    socket.send(Message::text(twice)).await.unwrap();
    assert_eq!(close_code(&mut socket, WAIT).await, Some(4400));

    let mut socket = open(&app).await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "apiKey": admin } }),
    )
    .await;
    let ack = next_message(&mut socket, WAIT).await.unwrap();
    assert_eq!(ack["type"], "connection_ack", "{ack}");
}

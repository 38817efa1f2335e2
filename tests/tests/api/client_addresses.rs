//! Whose budget a request spends: the address of the client, read from `X-Forwarded-For` only
//! when the peer is a proxy the operator trusts, and the same budget for WebSocket
//! initialisations as for HTTP requests without a valid key.

use serde_json::{json, Value};
use twofold_graphql::anonymous::BURST;
use twofold_tests::{spawn_app, spawn_app_with, TestApp, TestOptions};

use crate::ws_support::{close_code, open_from, send, WAIT};

fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(local.parse().unwrap()))
        .build()
        .unwrap()
}

/// `{ __typename }` without a key, as forwarded for `forwarded` (when given).
async fn anonymous_post(
    client: &reqwest::Client,
    app: &TestApp,
    forwarded: Option<&str>,
) -> (u16, Value) {
    let mut request = client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": "{ __typename }" }));
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Whether anonymous requests forwarded for `forwarded(i)`, sent side by side (so the budget
/// drains faster than it refills however slow the machine), are refused within ten rounds.
async fn floods(
    client: &reqwest::Client,
    app: &TestApp,
    forwarded: impl Fn(u32) -> String,
) -> bool {
    for _ in 0..10 {
        let round: Vec<String> = (0..BURST).map(&forwarded).collect();
        let answers = futures::future::join_all(
            round
                .iter()
                .map(|f| anonymous_post(client, app, Some(f.as_str()))),
        )
        .await;
        if answers.iter().any(|(status, _)| *status == 429) {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget_and_is_recorded() {
    let mut options = TestOptions::default();
    options.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let app = spawn_app_with(options).await;
    let proxy = client_from("127.0.0.1");
    // The flooding client forged an entry of its own; the proxy appended what it saw.
    let flooder = "203.0.113.66, 198.51.100.1";
    assert!(
        floods(&proxy, &app, |_| flooder.to_owned()).await,
        "the forwarded flooder was never refused"
    );
    // Another client behind the same proxy is not: the budget is the client's, not the proxy's.
    let (status, body) = anonymous_post(&proxy, &app, Some("198.51.100.2")).await;
    assert_eq!(status, 200, "{body}");
    // The forged entry has a budget of its own too: it was never counted.
    let (status, body) = anonymous_post(&proxy, &app, Some("203.0.113.66")).await;
    assert_eq!(status, 200, "{body}");

    // What a forwarded client does is recorded with its address, not the proxy's.
    let created = proxy
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&app.operator_token)
        .header("x-forwarded-for", "203.0.113.66, 198.51.100.3")
        .json(&json!({ "query": "mutation { createTenant(name: \"Proxied\") { tenant { id } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);
    let ip: String = sqlx::query_scalar(
        "SELECT metadata->>'ip' FROM events WHERE event_type = 'TenantRegistered' LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(ip, "198.51.100.3");
}

#[tokio::test]
async fn an_untrusted_peer_cannot_escape_its_budget_by_forging_x_forwarded_for() {
    let app = spawn_app().await;
    let client = client_from("127.0.0.7");
    assert!(
        floods(&client, &app, |i| format!("198.51.100.{}", i % 250)).await,
        "a forged X-Forwarded-For escaped the budget"
    );
}

/// One socket from `address` that presents a guessed key: `None` when it was refused the
/// usual way (4403), or the status or close code that refused it otherwise.
async fn refused_init(app: &TestApp, address: &str) -> Option<u64> {
    let mut socket = match open_from(app, address).await {
        Ok(socket) => socket,
        Err((status, _)) => return Some(u64::from(status)),
    };
    let bad = json!({ "Authorization": "Bearer tfk_aaaaaaaaaaaaaaaa_guessed" });
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": bad }),
    )
    .await;
    match close_code(&mut socket, WAIT).await {
        Some(4403) => None,
        other => Some(other.unwrap_or_default()),
    }
}

#[tokio::test]
async fn refused_websocket_initialisations_spend_the_address_budget() {
    // Sockets waiting for their key have a cap per address of their own; lifted here, so
    // that what refuses the flood is the budget.
    let app = spawn_app_with(TestOptions {
        websocket: twofold_graphql::WsLimits {
            max_pending_per_address: 1_000,
            ..twofold_graphql::WsLimits::default()
        },
        ..TestOptions::default()
    })
    .await;
    let (_, admin) = app.create_tenant("Sockets").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    // This instance now holds `key` as valid.
    app.gql(Some(&key), "{ tenant { id } }", json!({}))
        .await
        .data();

    let flooder = "127.0.0.8";
    // Attempts run side by side, so the budget drains faster than it refills however slow
    // the machine.
    let mut refused = None;
    for _ in 0..10 {
        let attempts = (0..BURST).map(|_| refused_init(&app, flooder));
        refused = futures::future::join_all(attempts)
            .await
            .into_iter()
            .flatten()
            .next();
        if refused.is_some() {
            break;
        }
    }
    let refused = refused.expect("the address was never refused");
    assert!(refused == 429 || refused == 4429, "refused with {refused}");

    // The flooding address still gets in with a key this instance holds as valid, and
    // another address is not affected at all.
    for address in [flooder, "127.0.0.9"] {
        let mut socket = open_from(&app, address)
            .await
            .unwrap_or_else(|(s, body)| panic!("{address} refused with {s}: {body}"));
        let init = json!({ "Authorization": format!("Bearer {key}") });
        send(
            &mut socket,
            json!({ "type": "connection_init", "payload": init }),
        )
        .await;
        let ack = crate::ws_support::next_message(&mut socket, WAIT).await;
        assert_eq!(
            ack.as_ref().map(|m| m["type"].clone()),
            Some(json!("connection_ack")),
            "{address}: {ack:?}"
        );
    }
}

//! Per-key request rates: a token bucket per API key, set per tenant by an ADMIN within the
//! operator's bounds, answered with `RATE_LIMITED` and `retryAfterSeconds`.

use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use twofold_tests::{spawn_app, Answer, TestApp};

const SET_RATE: &str = "mutation($r: Int!) { setPolicy(input: { requestsPerSecondPerKey: $r }) { requestsPerSecondPerKey } }";
const PING: &str = "{ tenant { id } }";

fn limited(a: &Answer) -> bool {
    a.body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
}

/// Sends `n` requests as fast as possible; returns the refused ones.
async fn burst(app: &TestApp, key: &str, n: usize) -> Vec<Answer> {
    let mut refused = Vec::new();
    for _ in 0..n {
        let a = app.gql(Some(key), PING, json!({})).await;
        if limited(&a) {
            refused.push(a);
        } else {
            a.data();
        }
    }
    refused
}

#[tokio::test]
async fn a_key_over_its_tenants_rate_is_refused_with_retry_after_and_others_are_not() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (_, other_key) = app.issue_key(&admin, "APP").await;
    let (_, neighbour) = app.create_tenant("Neighbour").await;
    // The default rate takes a quick burst in its stride.
    assert!(burst(&app, &app_key, 20).await.is_empty());

    let set = app.gql(Some(&admin), SET_RATE, json!({ "r": 1 })).await;
    assert_eq!(set.data()["setPolicy"]["requestsPerSecondPerKey"], 1);
    // One a second, bursts of two: twelve requests in a row cannot all pass.
    let refused = burst(&app, &app_key, 12).await;
    assert!(refused.len() >= 8, "{} refused", refused.len());
    let error = &refused[0].body["errors"][0];
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("too many requests"));
    let wait = error["extensions"]["retryAfterSeconds"].as_i64().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(
        refused[0].body["data"],
        serde_json::Value::Null,
        "nothing ran"
    );

    // The bucket is charged before the document is read: a key over its rate gets no parsing
    // done, so a document that parsing would refuse is answered RATE_LIMITED too.
    let nested = format!("{{ __typename(x: {}1{}) }}", "[".repeat(65), "]".repeat(65));
    let a = app.gql(Some(&app_key), &nested, json!({})).await;
    assert_eq!(a.error_code(), "RATE_LIMITED", "{}", a.body);

    // Another key of the tenant has its own bucket; another tenant is not affected at all.
    assert!(burst(&app, &other_key, 2).await.is_empty());
    assert!(burst(&app, &neighbour, 20).await.is_empty());

    // After the wait, the key is served again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.gql(Some(&app_key), PING, json!({})).await.data();

    // 0 returns to the service's default.
    let reset = app.gql(Some(&admin), SET_RATE, json!({ "r": 0 })).await;
    assert_eq!(
        reset.data()["setPolicy"]["requestsPerSecondPerKey"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn an_admin_sets_the_rate_only_within_the_operators_bounds() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    for rate in [10_001, 1_000_000, -1] {
        let a = app.gql(Some(&admin), SET_RATE, json!({ "r": rate })).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{rate}");
    }
    let a = app
        .gql(Some(&admin), SET_RATE, json!({ "r": 10_001 }))
        .await;
    assert!(
        a.error_message().contains("1 to 10000"),
        "{}",
        a.error_message()
    );
    let p = app
        .gql(
            Some(&admin),
            "{ tenant { policy { requestsPerSecondPerKey } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        p.data()["tenant"]["policy"]["requestsPerSecondPerKey"],
        serde_json::Value::Null,
        "nothing changed"
    );
}

#[tokio::test]
async fn the_rate_holds_over_a_websocket_too() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    app.gql(Some(&admin), SET_RATE, json!({ "r": 1 }))
        .await
        .data();
    let url = format!("{}/graphql", app.address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init",
                       "payload": { "Authorization": format!("Bearer {app_key}") } });
    socket.send(Message::text(init.to_string())).await.unwrap();
    for i in 0..8 {
        let op = json!({ "id": format!("q{i}"), "type": "subscribe",
                         "payload": { "query": PING } });
        socket.send(Message::text(op.to_string())).await.unwrap();
    }
    // Read until every operation has answered (its `next` or `error`).
    let mut answered = std::collections::BTreeMap::new();
    while answered.len() < 8 {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an answer within 10 s")
            .expect("the socket stays open")
            .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        if v["type"] == "next" || v["type"] == "error" {
            answered.insert(v["id"].as_str().unwrap().to_owned(), text.to_string());
        }
    }
    let refused = answered
        .values()
        .filter(|t| t.contains("RATE_LIMITED") && t.contains("retryAfterSeconds"))
        .count();
    assert!(refused >= 5, "{answered:#?}");
}

/// The lock of a tenant's email budget, held by the test: each email code of the tenant then
/// waits for its reservation (queued on the instance behind a statement that waits for the
/// lock), holding a share of the tenant's operations, as slow statements under load would.
pub(crate) struct EmailBudgetLock {
    connection: sqlx::pool::PoolConnection<sqlx::Postgres>,
    key: i32,
}

impl EmailBudgetLock {
    pub(crate) async fn hold(app: &TestApp, tenant: &str) -> Self {
        use twofold_infra::send_limiter::{lock_key, LOCK_CLASS};
        let mut connection = app.db.acquire().await.unwrap();
        let key = lock_key(&format!("tenant/{tenant}/email"));
        sqlx::query("SELECT pg_advisory_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(key)
            .execute(&mut *connection)
            .await
            .unwrap();
        Self { connection, key }
    }

    /// Waits until `n` sends wait on `app` (the tenant's share is then in use), their first
    /// statement for this lock.
    pub(crate) async fn wait_for_waiters(&self, app: &TestApp, n: usize) {
        wait_for_sends(&[app], self.key, n).await;
    }

    pub(crate) async fn release(mut self) {
        sqlx::query("SELECT pg_advisory_unlock($1, $2)")
            .bind(twofold_infra::send_limiter::LOCK_CLASS)
            .bind(self.key)
            .execute(&mut *self.connection)
            .await
            .unwrap();
    }
}

/// Waits until `n` sends wait for their reservation on `instances`, and a statement of each
/// instance for the budget lock `key`.
pub(crate) async fn wait_for_sends(instances: &[&TestApp], key: i32, n: usize) {
    let app = instances[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let statements: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND classid = $1::oid AND objid = $2::oid",
        )
        .bind(twofold_infra::send_limiter::LOCK_CLASS)
        .bind(key)
        .fetch_one(&app.db)
        .await
        .unwrap();
        let sends: usize = instances
            .iter()
            .map(|i| i.wiring.send_limiter.waiting())
            .sum();
        if sends >= n && statements >= i64::try_from(instances.len()).unwrap() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sends} of {n} sends wait, {statements} statements"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` email codes of `key`'s tenant, sent at once.
pub(crate) async fn email_codes(app: &TestApp, key: &str, prefix: &str, n: usize) -> Vec<Answer> {
    let add_email = "mutation($u: ID!, $e: String!) { addEmail(userId: $u, email: $e) { id } }";
    join_all((0..n).map(|i| {
        app.gql(
            Some(key),
            add_email,
            json!({ "u": format!("{prefix}{i}"), "e": format!("{prefix}{i}@example.com") }),
        )
    }))
    .await
}

#[tokio::test]
async fn one_tenants_burst_does_not_take_the_pool_from_another_tenant() {
    let app = spawn_app().await;
    let (bursty, bursty_admin) = app.create_tenant("Bursty").await;
    let (_, bursty_key) = app.issue_key(&bursty_admin, "APP").await;
    let (_, quiet_admin) = app.create_tenant("Quiet").await;
    let (_, quiet_key) = app.issue_key(&quiet_admin, "APP").await;
    let lock = EmailBudgetLock::hold(&app, &bursty).await;
    let burst = email_codes(&app, &bursty_key, "b", 20);
    let quiet = async {
        // Once the burst fills Bursty's share, Quiet signs a user in: it needs connections too.
        lock.wait_for_waiters(&app, 6).await;
        let started = Instant::now();
        let answer = app
            .gql(
                Some(&quiet_key),
                "{ signInRequirement(userId: \"q\") { required } }",
                json!({}),
            )
            .await;
        let took = started.elapsed();
        // Longer than the pool's acquire timeout (5 s): without a share per tenant, Quiet's
        // request would have failed waiting for a connection.
        tokio::time::sleep(Duration::from_secs(6).saturating_sub(took)).await;
        lock.release().await;
        (answer, took)
    };
    let (burst, (answer, took)) = tokio::join!(burst, quiet);
    answer.data();
    assert!(took < Duration::from_secs(2), "Quiet waited {took:?}");
    // Bursty's own requests either ran once the lock was released or were told to slow down.
    for a in &burst {
        if a.body.get("errors").is_some() {
            assert_eq!(a.error_code(), "RATE_LIMITED", "{}", a.body);
        }
    }
    assert!(burst.iter().any(|a| a.body.get("errors").is_none()));
}

#[tokio::test]
async fn a_key_revoked_while_its_operation_waits_for_the_tenant_s_share_runs_nothing() {
    let a = spawn_app().await;
    let b = twofold_tests::spawn_instance_of(&a, twofold_tests::TestOptions::default()).await;
    let (tenant, first_admin) = a.create_tenant("Acme").await;
    let (stolen_id, stolen) = a.issue_key(&first_admin, "ADMIN").await;
    let (_, app_key) = a.issue_key(&first_admin, "APP").await;
    // Fill the tenant's share on instance A with sends that wait on the email budget's lock.
    let lock = EmailBudgetLock::hold(&a, &tenant).await;
    let holders = email_codes(&a, &app_key, "h", 6);
    let lock_key = lock.key;
    let attack = async {
        wait_for_sends(&[&a], lock_key, 6).await;
        // Authenticated now, then queued behind the full share.
        a.gql(
            Some(&stolen),
            "mutation { issueApiKey(role: ADMIN, label: \"mine\") { secret } }",
            json!({}),
        )
        .await
    };
    let defence = async {
        wait_for_sends(&[&a], lock_key, 6).await;
        // The victim revokes the stolen key through another instance, whose share is free.
        b.gql(
            Some(&first_admin),
            "mutation($k: ID!) { revokeApiKey(keyId: $k) { revokedAt } }",
            json!({ "k": stolen_id }),
        )
        .await
        .data();
        let deadline = Instant::now() + Duration::from_secs(2);
        while a.gql(Some(&stolen), PING, json!({})).await.status != 401 {
            assert!(
                Instant::now() < deadline,
                "the revocation did not reach instance A"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lock.release().await;
    };
    let (_, attacked, ()) = tokio::join!(holders, attack, defence);
    assert_eq!(
        attacked.error_code(),
        "UNAUTHENTICATED",
        "{}",
        attacked.body
    );
    assert_eq!(
        a.count_events(&tenant, "ApiKeyIssued").await,
        3,
        "no key was minted"
    );
}

/// A client whose requests come from `local` (an address of the loopback range).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(local.parse().unwrap()))
        .build()
        .unwrap()
}

async fn post_from(client: &reqwest::Client, app: &TestApp, key: Option<&str>) -> (u16, Value) {
    let mut request = client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": PING }));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn an_address_flooding_without_a_valid_key_gets_no_look_up_but_known_keys_are_served() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    let (_, unseen) = app.issue_key(&admin, "APP").await;
    // This instance has seen `key` (it holds it in its cache), not `unseen`.
    let (status, _) = post_from(&client_from("127.0.0.5"), &app, Some(&key)).await;
    assert_eq!(status, 200);
    for (address, credential) in [
        ("127.0.0.2", None),
        ("127.0.0.3", Some("tfk_aaaaaaaaaaaaaaaa_guessed")),
    ] {
        let client = client_from(address);
        // Requests go side by side, so the budget drains faster than it refills however slow
        // the machine.
        let mut refused = None;
        for _ in 0..10 {
            let round = (0..twofold_graphql::anonymous::BURST)
                .map(|_| post_from(&client, &app, credential));
            refused = join_all(round)
                .await
                .into_iter()
                .find(|(status, _)| *status == 429)
                .map(|(_, body)| body);
            if refused.is_some() {
                break;
            }
        }
        let body = refused.unwrap_or_else(|| panic!("{address} was never refused"));
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
            "{body}"
        );
        // While refused, the address gets nothing looked up: a key this instance does not
        // hold waits too. A key it holds as valid is served (behind a proxy, every backend
        // shares the flooder's address).
        let (status, _) = post_from(&client, &app, Some(&unseen)).await;
        assert_eq!(status, 429);
        let (status, body) = post_from(&client, &app, Some(&key)).await;
        assert_eq!(status, 200, "{body}");
    }
    // Another address, with its valid key, is served all along.
    let (status, body) = post_from(&client_from("127.0.0.4"), &app, Some(&key)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_key_found_valid_is_served_from_a_refused_address_long_after_the_cache_forgot_it() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (key_id, key) = app.issue_key(&admin, "APP").await;
    let client = client_from("127.0.0.10");
    let (status, _) = post_from(&client, &app, Some(&key)).await;
    assert_eq!(status, 200);
    // A flood keeps the address refused for longer than the directory's cache keeps the key.
    let until = Instant::now() + twofold_infra::directory_cache::TTL + Duration::from_millis(1_500);
    let mut refused = 0;
    while Instant::now() < until {
        let round = (0..20).map(|_| post_from(&client, &app, None));
        refused += join_all(round)
            .await
            .into_iter()
            .filter(|(status, _)| *status == 429)
            .count();
    }
    assert!(refused > 0, "the flood was never refused");
    // Refused right now (a refusal lasts at least a second), and the key comes next.
    while post_from(&client, &app, None).await.0 != 429 {}
    let (status, body) = post_from(&client, &app, Some(&key)).await;
    assert_eq!(status, 200, "{body}");
    // Known is not trusted: the key is still looked up, so its revocation holds.
    app.gql(
        Some(&admin),
        "mutation($k: ID!) { revokeApiKey(keyId: $k) { id } }",
        json!({ "k": key_id }),
    )
    .await
    .data();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = post_from(&client, &app, Some(&key)).await;
        if status != 200 {
            assert_eq!(status, 401, "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "the revoked key is still served");
    }
}

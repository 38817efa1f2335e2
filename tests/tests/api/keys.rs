//! Tenants and API keys: creation, listing, revocation.

use serde_json::json;
use twofold_tests::spawn_app;

const TENANT: &str = "{ tenant { id name createdAt apiKeys { id role label revokedAt } } }";

#[tokio::test]
async fn operator_creates_a_tenant_whose_admin_key_works_at_once() {
    let app = spawn_app().await;
    let a = app
        .gql(
            Some(&app.operator_token),
            "mutation { createTenant(name: \"  Acme Inc  \") { tenant { id name policy { enforceTwoFactor codeDigits } } adminKey { key { id role label revokedAt } secret } } }",
            json!({}),
        )
        .await;
    let created = &a.data()["createTenant"];
    assert_eq!(created["tenant"]["name"], "Acme Inc");
    assert_eq!(created["tenant"]["policy"]["enforceTwoFactor"], false);
    assert_eq!(created["tenant"]["policy"]["codeDigits"], 6);
    assert_eq!(created["adminKey"]["key"]["role"], "ADMIN");
    let secret = created["adminKey"]["secret"].as_str().unwrap();
    assert!(secret.starts_with("tfk_"));
    assert!(secret.len() >= 60, "a long random secret");

    let t = app.gql(Some(secret), TENANT, json!({})).await;
    let tenant = &t.data()["tenant"];
    assert_eq!(tenant["id"], created["tenant"]["id"]);
    assert_eq!(tenant["apiKeys"].as_array().unwrap().len(), 1);
    assert_eq!(tenant["apiKeys"][0]["id"], created["adminKey"]["key"]["id"]);
}

#[tokio::test]
async fn key_secrets_are_stored_only_as_keyed_hashes() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    for secret in [&admin, &app_key] {
        let secret_part = secret.rsplit('_').next().unwrap();
        let found: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM events WHERE payload::text LIKE $1 OR metadata::text LIKE $1) \
                  + (SELECT count(*) FROM api_keys WHERE key_hash LIKE $1 OR label LIKE $1)",
        )
        .bind(format!("%{secret_part}%"))
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(found, 0, "a key secret was stored in clear");
    }
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE tenant_id = $1")
            .bind(&tenant)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(hashes.len(), 2);
    assert!(hashes.iter().all(|h| h.len() == 64));
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_its_next_request() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (key_id, app_key) = app.issue_key(&admin, "APP").await;
    assert!(app
        .gql(Some(&app_key), "{ tenant { id } }", json!({}))
        .await
        .body["errors"]
        .is_null());

    let a = app
        .gql(
            Some(&admin),
            "mutation($k: ID!) { revokeApiKey(keyId: $k) { id revokedAt } }",
            json!({ "k": key_id }),
        )
        .await;
    assert!(a.data()["revokeApiKey"]["revokedAt"].is_string());

    let refused = app
        .gql(Some(&app_key), "{ tenant { id } }", json!({}))
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.error_code(), "UNAUTHENTICATED");

    // Revoking again is a harmless retry: same answer, no second event.
    let again = app
        .gql(
            Some(&admin),
            "mutation($k: ID!) { revokeApiKey(keyId: $k) { id revokedAt } }",
            json!({ "k": key_id }),
        )
        .await;
    assert_eq!(
        again.data()["revokeApiKey"]["revokedAt"],
        a.data()["revokeApiKey"]["revokedAt"]
    );
    assert_eq!(app.count_events(&tenant, "ApiKeyRevoked").await, 1);

    let listed = app.gql(Some(&admin), TENANT, json!({})).await;
    let keys = listed.data()["tenant"]["apiKeys"]
        .as_array()
        .unwrap()
        .clone();
    let revoked = keys.iter().find(|k| k["id"] == key_id.as_str()).unwrap();
    assert!(revoked["revokedAt"].is_string());
}

#[tokio::test]
async fn the_last_admin_key_cannot_be_revoked_but_one_of_two_can() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let listed = app.gql(Some(&admin), TENANT, json!({})).await;
    let admin_id = listed.data()["tenant"]["apiKeys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = "mutation($k: ID!) { revokeApiKey(keyId: $k) { id revokedAt } }";
    let a = app
        .gql(Some(&admin), revoke, json!({ "k": admin_id }))
        .await;
    assert_eq!(a.error_code(), "CONFLICT");
    assert!(a.error_message().contains("last active ADMIN key"));
    assert_eq!(app.count_events(&tenant, "ApiKeyRevoked").await, 0);

    let (_, second_admin) = app.issue_key(&admin, "ADMIN").await;
    let a = app
        .gql(Some(&second_admin), revoke, json!({ "k": admin_id }))
        .await;
    assert!(a.data()["revokeApiKey"]["revokedAt"].is_string());
    let refused = app.gql(Some(&admin), "{ tenant { id } }", json!({})).await;
    assert_eq!(refused.error_code(), "UNAUTHENTICATED");
}

#[tokio::test]
async fn revoking_an_unknown_key_is_not_found() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    for k in ["nosuchkey123", "x"] {
        let a = app
            .gql(
                Some(&admin),
                "mutation($k: ID!) { revokeApiKey(keyId: $k) { id } }",
                json!({ "k": k }),
            )
            .await;
        assert_eq!(a.error_code(), "NOT_FOUND");
    }
}

#[tokio::test]
async fn tenant_names_are_validated() {
    let app = spawn_app().await;
    for (name, expect) in [
        ("   ", "must not be empty"),
        (&*"n".repeat(101), "at most 100"),
    ] {
        let a = app
            .gql(
                Some(&app.operator_token),
                "mutation($n: String!) { createTenant(name: $n) { tenant { id } } }",
                json!({ "n": name }),
            )
            .await;
        assert_eq!(a.error_code(), "INVALID_INPUT");
        assert!(a.error_message().contains(expect), "{}", a.error_message());
    }
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(tenants, 0, "refused input changed nothing");
}

/// Polls `check` until it holds, for at most `limit`; returns how long it took.
async fn within(
    limit: std::time::Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_key_revoked_on_one_instance_is_refused_by_another_that_cached_it() {
    let a = spawn_app().await;
    let b = twofold_tests::spawn_instance_of(&a, twofold_tests::TestOptions::default()).await;
    let (_, admin) = a.create_tenant("Acme").await;
    let (key_id, app_key) = a.issue_key(&admin, "APP").await;
    // B has authenticated the key (and read the policy), so it holds both in its cache.
    let requirement = "{ signInRequirement(userId: \"u\") { reason } }";
    assert_eq!(
        b.gql(Some(&app_key), requirement, json!({})).await.data()["signInRequirement"]["reason"],
        "NOT_ENROLLED"
    );

    // A policy change made on A reaches B's decisions...
    a.gql(
        Some(&admin),
        "mutation { setPolicy(input: { enforceTwoFactor: true, enrollmentGracePeriodDays: 0 }) { enforceTwoFactor } }",
        json!({}),
    )
    .await
    .data();
    let took = within(std::time::Duration::from_secs(20), async || {
        b.gql(Some(&app_key), requirement, json!({})).await.data()["signInRequirement"]["reason"]
            == "ENROLLMENT_REQUIRED"
    })
    .await;
    // ... through the change notification, well before the cache's time limit would.
    assert!(took < twofold_infra::directory_cache::TTL, "took {took:?}");

    // And so does a revocation.
    a.gql(
        Some(&admin),
        "mutation($k: ID!) { revokeApiKey(keyId: $k) { id } }",
        json!({ "k": key_id }),
    )
    .await
    .data();
    let took = within(std::time::Duration::from_secs(20), async || {
        b.gql(Some(&app_key), "{ tenant { id } }", json!({}))
            .await
            .status
            == 401
    })
    .await;
    assert!(took < twofold_infra::directory_cache::TTL, "took {took:?}");
}

#[tokio::test]
async fn a_revoked_key_is_refused_everywhere_within_a_second_while_the_projections_are_stalled() {
    let a = spawn_app().await;
    let b = twofold_tests::spawn_instance_of(&a, twofold_tests::TestOptions::default()).await;
    let (_, admin) = a.create_tenant("Acme").await;
    let (key_id, app_key) = a.issue_key(&admin, "APP").await;
    for instance in [&a, &b] {
        let ok = instance
            .gql(Some(&app_key), "{ tenant { id } }", json!({}))
            .await;
        assert!(ok.body["errors"].is_null(), "the key works before");
    }

    // Stall every projection: the processor applies a batch in one transaction, and its write
    // to `api_keys` now waits for this lock until the transaction below ends.
    let mut stall = app_db_transaction(&a).await;
    sqlx::query("LOCK TABLE api_keys IN EXCLUSIVE MODE")
        .execute(&mut *stall)
        .await
        .unwrap();

    let revoking = {
        let admin = admin.clone();
        let key_id = key_id.clone();
        let address = a.address.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{address}/graphql"))
                .bearer_auth(admin)
                .json(&json!({
                    "query": "mutation($k: ID!) { revokeApiKey(keyId: $k) { id revokedAt } }",
                    "variables": { "k": key_id },
                }))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        })
    };
    for instance in [&a, &b] {
        within(std::time::Duration::from_secs(1), async || {
            instance
                .gql(Some(&app_key), "{ tenant { id } }", json!({}))
                .await
                .status
                == 401
        })
        .await;
    }

    stall.rollback().await.unwrap();
    let answer = revoking.await.unwrap();
    assert!(
        answer["data"]["revokeApiKey"]["revokedAt"].is_string(),
        "{answer}"
    );
    // Once the projection catches up, the key list agrees.
    let listed = a.gql(Some(&admin), TENANT, json!({})).await;
    let keys = listed.data()["tenant"]["apiKeys"]
        .as_array()
        .unwrap()
        .clone();
    let revoked = keys.iter().find(|k| k["id"] == key_id.as_str()).unwrap();
    assert_eq!(
        revoked["revokedAt"],
        answer["data"]["revokeApiKey"]["revokedAt"]
    );
}

/// A transaction on the app's database, held open by the caller.
async fn app_db_transaction(
    app: &twofold_tests::TestApp,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    app.db.begin().await.unwrap()
}

#[tokio::test]
async fn a_key_revoked_while_its_request_body_is_still_arriving_runs_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = spawn_app().await;
    let b = twofold_tests::spawn_instance_of(&a, twofold_tests::TestOptions::default()).await;
    let (tenant, first_admin) = a.create_tenant("Acme").await;
    let (stolen_id, stolen) = a.issue_key(&first_admin, "ADMIN").await;
    let body =
        json!({ "query": "mutation { issueApiKey(role: ADMIN, label: \"mine\") { secret } }" })
            .to_string();
    // The header now (with the stolen key), the body later.
    let mut stream = tokio::net::TcpStream::connect(a.address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(
            format!(
                "POST /graphql HTTP/1.1\r\nHost: twofold\r\nAuthorization: Bearer {stolen}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    b.gql(
        Some(&first_admin),
        "mutation($k: ID!) { revokeApiKey(keyId: $k) { revokedAt } }",
        json!({ "k": stolen_id }),
    )
    .await
    .data();
    within(std::time::Duration::from_secs(2), async || {
        a.gql(Some(&stolen), "{ tenant { id } }", json!({}))
            .await
            .status
            == 401
    })
    .await;
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert_eq!(
        a.count_events(&tenant, "ApiKeyIssued").await,
        2,
        "no key was minted"
    );
}

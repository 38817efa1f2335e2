//! Parallel commands on one aggregate: each lands or fails cleanly, none is lost.

use futures::future::join_all;
use serde_json::json;
use twofold_tests::spawn_app;

#[tokio::test]
async fn parallel_key_issues_on_one_tenant_all_land() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    const N: usize = 16;
    let answers = join_all((0..N).map(|i| {
        let app = &app;
        let admin = &admin;
        async move {
            app.gql(
                Some(admin),
                "mutation($l: String!) { issueApiKey(role: APP, label: $l) { key { id } secret } }",
                json!({ "l": format!("parallel {i}") }),
            )
            .await
        }
    }))
    .await;

    let mut issued = Vec::new();
    for a in &answers {
        if a.body["errors"].is_null() {
            issued.push(
                a.body["data"]["issueApiKey"]["key"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        } else {
            // The only acceptable failure is a clean conflict after bounded retries.
            assert_eq!(a.error_code(), "CONFLICT", "{}", a.body);
        }
    }
    assert_eq!(issued.len(), N, "with retries every command should land");

    // Every success is in the stream exactly once, with gap-free sequence numbers.
    let sequences: Vec<i64> =
        sqlx::query_scalar("SELECT sequence FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(format!("{tenant}/tenant"))
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(sequences, (1..=(2 + N as i64)).collect::<Vec<_>>());
    assert_eq!(
        app.count_events(&tenant, "ApiKeyIssued").await,
        1 + N as i64
    );

    // And every issued key is listed and works.
    let listed = app
        .gql(Some(&admin), "{ tenant { apiKeys { id } } }", json!({}))
        .await;
    let listed = listed.data()["tenant"]["apiKeys"].to_string();
    for id in &issued {
        assert!(
            listed.contains(id.as_str()),
            "{id} lost from the read model"
        );
    }
    for a in &answers {
        let secret = a.body["data"]["issueApiKey"]["secret"].as_str().unwrap();
        let t = app.gql(Some(secret), "{ tenant { id } }", json!({})).await;
        assert_eq!(t.data()["tenant"]["id"], tenant.as_str());
    }
}

#[tokio::test]
async fn parallel_policy_changes_serialize() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let digits = [6, 7, 8, 7, 6, 8, 7, 8];
    let answers = join_all(digits.iter().map(|d| {
        let app = &app;
        let admin = &admin;
        async move {
            app.gql(
                Some(admin),
                "mutation($d: Int!) { setPolicy(input: { codeDigits: $d }) { codeDigits } }",
                json!({ "d": d }),
            )
            .await
        }
    }))
    .await;
    for a in &answers {
        a.data();
    }
    // Each recorded change starts from the one before it: no lost update.
    let payloads: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE tenant_id = $1 AND event_type = 'TwoFactorPolicySet' ORDER BY sequence",
    )
    .bind(&tenant)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut current = 6;
    for p in &payloads {
        let set = &p["TwoFactorPolicySet"];
        assert_eq!(set["previous"]["codeDigits"], current);
        current = set["policy"]["codeDigits"].as_i64().unwrap();
    }
    let read = app
        .gql(
            Some(&admin),
            "{ tenant { policy { codeDigits } } }",
            json!({}),
        )
        .await;
    assert_eq!(read.data()["tenant"]["policy"]["codeDigits"], current);
}

//! Tenant isolation: a key of tenant B can neither read nor change anything of tenant A.

use serde_json::json;
use twofold_tests::spawn_app;

#[tokio::test]
async fn tenant_b_can_neither_read_nor_change_tenant_a() {
    let app = spawn_app().await;
    let (tenant_a, admin_a) = app.create_tenant("Alpha").await;
    let (app_a_id, app_a) = app.issue_key(&admin_a, "APP").await;
    let (tenant_b, admin_b) = app.create_tenant("Beta").await;
    let (_, auditor_b) = app.issue_key(&admin_b, "AUDITOR").await;
    assert_ne!(tenant_a, tenant_b);

    // B's keys only ever see B.
    for key in [&admin_b, &auditor_b] {
        let a = app
            .gql(
                Some(key),
                "{ tenant { id name apiKeys { id } } }",
                json!({}),
            )
            .await;
        let t = &a.data()["tenant"];
        assert_eq!(t["id"], tenant_b.as_str());
        assert_eq!(t["name"], "Beta");
        assert!(!t.to_string().contains(&app_a_id), "B saw A's key");
    }

    // B's admin cannot revoke A's key: it does not exist as far as B can tell.
    let a = app
        .gql(
            Some(&admin_b),
            "mutation($k: ID!) { revokeApiKey(keyId: $k) { id } }",
            json!({ "k": app_a_id }),
        )
        .await;
    assert_eq!(a.error_code(), "NOT_FOUND");
    assert!(a.body["data"].is_null());
    let still = app.gql(Some(&app_a), "{ tenant { id } }", json!({})).await;
    assert_eq!(still.data()["tenant"]["id"], tenant_a.as_str());

    // B's policy change lands on B only.
    let a = app
        .gql(
            Some(&admin_b),
            "mutation { setPolicy(input: { enforceTwoFactor: true, codeDigits: 8 }) { codeDigits } }",
            json!({}),
        )
        .await;
    assert_eq!(a.data()["setPolicy"]["codeDigits"], 8);
    let policy_a = app
        .gql(
            Some(&admin_a),
            "{ tenant { policy { enforceTwoFactor codeDigits } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        policy_a.data()["tenant"]["policy"],
        json!({ "enforceTwoFactor": false, "codeDigits": 6 })
    );

    // And in the store, every event B caused is in B's streams.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE tenant_id = $1 AND metadata->>'actor' LIKE '%' || $2 || '%'",
    )
    .bind(&tenant_a)
    .bind(&admin_b[4..20])
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    assert_eq!(app.count_events(&tenant_a, "TwoFactorPolicySet").await, 0);
    assert_eq!(app.count_events(&tenant_b, "TwoFactorPolicySet").await, 1);
}

#[tokio::test]
async fn a_key_of_another_service_instance_pepper_is_not_accepted() {
    // Same database, different pepper: stored hashes no longer match, so keys stop working.
    // This is what makes a leaked database useless without the pepper.
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Alpha").await;
    let mut other = app.secrets.clone();
    other.hash_pepper = twofold_infra::config::Key32::generate();
    let second = twofold_tests::spawn_app_on(app.database_url.clone(), other).await;
    let a = second
        .gql(Some(&admin), "{ tenant { id } }", json!({}))
        .await;
    assert_eq!(a.error_code(), "UNAUTHENTICATED");
}

//! Role guards: what each role may and may not do.

use serde_json::json;
use twofold_tests::spawn_app;

const ISSUE: &str = "mutation { issueApiKey(role: APP, label: \"x\") { key { id } } }";
const POLICY: &str =
    "mutation { setPolicy(input: { enforceTwoFactor: true }) { enforceTwoFactor } }";
const CREATE: &str = "mutation { createTenant(name: \"Other\") { tenant { id } } }";

#[tokio::test]
async fn every_role_reads_its_tenant() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    for key in [&admin, &app_key, &auditor] {
        let a = app.gql(Some(key), "{ tenant { id } }", json!({})).await;
        assert_eq!(a.data()["tenant"]["id"], tenant.as_str());
    }
}

#[tokio::test]
async fn app_and_auditor_keys_cannot_manage_the_tenant() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (admin_id, _) = app.issue_key(&admin, "ADMIN").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let revoke = format!("mutation {{ revokeApiKey(keyId: \"{admin_id}\") {{ id }} }}");
    for key in [&app_key, &auditor] {
        for query in [ISSUE, POLICY, revoke.as_str(), CREATE] {
            let a = app.gql(Some(key), query, json!({})).await;
            assert_eq!(a.error_code(), "FORBIDDEN", "{query}");
            assert!(a.body["data"].is_null());
        }
    }
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        events_before, events_after,
        "a refused request changed something"
    );
    assert_eq!(app.count_events(&tenant, "TwoFactorPolicySet").await, 0);
}

#[tokio::test]
async fn admin_keys_cannot_create_tenants() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let a = app.gql(Some(&admin), CREATE, json!({})).await;
    assert_eq!(a.error_code(), "FORBIDDEN");
}

#[tokio::test]
async fn the_operator_token_may_only_create_tenants() {
    let app = spawn_app().await;
    app.create_tenant("Acme").await;
    for query in ["{ tenant { id } }", ISSUE, POLICY] {
        let a = app.gql(Some(&app.operator_token), query, json!({})).await;
        assert_eq!(a.error_code(), "FORBIDDEN", "{query}");
        assert!(a.error_message().contains("createTenant"));
    }
}

#[tokio::test]
async fn without_credentials_every_operation_is_unauthenticated() {
    let app = spawn_app().await;
    for query in ["{ tenant { id } }", ISSUE, POLICY, CREATE] {
        let a = app.gql(None, query, json!({})).await;
        assert_eq!(a.error_code(), "UNAUTHENTICATED", "{query}");
    }
}

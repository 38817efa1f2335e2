//! The event store: what every event carries, and that history cannot be rewritten.

use serde_json::{json, Value};
use twofold_tests::spawn_app;

#[tokio::test]
async fn every_event_carries_tenant_actor_request_ip_and_user_agent() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let res = app
        .post("/graphql")
        .header("authorization", format!("Bearer {admin}"))
        .header("x-request-id", "audit-me-1")
        .header("user-agent", "acme-backend/1.2")
        .body(r#"{"query":"mutation { setPolicy(input: { enforceTwoFactor: true }) { enforceTwoFactor } }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);

    let row: (Value, String, String) = sqlx::query_as(
        "SELECT metadata, tenant_id, aggregate_id FROM events WHERE event_type = 'TwoFactorPolicySet'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let (meta, tenant_col, aggregate_id) = row;
    assert_eq!(tenant_col, tenant);
    assert_eq!(aggregate_id, format!("{tenant}/tenant"));
    assert_eq!(meta["tenant_id"], tenant.as_str());
    assert_eq!(meta["request_id"], "audit-me-1");
    assert_eq!(meta["ip"], "127.0.0.1");
    assert_eq!(meta["user_agent"], "acme-backend/1.2");
    let actor: Value = serde_json::from_str(meta["actor"].as_str().unwrap()).unwrap();
    assert_eq!(actor["role"], "ADMIN");
    assert_eq!(actor["keyId"].as_str().unwrap(), &admin[4..20]);

    let created: Value =
        sqlx::query_scalar("SELECT metadata FROM events WHERE event_type = 'TenantRegistered'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(created["actor"], r#"{"operator":true}"#);
}

#[tokio::test]
async fn history_is_append_only() {
    let app = spawn_app().await;
    app.create_tenant("Acme").await;
    for statement in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let e = sqlx::query(statement).execute(&app.db).await.unwrap_err();
        assert!(
            e.to_string().contains("events are immutable"),
            "{statement}: {e}"
        );
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn aggregate_ids_come_from_the_server_not_the_client() {
    let app = spawn_app().await;
    // A name that looks like a path cannot steer the event into another stream.
    let a = app
        .gql(
            Some(&app.operator_token),
            "mutation { createTenant(name: \"victim/tenant\") { tenant { id name } } }",
            json!({}),
        )
        .await;
    let id = a.data()["createTenant"]["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!id.contains('/'));
    let ids: Vec<String> = sqlx::query_scalar("SELECT DISTINCT aggregate_id FROM events")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(ids, vec![format!("{id}/tenant")]);
}

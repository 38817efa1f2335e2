use twofold_tests::spawn_app;

#[tokio::test]
async fn health_checks_the_database() {
    let app = spawn_app().await;
    let res = app.get("/health").await;
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    // With the database refusing connections the service says it is unavailable.
    app.database_outage(true).await;
    // The answer is reused for at most a second (an anonymous flood of `/health` must not keep
    // the pool busy), so the outage shows within about that.
    let started = std::time::Instant::now();
    while app.get("/health").await.status().as_u16() != 503 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "the outage was not reported"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The readiness probe says why; the liveness probe does not restart an instance for it.
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "unavailable", "{body}");
    assert_eq!(app.get("/health/live").await.status().as_u16(), 200);

    // Once the database is back, the instance is ready again by itself.
    app.database_outage(false).await;
    let started = std::time::Instant::now();
    while app.get("/health/ready").await.status().as_u16() != 200 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the instance did not recover"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ready_reports_the_database_the_processor_and_the_worker() {
    let app = spawn_app().await;
    let res = app.get("/health/ready").await;
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "status": "ready",
            "checks": { "database": "ok", "processor": "ok", "delivery": "ok" }
        })
    );
    let live: serde_json::Value = app.get("/health/live").await.json().await.unwrap();
    assert_eq!(live["status"], "ok");
}

#[tokio::test]
async fn graphiql_is_served_on_get() {
    let app = spawn_app().await;
    let res = app.get("/graphql").await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("graphiql"));
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_sane_ones_are_kept() {
    let app = spawn_app().await;
    let res = app
        .post("/graphql")
        .header("x-request-id", "client-req-42")
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-req-42");
    let res = app
        .post("/graphql")
        .header("x-request-id", "bad id with spaces")
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, "bad id with spaces");
    assert_eq!(id.len(), 36, "a minted UUID");
}

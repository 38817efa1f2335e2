//! Signing in exchanges the key for a server-side session; the browser keeps only a random
//! token in a strict cookie; the session ends when idle, when old, when its key is revoked, and
//! on sign-out; every form needs its CSRF token.

use serde_json::json;
use twofold_tests::spawn_app;

use super::{guess_keys_until_throttled, Browser};

#[tokio::test]
async fn an_admin_key_becomes_a_session_whose_cookie_is_strict_and_not_the_key() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    let signed_in = browser.sign_in(&admin).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.location(), "/console");
    let session = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("twofold_console="))
        .expect("a session cookie")
        .clone();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(attribute), "{session}");
    }
    // Plain HTTP on 127.0.0.1: a Secure cookie would not be kept.
    assert!(!session.contains("Secure"), "{session}");
    let token = browser.cookies["twofold_console"].clone();
    let key_secret = admin.rsplit('_').next().unwrap();
    for c in &browser.set_cookies {
        assert!(!c.contains(key_secret), "the key went into a cookie: {c}");
    }
    let overview = browser.get("/console").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains(&tenant), "{}", overview.body);
    assert!(!overview.body.contains(key_secret));

    // Stored as a keyed hash: neither the token nor the key is in the table.
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT token_hash, key_id, role FROM console_sessions")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].0, token);
    assert!(!rows[0].0.contains(&token) && !token.contains(&rows[0].0));
    assert_eq!(rows[0].2, "ADMIN");
}

#[tokio::test]
async fn app_keys_wrong_keys_and_the_operator_token_get_no_session() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    for (key, status, code) in [
        (app_key.as_str(), 403, "FORBIDDEN"),
        ("tfk_abcdefgh_nottherightsecret", 401, "UNAUTHENTICATED"),
        ("", 401, "UNAUTHENTICATED"),
        (app.operator_token.as_str(), 403, "FORBIDDEN"),
    ] {
        let mut browser = Browser::new(&app);
        let answer = browser.sign_in(key).await;
        assert_eq!(answer.status, status, "{key}: {}", answer.body);
        assert!(
            answer.body.contains(&format!("data-error-code=\"{code}\"")),
            "{}",
            answer.body
        );
        assert!(!browser.cookies.contains_key("twofold_console"));
        assert_eq!(browser.get("/console").await.location(), "/console/sign-in");
    }
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    // Sign-in without the nonce's token (login CSRF): refused, no session.
    let mut attacker_page = Browser::new(&app);
    let forged = attacker_page
        .post("/console/sign-in", &[("key", &admin), ("csrf", "0")])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(!attacker_page.cookies.contains_key("twofold_console"));

    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    // Another browser's form token does not do either.
    let mut other = Browser::new(&app);
    assert_eq!(other.sign_in(&admin).await.status, 303);
    let others_token = other.csrf().await;
    for csrf in ["", "00", others_token.as_str()] {
        let out = browser.post("/console/sign-out", &[("csrf", csrf)]).await;
        assert_eq!(out.status, 403, "{csrf}: {}", out.body);
        assert_eq!(browser.get("/console").await.status, 200, "still signed in");
    }
    let csrf = browser.csrf().await;
    let out = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), "/console/sign-in?signed_out=1");
    assert_eq!(browser.get("/console").await.location(), "/console/sign-in");
    // The other browser's session is its own.
    assert_eq!(other.get("/console").await.status, 200);
}

#[tokio::test]
async fn revoking_the_key_ends_its_sessions_at_once() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (key_id, second) = app.issue_key(&admin, "ADMIN").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&second).await.status, 303);
    assert_eq!(browser.get("/console").await.status, 200);
    let revoked = app
        .gql(
            Some(&admin),
            "mutation($k: ID!) { revokeApiKey(keyId: $k) { revokedAt } }",
            json!({ "k": key_id }),
        )
        .await;
    assert!(revoked.body["errors"].is_null(), "{}", revoked.body);
    let after = browser.get("/console").await;
    assert_eq!(after.status, 303);
    assert_eq!(after.location(), "/console/sign-in");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 0, "the revocation deleted the key's sessions");
}

#[tokio::test]
async fn a_session_ends_after_thirty_idle_minutes_or_twelve_hours() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    // 29 idle minutes: still alive, and the request counts as a use.
    sqlx::query("UPDATE console_sessions SET last_seen_at = now() - interval '29 minutes'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(browser.get("/console").await.status, 200);
    let idle: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - last_seen_at)::float8 FROM console_sessions",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(idle < 60.0, "touched: {idle}");
    sqlx::query("UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(browser.get("/console").await.location(), "/console/sign-in");

    let mut busy = Browser::new(&app);
    assert_eq!(busy.sign_in(&admin).await.status, 303);
    sqlx::query(
        "UPDATE console_sessions SET created_at = now() - interval '12 hours 1 minute', \
         last_seen_at = now()",
    )
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(busy.get("/console").await.location(), "/console/sign-in");
}

#[tokio::test]
async fn failed_sign_ins_spend_the_address_s_budget_of_unknown_keys() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    let (statuses, throttled) = guess_keys_until_throttled(&app, &mut browser).await;
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(throttled.headers().contains_key("retry-after"));
    assert!(throttled
        .text()
        .await
        .unwrap()
        .contains("data-error-code=\"RATE_LIMITED\""));
    // A key this instance has not seen waits too: the form is no faster way to guess keys
    // than the API, whose budget it shares.
    let csrf = browser.get("/console/sign-in").await.field("csrf");
    let answer = browser
        .post("/console/sign-in", &[("key", &admin), ("csrf", &csrf)])
        .await;
    assert_eq!(answer.status, 429, "{}", answer.body);
}

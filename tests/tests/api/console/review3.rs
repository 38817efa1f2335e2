//! What the third attacker review of the console found (decision 133), each kept from coming
//! back: pages take their tenant's share of the instance, a request over the key's rate costs
//! no database read, ending a session or revoking a key is not held behind the key's rate, and
//! a refused audit filter is not echoed back at any length.

use serde_json::json;
use twofold_tests::{spawn_app, TestApp};

use super::Browser;
use crate::rate_limits::{email_codes, EmailBudgetLock};

/// Sets the tenant's per-key rate to 1 a second (bursts of 2).
async fn slow_keys(app: &TestApp, admin: &str) {
    let set = app
        .gql(
            Some(admin),
            "mutation { setPolicy(input: { requestsPerSecondPerKey: 1 }) { requestsPerSecondPerKey } }",
            json!({}),
        )
        .await;
    assert_eq!(set.data()["setPolicy"]["requestsPerSecondPerKey"], 1);
}

/// Requests pages until one is refused for the key's rate.
async fn drain(browser: &mut Browser) {
    for _ in 0..20 {
        if browser.get("/console/users").await.status == 429 {
            return;
        }
    }
    panic!("the key's rate never ran out");
}

#[tokio::test]
async fn console_pages_wait_for_their_tenant_s_share_of_the_instance() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Bursty").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    // Six API operations hold every place of the tenant's share, waiting on a lock.
    let lock = EmailBudgetLock::hold(&app, &tenant).await;
    let holders = email_codes(&app, &app_key, "h", 6);
    let page = async {
        lock.wait_for_waiters(&app, 6).await;
        // The page needs a place too: it waits for one, then is told to slow down, instead
        // of taking a pooled connection beside the six.
        let page = browser.get("/console/users").await;
        lock.release().await;
        page
    };
    let (_, page) = tokio::join!(holders, page);
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page.body.contains("data-error-code=\"RATE_LIMITED\""));
    // With the share free again, the page is served.
    assert_eq!(browser.get("/console/users").await.status, 200);
}

#[tokio::test]
async fn a_page_over_the_key_s_rate_is_refused_without_reading_the_session() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    slow_keys(&app, &admin).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    drain(&mut browser).await;
    // Any read of the sessions table now waits for this lock: a refusal that read it would
    // never come while the lock is held.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE console_sessions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        browser.get("/console/users"),
    )
    .await;
    lock.rollback().await.unwrap();
    let refused = refused.expect("refused without waiting for the sessions table");
    assert_eq!(refused.status, 429, "{}", refused.body);
}

#[tokio::test]
async fn sign_out_and_key_revocation_work_while_the_key_s_rate_is_spent() {
    let app = spawn_app().await;
    let (_, first_admin) = app.create_tenant("Acme").await;
    let (stolen_id, _) = app.issue_key(&first_admin, "ADMIN").await;
    let (_, auditor) = app.issue_key(&first_admin, "AUDITOR").await;
    slow_keys(&app, &first_admin).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&first_admin).await.status, 303);
    let csrf = browser.csrf().await;
    // A thief holding the same key keeps its bucket empty.
    drain(&mut browser).await;
    let revoked = browser
        .post(
            &format!("/console/keys/{stolen_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    let keys = app
        .gql(
            Some(&auditor),
            "{ tenant { apiKeys { id revokedAt } } }",
            json!({}),
        )
        .await;
    let stolen = keys.data()["tenant"]["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == stolen_id.as_str())
        .unwrap()
        .clone();
    assert!(!stolen["revokedAt"].is_null(), "{stolen}");
    drain(&mut browser).await;
    let out = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert!(out.location().starts_with("/console/sign-in"));
}

#[tokio::test]
async fn an_audit_filter_naming_too_many_event_types_is_refused_and_not_echoed() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    let query = vec!["eventType=CodeSent"; 2_000].join("&");
    let page = browser.get(&format!("/console/audit?{query}")).await;
    assert_eq!(page.status, 400);
    assert!(
        page.body.contains("at most 64 event types"),
        "{}",
        page.body
    );
    assert!(
        page.body.len() < 40_000,
        "the refused filter was echoed: {} bytes",
        page.body.len()
    );
}

#[tokio::test]
async fn signing_in_over_and_over_spends_a_budget_of_its_own_and_records_no_more() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    // The API's rate at the operator's ceiling: sign-ins must not ride on it.
    let set = app
        .gql(
            Some(&admin),
            "mutation { setPolicy(input: { requestsPerSecondPerKey: 10000 }) { requestsPerSecondPerKey } }",
            json!({}),
        )
        .await;
    set.data();
    // Each sign-in records an event: a key holder looping on the form must be throttled, or
    // it grows the tenant's history (and its aggregate's writes) without bound.
    let mut accepted = 0;
    let mut refused = None;
    let started = std::time::Instant::now();
    for _ in 0..100 {
        let answer = Browser::new(&app).sign_in(&auditor).await;
        match answer.status {
            303 => accepted += 1,
            429 => {
                refused = Some(answer);
                break;
            }
            other => panic!("{other}: {}", answer.body),
        }
    }
    let refused = refused.expect("sign-ins have a budget of their own");
    assert!(refused.headers.contains_key("retry-after"));
    // 30 at once, then one every 2 s (a slow machine's loop earns a few more on the way).
    let earned = 30 + started.elapsed().as_secs() as i64 / 2 + 1;
    assert!(
        accepted <= earned,
        "{accepted} sign-ins before the budget held (at most {earned})"
    );
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE tenant_id = $1 AND event_type = 'ConsoleSignedIn'",
    )
    .bind(&tenant)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(recorded, accepted);
    // The admin's own key is not held back by the auditor's loop.
    assert_eq!(Browser::new(&app).sign_in(&admin).await.status, 303);
}

#[tokio::test]
async fn sign_out_posts_are_throttled_before_the_session_is_read() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&auditor).await.status, 303);
    assert_eq!(browser.get("/console").await.status, 200);
    let cookie = format!("twofold_console={}", browser.cookies["twofold_console"]);
    // Any read of the sessions table now waits: exempt posts must still be refused, not
    // queued on the pool, once their budget is spent (here with a wrong form token).
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE console_sessions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let posts = (0..30).map(|_| {
        client
            .post(format!("{}/console/sign-out", app.address))
            .header("cookie", &cookie)
            .form(&[("csrf", "wrong")])
            .send()
    });
    let mut pending: futures::stream::FuturesUnordered<_> = posts.collect();
    let mut refused = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while refused < 10 {
        use futures::StreamExt;
        match tokio::time::timeout_at(deadline, pending.next()).await {
            Ok(Some(answer)) => {
                if answer.unwrap().status() == 429 {
                    refused += 1;
                }
            }
            _ => break,
        }
    }
    lock.rollback().await.unwrap();
    drop(pending);
    assert!(
        refused >= 10,
        "only {refused} sign-out posts were refused while the sessions table was locked"
    );
}

#[tokio::test]
async fn a_refused_post_with_a_padded_address_does_not_echo_it() {
    let app = spawn_app().await;
    let long = "+".repeat(40_000);
    let answer = Browser::new(&app)
        .with_header("sec-fetch-site", "cross-site")
        .post(&format!("/console/user/reset?id={long}"), &[("csrf", "x")])
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(
        answer.body.len() < 20_000,
        "the address was echoed: {} bytes",
        answer.body.len()
    );
}

#[tokio::test]
async fn a_form_answered_in_place_keeps_its_page_s_address_in_htmx_history() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    let csrf = browser.csrf().await;
    // A refused form is answered in place: htmx must not push the POST-only address.
    let refused = browser
        .post(
            "/console/keys",
            &[("csrf", &csrf), ("role", "NOPE"), ("label", "x")],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.headers["hx-push-url"], "false");
    // A form that redirects leaves the address to the redirect.
    let issued = browser
        .post(
            "/console/keys",
            &[("csrf", &csrf), ("role", "APP"), ("label", "ci")],
        )
        .await;
    assert_eq!(issued.status, 200);
    assert_eq!(issued.headers["hx-push-url"], "false");
    let out = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(!out.headers.contains_key("hx-push-url"));
}

#[tokio::test]
async fn a_path_id_that_fails_to_decode_does_not_fall_back_to_the_query() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    app.gql(
        Some(&app_key),
        "mutation { addEmail(userId: \"alice\", email: \"alice@example.com\") { id } }",
        json!({}),
    )
    .await
    .data();
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    assert_eq!(browser.get("/console/user?id=alice").await.status, 200);
    // The address names `%FF`; the page must not be alice's.
    let page = browser.get("/console/users/%FF?id=alice").await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(!page.body.contains("alice@") && !page.body.contains("a***@"));
}

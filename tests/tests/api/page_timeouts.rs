//! A page waiting on a stalled database answers when its time is up, with the error page,
//! instead of holding its connection (and its tenant's share of the instance) for as long as
//! the stall lasts; the session goes on once the database answers again.

use std::time::Duration;

use twofold_tests::{spawn_app_with, TestApp, TestOptions};

use crate::console::Browser;
use crate::hosted::links::{link, tenant};

/// Long enough for a page on an idle database while other tests and a browser share the
/// machine, short enough for the test.
const PAGE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the test waits for an answer before calling the page hung.
const HUNG: Duration = Duration::from_secs(20);

/// An operator's open transaction holding `table` until it is rolled back.
async fn stall(app: &TestApp, table: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut stall = app.db.begin().await.unwrap();
    sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut *stall)
        .await
        .unwrap();
    stall
}

fn options() -> TestOptions {
    TestOptions {
        page_timeout: PAGE_TIMEOUT,
        ..TestOptions::default()
    }
}

#[tokio::test]
async fn a_hosted_page_behind_a_stalled_database_answers_with_the_error_page() {
    let app = spawn_app_with(options()).await;
    let acme = tenant(&app, "Acme").await;
    let link = link(&app, &acme.app, "alice", None).await;
    let mut browser = Browser::new(&app);
    let opened = browser.get(&link.path).await;
    assert_eq!(opened.status, 303, "{}", opened.body);

    // The table every page reads its session from.
    let held = stall(&app, "hosted_sessions").await;
    let page = tokio::time::timeout(HUNG, browser.get("/hosted"))
        .await
        .expect("the page answered while the database was stalled");
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(
        page.body.contains("Something went wrong on our side"),
        "the error page: {}",
        page.body
    );
    assert_eq!(
        page.headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    held.rollback().await.unwrap();

    let page = browser.get("/hosted").await;
    assert_eq!(page.status, 200, "the session goes on: {}", page.body);
}

#[tokio::test]
async fn a_console_page_behind_a_stalled_database_answers_with_the_error_page() {
    let app = spawn_app_with(options()).await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    let signed_in = browser.sign_in(&admin).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let csrf = browser.csrf().await;

    let held = stall(&app, "console_sessions").await;
    let page = tokio::time::timeout(HUNG, browser.get("/console"))
        .await
        .expect("the page answered while the database was stalled");
    assert_eq!(page.status, 503, "as the API's: {}", page.body);
    assert!(
        page.body.contains("Give this request id to your operator"),
        "{}",
        page.body
    );
    held.rollback().await.unwrap();
    let page = browser.get("/console").await;
    assert_eq!(page.status, 200, "the session goes on: {}", page.body);

    // A sign-out that cannot be recorded in time still signs the browser out (attacker
    // review of the deadline, L3).
    let held = stall(&app, "console_sessions").await;
    let out = tokio::time::timeout(HUNG, browser.post("/console/sign-out", &[("csrf", &csrf)]))
        .await
        .expect("the sign-out answered while the database was stalled");
    assert_eq!(out.status, 503, "{}", out.body);
    let cleared = out
        .headers
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("twofold_console=;"));
    assert!(cleared, "{:?}", out.headers);
    assert!(!browser.cookies.contains_key("twofold_console"));
    held.rollback().await.unwrap();
}

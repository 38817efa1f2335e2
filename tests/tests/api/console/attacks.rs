//! What the attacker review of the console found (decision 133), each kept from coming back.

use twofold_domain::console_session::MAX_PER_KEY;
use twofold_tests::spawn_app;

use super::Browser;

fn session_cookie(browser: &Browser) -> String {
    browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("twofold_console="))
        .expect("a session cookie")
        .clone()
}

#[tokio::test]
async fn behind_a_proxy_that_rewrites_host_to_loopback_the_session_cookie_is_still_secure() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    // What reaches us from nginx's default `proxy_pass http://127.0.0.1:…`: `Host` is the
    // upstream's (here 127.0.0.1, as every test request), and the browser is elsewhere.
    for (name, value) in [
        ("origin", "https://console.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "203.0.113.7"),
        ("forwarded", "for=203.0.113.7;proto=https"),
    ] {
        let mut browser = Browser::new(&app).with_header(name, value);
        assert_eq!(browser.sign_in(&admin).await.status, 303, "{name}");
        let cookie = session_cookie(&browser);
        assert!(cookie.contains("Secure"), "{name}: {value}: {cookie}");
    }
    // A browser on this machine over plain HTTP still gets a cookie it keeps.
    let origin = app.address.clone();
    let mut local = Browser::new(&app).with_header("origin", &origin);
    assert_eq!(local.sign_in(&admin).await.status, 303);
    assert!(!session_cookie(&local).contains("Secure"));
    // Pages let the browser send its real `Origin` with their forms (`no-referrer` makes it
    // `null`), and still give other sites no referrer.
    let page = local.get("/console/sign-in").await;
    assert_eq!(page.headers["referrer-policy"], "same-origin");
}

#[tokio::test]
async fn one_key_signing_in_over_and_over_keeps_only_its_newest_sessions() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut first = Browser::new(&app);
    assert_eq!(first.sign_in(&admin).await.status, 303);
    // A valid key's sign-ins are not throttled: each used to add a row for good (until idle).
    for _ in 0..MAX_PER_KEY + 5 {
        let mut browser = Browser::new(&app);
        assert_eq!(browser.sign_in(&admin).await.status, 303);
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, MAX_PER_KEY as i64);
    // The oldest went; the newest works.
    assert_eq!(first.get("/console").await.location(), "/console/sign-in");
    let mut newest = Browser::new(&app);
    assert_eq!(newest.sign_in(&admin).await.status, 303);
    assert_eq!(newest.get("/console").await.status, 200);
    // Another key's sessions are its own.
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    let mut reader = Browser::new(&app);
    assert_eq!(reader.sign_in(&auditor).await.status, 303);
    assert_eq!(reader.get("/console").await.status, 200);
    assert_eq!(newest.get("/console").await.status, 200);
}

//! What the attacker review of the console found (decision 133), each kept from coming back.

use twofold_domain::console_session::MAX_PER_KEY;
use twofold_tests::spawn_app;

use super::{guess_keys_until_throttled, until_throttled, Browser};

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

#[tokio::test]
async fn made_up_session_tokens_spend_the_address_s_budget_and_a_live_session_still_works() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    assert_eq!(browser.get("/console").await.status, 200);
    // Each made-up token was a database read, without limit: faster than the budget refills
    // (a burst of 100, then 50 a second), from the same address as the browser.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let made_up = |i: usize| {
        client
            .get(format!("{}/console", app.address))
            .header("cookie", format!("twofold_console=tfs_madeup{i:0>52}"))
    };
    let (_, throttled) = until_throttled(made_up).await;
    assert!(throttled.headers().contains_key("retry-after"));
    assert!(throttled
        .text()
        .await
        .unwrap()
        .contains("data-error-code=\"RATE_LIMITED\""));
    // While the address is refused (checked by a made-up token at the same moment), the
    // session this instance knows live still works.
    let mut shown = false;
    for round in 0..50 {
        let (live, guess) = tokio::join!(browser.get("/console"), made_up(100_000 + round).send());
        assert_eq!(live.status, 200, "a live session was refused");
        if guess.unwrap().status() == 429 {
            shown = true;
            break;
        }
        until_throttled(|i| made_up(200_000 + round * 10_000 + i)).await;
    }
    assert!(
        shown,
        "the address was never refused while the session was read"
    );
    // Nor is one signed in during it (with a key this instance knows) locked out.
    let mut second = Browser::new(&app);
    assert_eq!(second.sign_in(&admin).await.status, 303);
    assert_eq!(second.get("/console").await.status, 200);
}

#[tokio::test]
async fn a_sign_in_posted_by_another_site_with_a_planted_nonce_is_refused() {
    let app = spawn_app().await;
    let (_, attackers_key) = app.create_tenant("Attacker").await;
    // A sibling domain (or a man in the middle of plain HTTP) plants its own nonce cookie in
    // the victim's browser, and knows the form token that goes with it.
    let mut attacker = Browser::new(&app);
    let form = attacker.get("/console/sign-in").await;
    let csrf = form.field("csrf");
    let nonce = attacker.cookies["twofold_console_nonce"].clone();
    for site in ["same-site", "cross-site"] {
        let mut victim = Browser::new(&app).with_header("sec-fetch-site", site);
        victim
            .cookies
            .insert("twofold_console_nonce".into(), nonce.clone());
        let answer = victim
            .post(
                "/console/sign-in",
                &[("key", attackers_key.as_str()), ("csrf", csrf.as_str())],
            )
            .await;
        assert_eq!(answer.status, 403, "{site}: {}", answer.body);
        assert!(answer.body.contains("data-error-code=\"FORBIDDEN\""));
        assert!(!victim.cookies.contains_key("twofold_console"), "{site}");
    }
    // The same form from the console's own page signs in.
    let mut own = Browser::new(&app).with_header("sec-fetch-site", "same-origin");
    assert_eq!(own.sign_in(&attackers_key).await.status, 303);
    // So does a browser that does not say (the tokens still hold there).
    assert_eq!(attacker.sign_in(&attackers_key).await.status, 303);
}

#[tokio::test]
async fn a_form_larger_than_any_console_form_is_refused_unread() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/console/sign-in").await;
    let csrf = form.field("csrf");
    // Not even a token check first: axum's default held 2 MiB of each such form in memory.
    let padding = "x".repeat(64 * 1024);
    let answer = browser
        .post(
            "/console/sign-in",
            &[("key", admin.as_str()), ("csrf", &csrf), ("pad", &padding)],
        )
        .await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert!(!browser.cookies.contains_key("twofold_console"));
    // A real form still goes through.
    assert_eq!(
        browser
            .post("/console/sign-in", &[("key", &admin), ("csrf", &csrf)])
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn guesses_that_fail_internally_still_spend_the_address_s_budget() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    // Every look-up of a key now fails, as when the pool is saturated.
    sqlx::query("ALTER TABLE api_keys RENAME TO api_keys_away")
        .execute(&app.db)
        .await
        .unwrap();
    let (statuses, _) = guess_keys_until_throttled(&app, &mut browser).await;
    sqlx::query("ALTER TABLE api_keys_away RENAME TO api_keys")
        .execute(&app.db)
        .await
        .unwrap();
    assert!(statuses.contains(&500), "{statuses:?}");
}

// From the attacker review of the pages (decision 133).

#[tokio::test]
async fn console_pages_spend_their_key_s_request_rate_like_api_calls() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let set = app
        .gql(
            Some(&admin),
            "mutation { setPolicy(input: { requestsPerSecondPerKey: 1 }) { requestsPerSecondPerKey } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(set.data()["setPolicy"]["requestsPerSecondPerKey"], 1);
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    // One a second, bursts of two: twelve pages in a row cannot all be served.
    let mut refused = None;
    for _ in 0..12 {
        let page = browser.get("/console/users").await;
        if page.status == 429 {
            refused = Some(page);
            break;
        }
        assert_eq!(page.status, 200, "{}", page.body);
    }
    let refused = refused.expect("the key's rate held for console pages");
    assert!(refused.body.contains("data-error-code=\"RATE_LIMITED\""));
    assert!(refused.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn the_live_audit_stream_is_not_kept_by_caches() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    let cookie = format!("twofold_console={}", browser.cookies["twofold_console"]);
    let live = reqwest::Client::new()
        .get(format!("{}/console/audit/live", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    assert_eq!(live.headers()["cache-control"], "no-store");
}

//! What the attacker review of the hosted pages' foundation found (decision 151), each kept
//! from coming back.

use serde_json::json;
use twofold_tests::{spawn_app, spawn_app_with, TestOptions};

use super::links::{link, open_and_cancel, redeem, tenant, CREATE, RETURN};
use crate::console::{until_throttled, Browser};

#[tokio::test]
async fn a_result_is_redeemed_only_with_the_id_of_the_link_it_came_from() {
    let app = spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    // The attacker finishes a flow of their own and hands its result to a sign-in that asked
    // for another link (a victim's): the tenant redeems with the id it kept for that sign-in.
    let victims = link(&app, &acme.app, "victim", None).await;
    let attackers = link(&app, &acme.app, "attacker", None).await;
    let code = open_and_cancel(&mut Browser::new(&app), &attackers.path).await;
    let refused = redeem(&app, &acme.app, &code, &victims.id).await;
    assert_eq!(refused.error_code(), "INVALID_INPUT", "{}", refused.body);
    // Without the id, nothing is redeemed either.
    let bare = app
        .gql(
            Some(&acme.app),
            "mutation($c: String!) { redeemUserSession(code: $c) { userId } }",
            json!({ "c": code }),
        )
        .await;
    assert_eq!(bare.error_code(), "INVALID_INPUT", "{}", bare.body);
    // The refusals spent nothing: the sign-in that asked for it still gets it.
    let result = redeem(&app, &acme.app, &code, &attackers.id).await;
    assert_eq!(result.data()["redeemUserSession"]["userId"], "attacker");
}

#[tokio::test]
async fn the_page_s_forms_may_end_on_the_tenant_s_site() {
    let app = spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let l = link(&app, &acme.app, "alice", None).await;
    let mut browser = Browser::new(&app);
    browser.get(&l.path).await;
    let page = browser.get("/hosted").await;
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    // Chromium checks form-action against the redirect that ends the cancel form's POST.
    assert!(
        policy.contains("form-action 'self' https://app.acme.ge;"),
        "{policy}"
    );
    assert!(policy.contains("script-src 'self'"), "{policy}");
}

#[tokio::test]
async fn published_over_https_the_session_cookie_is_secure_whatever_the_host_header() {
    let app = spawn_app_with(TestOptions {
        public_url: Some("https://2fa.example.com".into()),
        ..TestOptions::default()
    })
    .await;
    let acme = tenant(&app, "Acme").await;
    let made = app
        .gql(
            Some(&acme.app),
            CREATE,
            json!({ "u": "alice", "p": "ENROLL", "r": RETURN }),
        )
        .await;
    let url = made.data()["createUserSession"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = url.strip_prefix("https://2fa.example.com").expect(&url);
    // What a proxy rewriting Host to its loopback upstream sends, with no Origin (a top-level
    // navigation has none).
    let mut browser = Browser::new(&app);
    assert_eq!(browser.get(path).await.status, 303);
    let cookie = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("twofold_hosted="))
        .unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn unknown_links_spend_the_address_s_budget_of_unknown_credentials() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = app.address.clone();
    let (statuses, throttled) = until_throttled(|i| {
        client.get(format!(
            "{base}/hosted/start?link=tfl_{:a>52}",
            format!("{i}").replace(['0', '1', '8', '9'], "b")
        ))
    })
    .await;
    assert!(
        statuses.iter().all(|s| *s == 404 || *s == 429),
        "{statuses:?}"
    );
    assert!(throttled.headers().contains_key("retry-after"));
    // Malformed ones are refused before any look-up, and throttled all the same.
    let answer = client
        .get(format!("{base}/hosted/start?link=tfl_a"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 429);
}

#[tokio::test]
async fn a_link_is_not_spent_by_a_head_request() {
    let app = spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let l = link(&app, &acme.app, "alice", None).await;
    // A mail scanner or a prefetch asks HEAD first.
    let head = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .head(format!("{}{}", app.address, l.path))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 405);
    assert_eq!(Browser::new(&app).get(&l.path).await.status, 303);
}

#[tokio::test]
async fn with_the_console_off_the_hosted_pages_still_open() {
    let app = spawn_app_with(TestOptions {
        console: false,
        ..TestOptions::default()
    })
    .await;
    let acme = tenant(&app, "Acme").await;
    let l = link(&app, &acme.app, "alice", None).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.get(&l.path).await.status, 303);
    let page = browser.get("/hosted").await;
    assert_eq!(page.status, 200);
    assert_eq!(browser.get("/hosted/assets/console.css").await.status, 200);
    assert_eq!(browser.get("/console/sign-in").await.status, 404);
}

#[tokio::test]
async fn a_return_origin_removed_after_the_link_was_made_is_not_returned_to() {
    let app = spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let l = link(&app, &acme.app, "alice", None).await;
    let mut browser = Browser::new(&app);
    browser.get(&l.path).await;
    let csrf = browser.get("/hosted").await.field("csrf");
    app.gql(
        Some(&acme.admin),
        "mutation { setPolicy(input: { returnOrigins: [\"https://new.acme.ge\"] }) { returnOrigins } }",
        json!({}),
    )
    .await
    .data();
    let refused = browser.post("/hosted/cancel", &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.headers.get("location").is_none());
}

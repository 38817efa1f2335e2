//! Links to the hosted pages and their results: single use, bound to the tenant, never
//! forgeable, and what the pages answer when they are not.

use serde_json::{json, Value};
use twofold_tests::TestApp;

use crate::console::Browser;
use crate::sign_in::{acme, Acme};

pub(crate) const CREATE: &str = "mutation($u: ID!, $p: UserSessionPurpose!, $r: String!, $l: String) { createUserSession(userId: $u, purpose: $p, returnUrl: $r, locale: $l) { id url expiresAt } }";
const REDEEM: &str = "mutation($c: String!, $s: ID) { redeemUserSession(code: $c, sessionId: $s) { userId purpose completed method deviceToken } }";
pub(crate) const RETURN: &str = "https://app.acme.ge/after-2fa?step=2";

/// A link: its id (for redeeming) and its path on the service.
pub(crate) struct Link {
    pub(crate) id: String,
    pub(crate) path: String,
}

/// A tenant whose hosted pages return to https://app.acme.ge.
pub(crate) async fn tenant(app: &TestApp, name: &str) -> Acme {
    let (id, admin) = app.create_tenant(name).await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let t = Acme {
        id,
        admin,
        app: app_key,
    };
    let set = app
        .gql(
            Some(&t.admin),
            "mutation { setPolicy(input: { returnOrigins: [\"https://app.acme.ge\"] }) { returnOrigins } }",
            json!({}),
        )
        .await;
    set.data();
    t
}

/// A link for `user`.
pub(crate) async fn link(app: &TestApp, key: &str, user: &str, locale: Option<&str>) -> Link {
    let a = app
        .gql(
            Some(key),
            CREATE,
            json!({ "u": user, "p": "ENROLL", "r": RETURN, "l": locale }),
        )
        .await;
    let made = &a.data()["createUserSession"];
    let url = made["url"].as_str().unwrap();
    Link {
        id: made["id"].as_str().unwrap().to_owned(),
        path: url
            .strip_prefix(&app.address)
            .unwrap_or_else(|| panic!("{url} is not on {}", app.address))
            .to_owned(),
    }
}

/// Opens `path` in `browser` and cancels; returns the result code the return URL carries.
pub(crate) async fn open_and_cancel(browser: &mut Browser, path: &str) -> String {
    let opened = browser.get(path).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    assert_eq!(opened.location(), "/hosted");
    let page = browser.get("/hosted").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.field("csrf");
    let back = browser.post("/hosted/cancel", &[("csrf", &csrf)]).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let location = back.location().to_owned();
    let code = location
        .strip_prefix(&format!("{RETURN}&twofold_result="))
        .unwrap_or_else(|| panic!("returned to {location}"));
    code.to_owned()
}

pub(crate) async fn redeem(
    app: &TestApp,
    key: &str,
    code: &str,
    session: &str,
) -> twofold_tests::Answer {
    app.gql(Some(key), REDEEM, json!({ "c": code, "s": session }))
        .await
}

#[tokio::test]
async fn a_link_is_made_only_by_an_app_key_for_a_return_url_on_the_tenant_s_origins() {
    let app = twofold_tests::spawn_app().await;
    let acme = acme(&app).await;
    let ask = |key: &str, vars: Value| {
        let key = key.to_owned();
        let app = &app;
        async move { app.gql(Some(&key), CREATE, vars).await }
    };
    let good = json!({ "u": "alice", "p": "ENROLL", "r": RETURN });
    // No return origins yet: nowhere to return to.
    let refused = ask(&acme.app, good.clone()).await;
    assert_eq!(refused.error_code(), "INVALID_INPUT", "{}", refused.body);
    let acme = tenant(&app, "Acme").await;
    assert_eq!(
        ask(&acme.admin, good.clone()).await.error_code(),
        "FORBIDDEN"
    );
    for (field, value) in [
        ("r", "https://app.acme.ge.evil.net/"),
        ("r", "http://app.acme.ge/"),
        ("r", "https://app.acme.ge/?twofold_result=forged"),
        ("r", "/relative"),
        ("u", " alice"),
        ("l", "xx-invalid-tag!"),
    ] {
        let mut vars = good.clone();
        vars[field] = json!(value);
        let a = ask(&acme.app, vars).await;
        assert_eq!(
            a.error_code(),
            "INVALID_INPUT",
            "{field}={value}: {}",
            a.body
        );
    }
    let made = ask(&acme.app, good).await;
    let made = &made.data()["createUserSession"];
    let url = made["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/hosted/start?link=tfl_", app.address)),
        "{url}"
    );
    let expires: chrono::DateTime<chrono::Utc> =
        made["expiresAt"].as_str().unwrap().parse().unwrap();
    let left = expires - chrono::Utc::now();
    assert!(
        left <= chrono::Duration::minutes(10) && left > chrono::Duration::minutes(9),
        "{left}"
    );
    // The secret is not stored: nothing in the database holds it.
    let secret = url.split("link=").nth(1).unwrap();
    let dump: String = sqlx::query_scalar("SELECT string_agg(t::text, '') FROM hosted_sessions t")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!dump.contains(secret));
}

#[tokio::test]
async fn a_cancelled_visit_returns_a_result_redeemed_once_by_its_own_tenant() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let other = tenant(&app, "Other").await;
    let link = link(&app, &acme.app, "alice", None).await;
    let mut browser = Browser::new(&app);
    let code = open_and_cancel(&mut browser, &link.path).await;
    assert!(code.starts_with("tfr_"), "{code}");

    // Another tenant's key, a forged code and an edited one are refused, and spend nothing.
    for (key, code) in [
        (other.app.as_str(), code.as_str()),
        (acme.app.as_str(), "tfr_forged"),
        (acme.app.as_str(), &code[..code.len() - 1]),
    ] {
        let a = redeem(&app, key, code, &link.id).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{}", a.body);
    }
    let a = redeem(&app, &acme.admin, &code, &link.id).await;
    assert_eq!(a.error_code(), "FORBIDDEN");

    let result = redeem(&app, &acme.app, &code, &link.id).await;
    assert_eq!(
        result.data()["redeemUserSession"],
        json!({ "userId": "alice", "purpose": "ENROLL", "completed": false, "method": null, "deviceToken": null })
    );
    // Once only.
    let again = redeem(&app, &acme.app, &code, &link.id).await;
    assert_eq!(again.error_code(), "INVALID_INPUT");
    // The session ended with the visit: its page and its form are gone.
    assert_eq!(browser.get("/hosted").await.status, 401);
}

#[tokio::test]
async fn a_link_opens_once_and_its_cookie_is_http_only_lax_and_scoped() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let path = link(&app, &acme.app, "alice", None).await.path;
    let mut first = Browser::new(&app);
    let opened = first.get(&path).await;
    assert_eq!(opened.status, 303);
    let cookie = first
        .set_cookies
        .iter()
        .find(|c| c.starts_with("twofold_hosted="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/hosted"), "{cookie}");
    // The same link in another browser (a leaked or replayed URL) opens nothing.
    let mut second = Browser::new(&app);
    let replayed = second.get(&path).await;
    assert_eq!(replayed.status, 404);
    assert!(replayed.body.contains("data-ended"));
    assert!(!second.cookies.contains_key("twofold_hosted"));
    // Forged links and made-up cookies open nothing either.
    assert_eq!(
        second
            .get(&format!("/hosted/start?link=tfl_{}", "a".repeat(52)))
            .await
            .status,
        404
    );
    let mut forged =
        Browser::new(&app).with_header("cookie", &format!("twofold_hosted=tfh_{}", "a".repeat(52)));
    assert_eq!(forged.get("/hosted").await.status, 401);
    // The first browser still has its page.
    assert_eq!(first.get("/hosted").await.status, 200);
}

#[tokio::test]
async fn a_form_without_the_session_s_token_changes_nothing() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let path = link(&app, &acme.app, "alice", None).await.path;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.get(&path).await.status, 303);
    for csrf in ["", "0000", "forged"] {
        let refused = browser.post("/hosted/cancel", &[("csrf", csrf)]).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
    }
    // Another site's form post is refused before the handler, whatever it sends.
    let page = browser.get("/hosted").await;
    let csrf = page.field("csrf");
    let mut cross = Browser::new(&app).with_header("sec-fetch-site", "cross-site");
    cross.cookies = browser.cookies.clone();
    assert_eq!(
        cross
            .post("/hosted/cancel", &[("csrf", &csrf)])
            .await
            .status,
        403
    );
    // The session is still live and its own form works.
    assert_eq!(browser.get("/hosted").await.status, 200);
    let back = browser.post("/hosted/cancel", &[("csrf", &csrf)]).await;
    assert_eq!(back.status, 303);
}

#[tokio::test]
async fn revoking_the_app_key_ends_its_pages() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (key_id, key) = app.issue_key(&acme.admin, "APP").await;
    let unopened = link(&app, &key, "alice", None).await.path;
    let opened = link(&app, &key, "bob", None).await.path;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.get(&opened).await.status, 303);
    app.gql(
        Some(&acme.admin),
        "mutation($k: ID!) { revokeApiKey(keyId: $k) { revokedAt } }",
        json!({ "k": key_id }),
    )
    .await
    .data();
    assert_eq!(browser.get("/hosted").await.status, 401);
    assert_eq!(Browser::new(&app).get(&unopened).await.status, 404);
}

#[tokio::test]
async fn the_pages_speak_the_link_s_language_else_the_browser_s() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let georgian = link(&app, &acme.app, "nino", Some("ka")).await.path;
    let mut browser = Browser::new(&app).speaking("de");
    browser.get(&georgian).await;
    let page = browser.get("/hosted").await;
    assert!(page.body.contains("<html lang=\"ka\">"), "{}", page.body);
    assert!(page.body.contains("ორსაფეხურიანი შესვლის ჩართვა"));
    assert!(page.body.contains("data-tenant>Acme<"), "{}", page.body);

    let plain = link(&app, &acme.app, "hans", None).await.path;
    let mut browser = Browser::new(&app).speaking("de-CH, en;q=0.5");
    browser.get(&plain).await;
    let page = browser.get("/hosted").await;
    assert!(page.body.contains("<html lang=\"de\">"), "{}", page.body);
    assert!(page.body.contains("Abbrechen und zurück zu Acme"));
}

//! Passkeys on the hosted pages in headless Chromium, with WebDriver's virtual authenticator
//! standing in for a phone's fingerprint reader: the user creates a passkey on the ENROLL page,
//! saves the recovery codes, and signs in with it on the VERIFY page trusting the browser; a
//! ceremony the browser refuses (a page not under the relying party's `rpId`) is explained in
//! words and changes nothing. The pages are opened as `http://localhost:PORT`, a secure context
//! over plain http, under the tenant's relying party `localhost`. Screenshots are
//! target/screenshots/hosted-passkey-*.png; every page passes axe.

use fantoccini::Locator;
use serde_json::{json, Value};
use twofold_tests::browser::Browser;
use twofold_tests::{spawn_app_with, TestApp, TestOptions};

use crate::console::{click, look, text};
use crate::hosted::{redeem, tenant_site, CREATE, REQUIREMENT};

const STATUS: &str =
    "query($u: ID!) { user(userId: $u) { enabled methods webAuthnCredentials { id } } }";

/// The service, its pages at `http://localhost:PORT`; Acme, its APP key, and its site.
struct Setup {
    app: TestApp,
    app_key: String,
    site: String,
}

fn pages_origin(app: &TestApp) -> String {
    app.address.replace("127.0.0.1", "localhost")
}

async fn setup() -> Setup {
    let app = spawn_app_with(TestOptions {
        public_url: Some("http://localhost:{port}".into()),
        ..TestOptions::default()
    })
    .await;
    let site = tenant_site().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    app.gql(
        Some(&admin),
        "mutation($i: PolicyInput!) { setPolicy(input: $i) { returnOrigins } }",
        json!({ "i": {
            "returnOrigins": [site],
            "trustedDeviceDays": 30,
            "allowedMethods": ["TOTP", "RECOVERY_CODE", "WEBAUTHN"],
            "webAuthn": { "rpId": "localhost", "rpName": "Acme", "origins": [pages_origin(&app)] },
        }}),
    )
    .await
    .data();
    Setup { app, app_key, site }
}

/// A link for `purpose`, made under the pages' public URL: its id and URL.
async fn link(s: &Setup, purpose: &str) -> (String, String) {
    let made = s
        .app
        .gql(
            Some(&s.app_key),
            CREATE,
            json!({ "u": "nino", "p": purpose, "r": format!("{}/done", s.site) }),
        )
        .await;
    let made = &made.data()["createUserSession"];
    (
        made["id"].as_str().unwrap().to_owned(),
        made["url"].as_str().unwrap().to_owned(),
    )
}

async fn status(s: &Setup) -> Value {
    s.app
        .gql(Some(&s.app_key), STATUS, json!({ "u": "nino" }))
        .await
        .data()["user"]
        .clone()
}

/// Whether the element `css` finds is shown.
async fn shown(browser: &Browser, css: &str) -> bool {
    browser
        .client()
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .is_displayed()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_creates_a_passkey_saves_the_codes_and_signs_in_with_it_trusting_the_browser() {
    let s = setup().await;
    let browser = Browser::start().await;
    let authenticator = browser.add_virtual_authenticator().await;
    let c = browser.client();

    // Enroll: the passkey choice, the page that creates it, the codes.
    let (id, url) = link(&s, "ENROLL").await;
    browser.goto(&url).await;
    assert_eq!(
        text(&browser, "[data-method=WEBAUTHN]").await,
        "Passkey or security key"
    );
    look(&browser, "hosted-passkey-choose").await;
    click(c, Locator::Css("[data-method=WEBAUTHN]")).await;
    c.wait()
        .for_element(Locator::Css("button[data-passkey-run]:not([hidden])"))
        .await
        .unwrap();
    assert!(
        !shown(&browser, "[data-passkey-unsupported]").await,
        "the browser supports passkeys: no words against it"
    );
    look(&browser, "hosted-passkey-create").await;
    click(c, Locator::Css("button[data-passkey-run]")).await;
    c.wait()
        .for_element(Locator::Css("[data-recovery-code]"))
        .await
        .unwrap();
    let codes = c
        .find_all(Locator::Css("[data-recovery-code]"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    let held = browser.virtual_credentials(&authenticator).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["rpId"], "localhost");
    look(&browser, "hosted-passkey-codes").await;
    click(c, Locator::Css("input[name=saved]")).await;
    click(
        c,
        Locator::Css("form[action='/hosted/done'] button[type=submit]"),
    )
    .await;
    let result = redeem(&browser, &s.app, &s.app_key, &s.site, &id).await;
    assert_eq!(result["completed"], true);
    assert_eq!(result["method"], "WEBAUTHN");
    let now = status(&s).await;
    assert_eq!(now["enabled"], true);
    assert_eq!(now["methods"], json!(["WEBAUTHN", "RECOVERY_CODE"]));

    // Sign in with the passkey, trusting the browser.
    let (id, url) = link(&s, "VERIFY").await;
    browser.goto(&url).await;
    c.wait()
        .for_element(Locator::Css("[data-method=WEBAUTHN]:not([hidden])"))
        .await
        .unwrap();
    assert_eq!(
        text(&browser, "[data-method=WEBAUTHN]").await,
        "Use a passkey"
    );
    look(&browser, "hosted-passkey-verify").await;
    click(c, Locator::Css("form[data-passkey] input[name=trust]")).await;
    click(c, Locator::Css("[data-method=WEBAUTHN]")).await;
    let result = redeem(&browser, &s.app, &s.app_key, &s.site, &id).await;
    assert_eq!(result["completed"], true);
    assert_eq!(result["method"], "WEBAUTHN");
    let token = result["deviceToken"].as_str().expect("a device token");
    let next = s
        .app
        .gql(
            Some(&s.app_key),
            REQUIREMENT,
            json!({ "u": "nino", "d": token }),
        )
        .await;
    assert_eq!(next.data()["signInRequirement"]["reason"], "TRUSTED_DEVICE");
    browser.close().await;
}

#[tokio::test]
async fn a_ceremony_the_browser_refuses_is_explained_in_words_and_changes_nothing() {
    let s = setup().await;
    let browser = Browser::start().await;
    let authenticator = browser.add_virtual_authenticator().await;
    let c = browser.client();
    // The same pages reached as 127.0.0.1: not under the relying party `localhost`, so the
    // browser refuses the ceremony before the authenticator is asked.
    let (_, url) = link(&s, "ENROLL").await;
    browser
        .goto(&url.replace(&pages_origin(&s.app), &s.app.address))
        .await;
    click(c, Locator::Css("[data-method=WEBAUTHN]")).await;
    c.wait()
        .for_element(Locator::Css("button[data-passkey-run]:not([hidden])"))
        .await
        .unwrap();
    click(c, Locator::Css("button[data-passkey-run]")).await;
    let said = text(&browser, "[data-passkey-error]:not([hidden])").await;
    assert!(
        said.starts_with("Your browser refused to use a passkey on this page"),
        "{said}"
    );
    look(&browser, "hosted-passkey-wrong-site").await;
    assert!(browser.virtual_credentials(&authenticator).await.is_empty());
    let now = status(&s).await;
    assert_eq!(now["enabled"], false);
    assert_eq!(now["webAuthnCredentials"], json!([]));
    // Still on the page, which may be tried again or left for another way.
    assert!(shown(&browser, "button[data-passkey-run]").await);
    assert!(shown(&browser, "[data-other-method]").await);
    browser.close().await;
}

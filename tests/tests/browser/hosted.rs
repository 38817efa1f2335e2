//! The hosted pages in headless Chromium: a user enrolls by scanning the QR code off the page
//! (decoded from the screenshot by `zbarimg`, as a phone's camera would), saves the recovery
//! codes, comes back to the tenant's site with a result, signs in trusting the browser, and
//! finds 2FA cannot be turned off while the organisation enforces it. Every step is
//! screenshotted (target/screenshots/hosted-*.png) and passes axe.

use fantoccini::Locator;
use serde_json::json;
use twofold_tests::browser::Browser;
use twofold_tests::{spawn_app, TestApp};

use crate::console::{click, look, text};

pub(crate) const CREATE: &str = "mutation($u: ID!, $p: UserSessionPurpose!, $r: String!) { createUserSession(userId: $u, purpose: $p, returnUrl: $r) { id url } }";
pub(crate) const REDEEM: &str = "mutation($c: String!, $s: ID) { redeemUserSession(code: $c, sessionId: $s) { userId completed method deviceToken } }";
pub(crate) const REQUIREMENT: &str = "query($u: ID!, $d: String) { signInRequirement(userId: $u, deviceToken: $d) { required reason } }";

/// The tenant's own site, which the pages send the user back to.
pub(crate) async fn tenant_site() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let site = axum::Router::new().fallback(|| async {
        axum::response::Html(
            "<!doctype html><html lang=\"en\"><head><title>Acme</title></head>\
             <body><main><h1>Back at Acme</h1></main></body></html>",
        )
    });
    tokio::spawn(async move { axum::serve(listener, site).await.unwrap() });
    format!("http://localhost:{port}")
}

/// Opens a link for `purpose` in the browser: the link's id, for redeeming.
async fn open(
    browser: &Browser,
    app: &TestApp,
    app_key: &str,
    site: &str,
    purpose: &str,
) -> String {
    let made = app
        .gql(
            Some(app_key),
            CREATE,
            json!({ "u": "nino", "p": purpose, "r": format!("{site}/done") }),
        )
        .await;
    let made = &made.data()["createUserSession"];
    browser.goto(made["url"].as_str().unwrap()).await;
    made["id"].as_str().unwrap().to_owned()
}

/// Waits until the browser is back on the tenant's site; redeems the result it carries.
pub(crate) async fn redeem(
    browser: &Browser,
    app: &TestApp,
    app_key: &str,
    site: &str,
    id: &str,
) -> serde_json::Value {
    let c = browser.client();
    c.wait()
        .for_element(Locator::XPath("//h1[text()='Back at Acme']"))
        .await
        .expect("back on the tenant's site");
    let url = c.current_url().await.unwrap();
    assert!(url.as_str().starts_with(site), "{url}");
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "twofold_result")
        .map(|(_, v)| v.into_owned())
        .expect("a result code");
    app.gql(Some(app_key), REDEEM, json!({ "c": code, "s": id }))
        .await
        .data()["redeemUserSession"]
        .clone()
}

/// The otpauth URI in the QR code of a screenshot, read by a real decoder.
fn scan(png: &std::path::Path) -> String {
    let out = std::process::Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(png)
        .output()
        .expect("zbarimg runs (scripts/ensure-deps installs zbar-tools)");
    assert!(
        out.status.success(),
        "no QR code found in {}",
        png.display()
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn type_into(browser: &Browser, css: &str, value: &str) {
    browser
        .client()
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(value)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_user_scans_the_qr_code_saves_the_codes_and_signs_in_trusting_the_browser() {
    let app = spawn_app().await;
    let site = tenant_site().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    app.gql(
        Some(&admin),
        "mutation($o: [String!]) { setPolicy(input: { returnOrigins: $o, trustedDeviceDays: 30 }) { returnOrigins } }",
        json!({ "o": [site] }),
    )
    .await
    .data();
    let browser = Browser::start().await;
    let c = browser.client();

    // Enroll: choose the app, scan, confirm.
    let id = open(&browser, &app, &app_key, &site, "ENROLL").await;
    assert_eq!(text(&browser, "[data-tenant]").await, "Acme");
    look(&browser, "hosted-enroll-choose").await;
    click(c, Locator::Css("[data-method=TOTP]")).await;
    c.wait()
        .for_element(Locator::Css("img[data-qr]"))
        .await
        .unwrap();
    look(&browser, "hosted-enroll-totp").await;
    let shot = browser.screenshot("hosted-enroll-totp").await;
    let uri = scan(&shot);
    let totp = totp_rs::Totp::from_url(&uri).unwrap_or_else(|e| panic!("{uri}: {e:?}"));
    let shown = c
        .find(Locator::Css("[data-key]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    let in_qr = uri
        .split("secret=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap();
    assert_eq!(
        shown.replace(' ', ""),
        in_qr,
        "the key typed by hand is the one in the QR code"
    );
    let now = chrono::Utc::now().timestamp() as u64;
    type_into(
        &browser,
        "input[name=code]",
        &totp.generate(now).to_string(),
    )
    .await;
    click(c, Locator::Css("form[action$=confirm] button[type=submit]")).await;

    // The recovery codes, once; the box ticked before going back.
    c.wait()
        .for_element(Locator::Css("[data-recovery-code]"))
        .await
        .unwrap();
    let codes = c
        .find_all(Locator::Css("[data-recovery-code]"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    look(&browser, "hosted-enroll-codes").await;
    click(c, Locator::Css("input[name=saved]")).await;
    click(
        c,
        Locator::Css("form[action='/hosted/done'] button[type=submit]"),
    )
    .await;
    let result = redeem(&browser, &app, &app_key, &site, &id).await;
    assert_eq!(result["completed"], true);
    assert_eq!(result["method"], "TOTP");

    // Sign in with the next code, trusting the browser.
    let id = open(&browser, &app, &app_key, &site, "VERIFY").await;
    look(&browser, "hosted-verify").await;
    type_into(&browser, "input#code", &totp.generate(now + 30).to_string()).await;
    click(c, Locator::Css("input[name=trust]")).await;
    click(c, Locator::Css("[data-method=TOTP]")).await;
    let result = redeem(&browser, &app, &app_key, &site, &id).await;
    assert_eq!(result["method"], "TOTP");
    let token = result["deviceToken"].as_str().expect("a device token");
    let next = app
        .gql(
            Some(&app_key),
            REQUIREMENT,
            json!({ "u": "nino", "d": token }),
        )
        .await;
    assert_eq!(next.data()["signInRequirement"]["reason"], "TRUSTED_DEVICE");

    // Enforced: the settings explain why 2FA stays on.
    app.gql(
        Some(&admin),
        "mutation { setPolicy(input: { enforceTwoFactor: true }) { enforceTwoFactor } }",
        json!({}),
    )
    .await
    .data();
    open(&browser, &app, &app_key, &site, "MANAGE").await;
    let why = text(&browser, "[data-disable-refused]").await;
    assert!(why.contains("requires two-step verification"), "{why}");
    assert!(c.find(Locator::Css("[data-action=disable]")).await.is_err());
    look(&browser, "hosted-manage-enforced").await;
    browser.close().await;
}

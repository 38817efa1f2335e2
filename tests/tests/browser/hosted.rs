//! The hosted pages in headless Chromium: a user enrolls by scanning the QR code off the page
//! (decoded from the screenshot by `zbarimg`, as a phone's camera would), saves the recovery
//! codes, comes back to the tenant's site with a result, signs in trusting the browser, finds
//! 2FA cannot be turned off while the organisation enforces it, is reset by an admin, enrolls
//! again and turns 2FA off with a code once it is no longer enforced. Every step is
//! screenshotted (target/screenshots/hosted-*.png) and passes axe.

use fantoccini::Locator;
use serde_json::json;
use twofold_tests::browser::Browser;
use twofold_tests::{spawn_app, TestApp};

use crate::console::{click, look, sign_in, text};

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
pub(crate) async fn open(
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

pub(crate) async fn type_into(browser: &Browser, css: &str, value: &str) {
    // Waits for the field: the page it is on may still be loading after a click.
    browser
        .client()
        .wait()
        .for_element(Locator::Css(css))
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
    // Tall enough for the whole page, which the README shows.
    c.set_window_size(1000, 940).await.unwrap();
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
    let manage = open(&browser, &app, &app_key, &site, "MANAGE").await;
    let why = text(&browser, "[data-disable-refused]").await;
    assert!(why.contains("requires two-step verification"), "{why}");
    assert!(c.find(Locator::Css("[data-action=disable]")).await.is_err());
    look(&browser, "hosted-manage-enforced").await;
    // Back to the tenant: the visit ends (a new link during a live visit asks first).
    click(c, Locator::Css("[data-done]")).await;
    let result = redeem(&browser, &app, &app_key, &site, &manage).await;
    assert_eq!(result["completed"], true);

    // The user lost the phone: an admin resets them from the console, and they enroll again.
    sign_in(&browser, &app, &admin).await;
    browser
        .goto(&format!("{}/console/users/nino", app.address))
        .await;
    type_into(&browser, "#reason-reset", "lost her phone").await;
    click(c, Locator::Css("[data-action=reset] button[type=submit]")).await;
    c.wait()
        .for_element(Locator::Css("[data-done]"))
        .await
        .expect("the reset is confirmed");
    let id = open(&browser, &app, &app_key, &site, "ENROLL").await;
    click(c, Locator::Css("[data-method=TOTP]")).await;
    let key = c
        .wait()
        .for_element(Locator::Css("[data-key]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap()
        .replace(' ', "");
    assert_ne!(key, in_qr, "a new secret after the reset");
    let again =
        totp_rs::Totp::from_url(format!("otpauth://totp/Acme:nino?secret={key}&issuer=Acme"))
            .unwrap();
    // Steps already used stay used whatever secret comes next (a reset keeps them): the sign-in
    // above used the step after `now`, so the new app's first code is the one after that, which
    // the service accepts once the clock is at most one step before it.
    let next_step = now / 30 + 2;
    let ready = (next_step - 1) * 30;
    let clock = chrono::Utc::now().timestamp() as u64;
    if clock < ready {
        tokio::time::sleep(std::time::Duration::from_secs(ready - clock)).await;
    }
    type_into(
        &browser,
        "input[name=code]",
        &again.generate(next_step * 30).to_string(),
    )
    .await;
    click(c, Locator::Css("form[action$=confirm] button[type=submit]")).await;
    c.wait()
        .for_element(Locator::Css("[data-recovery-code]"))
        .await
        .unwrap();
    click(c, Locator::Css("input[name=saved]")).await;
    click(
        c,
        Locator::Css("form[action='/hosted/done'] button[type=submit]"),
    )
    .await;
    let result = redeem(&browser, &app, &app_key, &site, &id).await;
    assert_eq!(result["method"], "TOTP");

    // No longer enforced: the user turns 2FA off in the settings with a code from the app (the
    // step after the one the enrollment used).
    app.gql(
        Some(&admin),
        "mutation { setPolicy(input: { enforceTwoFactor: false }) { enforceTwoFactor } }",
        json!({}),
    )
    .await
    .data();
    let id = open(&browser, &app, &app_key, &site, "MANAGE").await;
    let step = next_step + 1;
    let clock = chrono::Utc::now().timestamp() as u64;
    if clock < (step - 1) * 30 {
        tokio::time::sleep(std::time::Duration::from_secs((step - 1) * 30 - clock)).await;
    }
    type_into(
        &browser,
        "input#code",
        &again.generate(step * 30).to_string(),
    )
    .await;
    click(c, Locator::Css("[data-action=disable]")).await;
    c.wait()
        .for_element(Locator::Css("[data-no-factor]"))
        .await
        .expect("2FA is off");
    click(c, Locator::Css("[data-done]")).await;
    redeem(&browser, &app, &app_key, &site, &id).await;
    let after = app
        .gql(Some(&app_key), REQUIREMENT, json!({ "u": "nino" }))
        .await;
    assert_eq!(after.data()["signInRequirement"]["required"], false);
    browser.close().await;
}

#[tokio::test]
async fn a_georgian_user_enrolls_a_phone_in_georgian_and_signs_in_by_sms() {
    let app = spawn_app().await;
    let site = tenant_site().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    app.gql(
        Some(&admin),
        "mutation($o: [String!]) { setPolicy(input: { returnOrigins: $o, allowedCallingCodes: [\"995\"] }) { returnOrigins } }",
        json!({ "o": [site] }),
    )
    .await
    .data();
    let browser = Browser::start_with(twofold_tests::browser::BrowserOptions {
        language: "ka".to_owned(),
        ..Default::default()
    })
    .await;
    let c = browser.client();
    let id = open(&browser, &app, &app_key, &site, "ENROLL").await;
    click(c, Locator::Css("[data-method=SMS]")).await;
    c.wait()
        .for_element(Locator::Css("select[name=country]"))
        .await
        .unwrap();
    let heading = text(&browser, "h1").await;
    assert_eq!(heading, "მობილური ტელეფონის გამოყენება");
    let first = c
        .find(Locator::Css("select[name=country] option"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(first, "+995");
    look(&browser, "hosted-ka-phone").await;

    // A number of a country the organisation does not serve: explained, in Georgian.
    type_into(&browser, "input[name=phone]", "+1 202 555 0143").await;
    click(
        c,
        Locator::Css("main form:not(.hosted-cancel) button[type=submit]"),
    )
    .await;
    let why = text(&browser, "[data-error]").await;
    assert!(
        why.contains("აქ არ მიიღება") && why.contains("+995"),
        "{why}"
    );
    look(&browser, "hosted-ka-phone-refused").await;
    let field = c.find(Locator::Css("input[name=phone]")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys("555 12 34 56").await.unwrap();
    click(
        c,
        Locator::Css("main form:not(.hosted-cancel) button[type=submit]"),
    )
    .await;
    c.wait()
        .for_element(Locator::Css("[data-sent-to]"))
        .await
        .unwrap();
    look(&browser, "hosted-ka-code").await;
    let sms = app
        .twilio
        .wait_for_delivered(1, std::time::Duration::from_secs(20))
        .await;
    assert_eq!(sms[0].to, "+995555123456");
    let code = twofold_tests::fakes::extract_code(&sms[0].body, 6).unwrap();
    type_into(&browser, "input[name=code]", &code).await;
    click(c, Locator::Css("[data-method=SMS]")).await;
    c.wait()
        .for_element(Locator::Css("[data-recovery-code]"))
        .await
        .unwrap();
    click(c, Locator::Css("input[name=saved]")).await;
    click(
        c,
        Locator::Css("form[action='/hosted/done'] button[type=submit]"),
    )
    .await;
    let result = redeem(&browser, &app, &app_key, &site, &id).await;
    assert_eq!(result["method"], "SMS");

    // Sign in: a code by SMS, typed back.
    let id = open(&browser, &app, &app_key, &site, "VERIFY").await;
    click(c, Locator::Css("[data-method=SMS]")).await;
    c.wait()
        .for_element(Locator::Css("[data-resend]"))
        .await
        .unwrap();
    let resend = c.find(Locator::Css("[data-resend]")).await.unwrap();
    assert!(
        !resend.is_enabled().await.unwrap(),
        "resend waits for its countdown"
    );
    let sms = app
        .twilio
        .wait_for_delivered(2, std::time::Duration::from_secs(20))
        .await;
    let code = twofold_tests::fakes::extract_code(&sms[1].body, 6).unwrap();
    type_into(&browser, "input[name=code]", &code).await;
    click(c, Locator::Css("[data-method=SMS]")).await;
    let result = redeem(&browser, &app, &app_key, &site, &id).await;
    assert_eq!(result["method"], "SMS");
    browser.close().await;
}

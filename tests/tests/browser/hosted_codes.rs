//! The hosted pages in headless Chromium, for a user without an authenticator app: a number
//! without its country code is refused in words, an email address is enrolled, a recovery code
//! signs in, codes are regenerated with a code sent by email (the old ones die), and 2FA is
//! turned off with one; links and result codes that were spent, forged or edited are refused.

use fantoccini::Locator;
use serde_json::json;
use twofold_tests::browser::Browser;
use twofold_tests::fakes::extract_code;
use twofold_tests::{spawn_app, TestApp};

use crate::console::{click, look, text};
use crate::hosted::{open, redeem, tenant_site, type_into};

const VERIFY: &str = "mutation($c: String!) { verify(userId: \"nino\", method: RECOVERY_CODE, code: $c) { method } }";
const REDEEM: &str =
    "mutation($c: String!, $s: ID) { redeemUserSession(code: $c, sessionId: $s) { completed } }";

/// The code of the `n`-th mail the SMTP server received.
async fn mailed(app: &TestApp, n: usize) -> String {
    let mails = app
        .smtp
        .wait_for(n, std::time::Duration::from_secs(20))
        .await;
    let text = mails[n - 1]
        .text()
        .unwrap_or_else(|| mails[n - 1].data.clone());
    extract_code(&text, 6).expect("a code in the mail")
}

/// The recovery codes the page shows.
async fn codes_on(browser: &Browser) -> Vec<String> {
    let c = browser.client();
    c.wait()
        .for_element(Locator::Css("[data-recovery-code]"))
        .await
        .unwrap();
    let mut codes = Vec::new();
    for e in c
        .find_all(Locator::Css("[data-recovery-code]"))
        .await
        .unwrap()
    {
        codes.push(e.text().await.unwrap());
    }
    codes
}

/// In the settings: sends a proof code by email and types it in.
async fn prove_by_email(browser: &Browser, app: &TestApp, n: usize) {
    let c = browser.client();
    // After a click the settings may still be loading.
    c.wait()
        .for_element(Locator::Css("[data-send=EMAIL]"))
        .await
        .expect("the settings")
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("input[name=challenge]:not([value=''])"))
        .await
        .expect("the settings asking for the code sent");
    type_into(browser, "input#code", &mailed(app, n).await).await;
}

#[tokio::test]
async fn an_email_user_signs_in_with_a_recovery_code_regenerates_them_and_turns_2fa_off() {
    let app = spawn_app().await;
    let site = tenant_site().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    app.gql(
        Some(&admin),
        "mutation($o: [String!]) { setPolicy(input: { returnOrigins: $o }) { returnOrigins } }",
        json!({ "o": [site] }),
    )
    .await
    .data();
    let browser = Browser::start().await;
    let c = browser.client();

    // A number typed without its country code, none chosen: told how to write it.
    let id = open(&browser, &app, &app_key, &site, "ENROLL").await;
    click(c, Locator::Css("[data-method=SMS]")).await;
    type_into(&browser, "input[name=phone]", "555 12 34 56").await;
    click(
        c,
        Locator::Css("main form:not(.hosted-cancel) button[type=submit]"),
    )
    .await;
    let why = text(&browser, "[data-error]").await;
    assert!(why.contains("country code"), "{why}");
    look(&browser, "hosted-phone-no-country").await;
    assert!(app.twilio.requests().is_empty(), "nothing sent");
    click(c, Locator::Css("[data-cancel]")).await;
    let cancelled = redeem(&browser, &app, &app_key, &site, &id).await;
    assert_eq!(cancelled["completed"], false);

    // Email instead: the code from the mail, then the recovery codes.
    let id = open(&browser, &app, &app_key, &site, "ENROLL").await;
    click(c, Locator::Css("[data-method=EMAIL]")).await;
    type_into(&browser, "input[name=email]", "nino@acme.ge").await;
    click(
        c,
        Locator::Css("main form:not(.hosted-cancel) button[type=submit]"),
    )
    .await;
    c.wait()
        .for_element(Locator::Css("[data-sent-to]"))
        .await
        .unwrap();
    look(&browser, "hosted-email-code").await;
    type_into(&browser, "input[name=code]", &mailed(&app, 1).await).await;
    click(c, Locator::Css("[data-method=EMAIL]")).await;
    let first = codes_on(&browser).await;
    assert_eq!(first.len(), 10);
    click(c, Locator::Css("input[name=saved]")).await;
    click(
        c,
        Locator::Css("form[action='/hosted/done'] button[type=submit]"),
    )
    .await;
    assert_eq!(
        redeem(&browser, &app, &app_key, &site, &id).await["method"],
        "EMAIL"
    );

    // Sign in with a recovery code.
    let id = open(&browser, &app, &app_key, &site, "VERIFY").await;
    click(c, Locator::Css(".hosted-recovery summary")).await;
    type_into(&browser, "#recovery-code", &first[0]).await;
    click(c, Locator::Css("[data-method=RECOVERY_CODE]")).await;
    assert_eq!(
        redeem(&browser, &app, &app_key, &site, &id).await["method"],
        "RECOVERY_CODE"
    );

    // New codes in the settings, proved with a code sent by email: the old ones die.
    let id = open(&browser, &app, &app_key, &site, "MANAGE").await;
    look(&browser, "hosted-manage").await;
    prove_by_email(&browser, &app, 2).await;
    click(c, Locator::Css("[data-action=regenerate]")).await;
    let fresh = codes_on(&browser).await;
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|f| !first.contains(f)));
    look(&browser, "hosted-manage-codes").await;
    let dead = app
        .gql(Some(&app_key), VERIFY, json!({ "c": first[1] }))
        .await;
    assert_eq!(dead.error_code(), "INVALID_CODE");
    click(c, Locator::Css("input[name=saved]")).await;
    click(
        c,
        Locator::Css("main form[action='/hosted'] button[type=submit]"),
    )
    .await;

    // Turned off with another code by email.
    prove_by_email(&browser, &app, 3).await;
    click(c, Locator::Css("[data-action=disable]")).await;
    c.wait()
        .for_element(Locator::Css("[data-no-factor]"))
        .await
        .expect("2FA is off");
    look(&browser, "hosted-manage-off").await;
    click(c, Locator::Css("[data-done]")).await;
    let result = redeem(&browser, &app, &app_key, &site, &id).await;
    assert_eq!(result["completed"], true);
    let code = c
        .current_url()
        .await
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "twofold_result")
        .map(|(_, v)| v.into_owned())
        .unwrap();

    // A spent link, a forged one, and a spent or edited result code are refused.
    let made = app
        .gql(
            Some(&app_key),
            "mutation($r: String!) { createUserSession(userId: \"nino\", purpose: VERIFY, returnUrl: $r) { id url } }",
            json!({ "r": format!("{site}/done") }),
        )
        .await;
    let url = made.data()["createUserSession"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.goto(&url).await;
    click(c, Locator::Css("[data-cancel]")).await;
    c.wait()
        .for_element(Locator::XPath("//h1[text()='Back at Acme']"))
        .await
        .unwrap();
    browser.goto(&url).await;
    assert_eq!(text(&browser, "h1").await, "This link can't be used");
    look(&browser, "hosted-link-spent").await;
    let forged = format!("{}/hosted/start?link=tfl_{}", app.address, "a".repeat(52));
    browser.goto(&forged).await;
    assert_eq!(text(&browser, "h1").await, "This link can't be used");
    for (tried, session) in [(code.clone(), id.clone()), (format!("{code}x"), id.clone())] {
        let again = app
            .gql(Some(&app_key), REDEEM, json!({ "c": tried, "s": session }))
            .await;
        assert_eq!(again.error_code(), "INVALID_INPUT");
    }
    browser.close().await;
}

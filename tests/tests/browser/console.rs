//! The console in a real browser: an admin signs in, requires 2FA after the confirmation and
//! sees the overview change; an auditor, in Georgian on a phone, reads without a single
//! action. Every page is screenshotted (target/screenshots/console-*.png) and passes axe.

use fantoccini::Locator;
use serde_json::json;
use twofold_tests::browser::{Browser, BrowserOptions, ConsoleMessage, Viewport};
use twofold_tests::{spawn_app, TestApp};

const REQUIREMENT: &str = "query($u: ID!) { signInRequirement(userId: $u) { required } }";
const START: &str = "mutation { startTotpEnrollment(userId: \"carla\") { otpauthUri } }";
const CONFIRM: &str =
    "mutation($c: String!) { confirmTotpEnrollment(userId: \"carla\", code: $c) { codes } }";
const VERIFY: &str = "mutation($m: Method!, $c: String!) { verify(userId: \"carla\", method: $m, code: $c) { method } }";

/// A tenant with two users the service has seen and no one enrolled, and one enrolled user
/// who signed in four times today and typed three wrong codes.
pub(crate) async fn tenant(app: &TestApp) -> (String, String) {
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    for user in ["ana", "beka"] {
        app.gql(Some(&app_key), REQUIREMENT, json!({ "u": user }))
            .await
            .data();
    }
    let started = app.gql(Some(&app_key), START, json!({})).await;
    let uri = started.data()["startTotpEnrollment"]["otpauthUri"]
        .as_str()
        .unwrap()
        .to_owned();
    let totp = totp_rs::Totp::from_url(&uri).unwrap();
    let confirmed = app
        .gql(
            Some(&app_key),
            CONFIRM,
            json!({ "c": totp.generate_current().to_string() }),
        )
        .await;
    let codes = confirmed.data()["confirmTotpEnrollment"]["codes"].clone();
    for code in codes.as_array().unwrap().iter().take(4) {
        app.gql(
            Some(&app_key),
            VERIFY,
            json!({ "m": "RECOVERY_CODE", "c": code }),
        )
        .await
        .data();
    }
    for _ in 0..3 {
        let wrong = app
            .gql(
                Some(&app_key),
                VERIFY,
                json!({ "m": "RECOVERY_CODE", "c": "aaaaa-aaaaa" }),
            )
            .await;
        assert!(!wrong.body["errors"].is_null());
    }
    (admin, auditor)
}

/// What the page refused or failed to run (the 401 of a wrong key is the network's, and
/// expected).
fn policy_refusals(messages: &[ConsoleMessage]) -> Vec<&ConsoleMessage> {
    messages
        .iter()
        .filter(|m| {
            m.message.contains("Content Security Policy")
                || m.message.contains("Refused to")
                || (m.level == "SEVERE" && m.source != "network")
        })
        .collect()
}

pub(crate) async fn sign_in(browser: &Browser, app: &TestApp, key: &str) {
    browser
        .goto(&format!("{}/console/sign-in", app.address))
        .await;
    let c = browser.client();
    c.find(Locator::Css("input[name=key]"))
        .await
        .expect("the key field")
        .send_keys(key)
        .await
        .unwrap();
    click(c, Locator::Css("main button[type=submit]")).await;
    c.wait()
        .for_element(Locator::Css("[data-figure=users-seen]"))
        .await
        .expect("the overview after signing in");
}

pub(crate) async fn text(browser: &Browser, css: &str) -> String {
    browser
        .client()
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Clicks the element `locator` finds.
pub(crate) async fn click(c: &fantoccini::Client, locator: Locator<'_>) {
    c.find(locator)
        .await
        .unwrap_or_else(|e| panic!("{locator:?}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Screenshot and accessibility check of the page now shown.
pub(crate) async fn look(browser: &Browser, name: &str) {
    browser.screenshot(name).await;
    browser.assert_accessible(name).await;
}

#[tokio::test]
async fn an_admin_signs_in_and_requires_2fa_after_being_told_who_it_affects() {
    let app = spawn_app().await;
    let (admin, _) = tenant(&app).await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/console/sign-in", app.address))
        .await;
    look(&browser, "console-sign-in").await;
    // A wrong key: told so, beside the field.
    let c = browser.client();
    c.find(Locator::Css("input[name=key]"))
        .await
        .unwrap()
        .send_keys("tfk_abcdefgh_wrong")
        .await
        .unwrap();
    click(c, Locator::Css("main button[type=submit]")).await;
    assert_eq!(
        text(&browser, "#key-error").await,
        "That key is not valid or has been revoked."
    );
    look(&browser, "console-sign-in-refused").await;

    sign_in(&browser, &app, &admin).await;
    assert_eq!(text(&browser, "[data-figure=users-seen]").await, "3");
    // On a wide screen the navigation is shown as it is, without a menu button.
    assert!(visible(c, "header nav a").await);
    assert!(!visible(c, "header summary").await);
    // Tall enough for the chart, which the README shows.
    c.set_window_size(1280, 960).await.unwrap();
    look(&browser, "console-overview").await;
    c.set_window_size(1280, 800).await.unwrap();

    // htmx boosts the links: the page is swapped in, not reloaded (what the script set
    // survives), and the address bar follows.
    c.execute("window.twofoldMarker = 42", vec![])
        .await
        .unwrap();
    click(c, Locator::LinkText("Policy")).await;
    c.wait()
        .for_element(Locator::Css("form.policy"))
        .await
        .unwrap();
    assert_eq!(
        c.execute("return window.twofoldMarker", vec![])
            .await
            .unwrap(),
        json!(42),
        "a boosted link swaps the page in"
    );
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/policy"));
    look(&browser, "console-policy").await;
    click(c, Locator::Css("#enforceTwoFactor")).await;
    let grace = c
        .find(Locator::Css("#enrollmentGracePeriodDays"))
        .await
        .unwrap();
    grace.clear().await.unwrap();
    grace.send_keys("14").await.unwrap();
    click(c, Locator::Css("form.policy button[type=submit]")).await;
    let told = text(&browser, "[data-confirm-body]").await;
    assert!(told.contains(": 2."), "two users without 2FA: {told}");
    look(&browser, "console-policy-confirm").await;
    click(c, Locator::Css("[data-confirm] button[type=submit]")).await;
    c.wait()
        .for_element(Locator::Css("[data-saved]"))
        .await
        .expect("saved");
    click(c, Locator::LinkText("Overview")).await;
    c.wait()
        .for_element(Locator::Css("[data-figure=in-grace]"))
        .await
        .unwrap();
    assert_eq!(
        text(&browser, "[data-figure=enforcement]").await,
        "Required"
    );
    assert_eq!(text(&browser, "[data-figure=in-grace]").await, "2");

    click(c, Locator::LinkText("Sign out")).await;
    look(&browser, "console-sign-out").await;
    click(c, Locator::Css("main button[type=submit]")).await;
    c.wait()
        .for_element(Locator::Css("input[name=key]"))
        .await
        .unwrap();
    // The session is gone: the overview sends the browser back to sign in.
    browser.goto(&format!("{}/console", app.address)).await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/sign-in"));
    let refused = policy_refusals(&browser.console_messages().await)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert!(refused.is_empty(), "{refused:#?}");
}

/// The header's navigation is folded behind a menu button on a phone: the header takes at
/// most an eighth of the screen, and the keyboard opens the menu.
async fn menu_folds_on_a_phone(browser: &Browser) {
    let c = browser.client();
    let bottom = c
        .execute(
            "return document.querySelector('header.top').getBoundingClientRect().bottom",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        bottom.as_f64().unwrap() <= 812.0 / 8.0,
        "the header ends {bottom} px down"
    );
    assert!(!visible(c, "header nav a").await, "the menu starts folded");
    assert!(visible(c, "header summary").await);
    let menu = c.find(Locator::Css("header summary")).await.unwrap();
    menu.send_keys("\u{E007}").await.unwrap();
    assert!(visible(c, "header nav a").await, "Enter opens the menu");
    look(browser, "console-menu-ka-mobile").await;
    let focused = tab_from(c, c.active_element().await.unwrap()).await;
    assert_eq!(
        focused.attr("href").await.unwrap().as_deref(),
        Some("/console"),
        "Tab goes from the menu button to its first link"
    );
    menu.send_keys("\u{E007}").await.unwrap();
    assert!(!visible(c, "header nav a").await, "Enter folds it again");
}

/// Presses Tab in `element`; returns the element that has the focus then.
async fn tab_from(
    c: &fantoccini::Client,
    element: fantoccini::elements::Element,
) -> fantoccini::elements::Element {
    element.send_keys("\u{E004}").await.unwrap();
    c.active_element().await.unwrap()
}

/// Whether the first element `css` finds is shown.
async fn visible(c: &fantoccini::Client, css: &str) -> bool {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .is_displayed()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_auditor_reads_in_georgian_on_a_phone_with_no_action_offered() {
    let app = spawn_app().await;
    let (_, auditor) = tenant(&app).await;
    let browser = Browser::start_with(BrowserOptions {
        viewport: Viewport::Mobile,
        language: "ka".into(),
    })
    .await;
    sign_in(&browser, &app, &auditor).await;
    let c = browser.client();
    assert_eq!(
        c.find(Locator::Css("html"))
            .await
            .unwrap()
            .attr("lang")
            .await
            .unwrap()
            .as_deref(),
        Some("ka")
    );
    assert!(c.find(Locator::Css("[data-read-only]")).await.is_ok());
    look(&browser, "console-overview-ka-mobile").await;
    browser
        .goto(&format!("{}/console/policy", app.address))
        .await;
    look(&browser, "console-policy-ka-mobile").await;
    assert!(
        c.find_all(Locator::Css("form.policy button[type=submit]"))
            .await
            .unwrap()
            .is_empty(),
        "no save button for an auditor"
    );
    // Usable at 375 px: nothing wider than the screen.
    let width = c
        .execute("return document.documentElement.scrollWidth", vec![])
        .await
        .unwrap();
    assert!(
        width.as_u64().unwrap() <= 375,
        "the page is {width} px wide"
    );
    // The keyboard reaches the skip link first, and it is visible when focused.
    let focused = tab_from(c, c.find(Locator::Css("body")).await.unwrap()).await;
    assert_eq!(
        focused.attr("class").await.unwrap().as_deref(),
        Some("skip")
    );
    menu_folds_on_a_phone(&browser).await;
}

//! Email and SMS on the hosted pages: enrolling an address or a Georgian number (refused numbers
//! explained in the page's language), and signing in with a code sent by either. Codes are read
//! from what the in-process SMTP server and SMS provider received.

use serde_json::json;

use super::flows::{recovery_codes, result_of};
use super::links::{redeem, tenant, CREATE, RETURN};
use crate::channels::{mailed_code, texted_code};
use crate::console::{Answer, Browser};
use crate::sign_in::Acme;
use twofold_tests::TestApp;

/// Opens a new link in `language`: the browser on its first page, and the link's id.
async fn visit_in(
    app: &TestApp,
    acme: &Acme,
    purpose: &str,
    language: Option<&str>,
) -> (Browser, Answer, String) {
    let made = app
        .gql(
            Some(&acme.app),
            CREATE,
            json!({ "u": "nino", "p": purpose, "r": RETURN, "l": language }),
        )
        .await;
    let made = &made.data()["createUserSession"];
    let url = made["url"].as_str().unwrap();
    let mut browser = Browser::new(app);
    let opened = browser.get(url.strip_prefix(&app.address).unwrap()).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let page = browser.get("/hosted").await;
    assert_eq!(page.status, 200, "{}", page.body);
    (browser, page, made["id"].as_str().unwrap().to_owned())
}

/// Confirms the code page's challenge with `code`, saves the recovery codes and returns the
/// redeemed result.
async fn confirm_and_finish(
    app: &TestApp,
    acme: &Acme,
    browser: &mut Browser,
    sent: &Answer,
    code: &str,
    id: &str,
) -> serde_json::Value {
    let csrf = sent.field("csrf");
    let wrong = browser
        .post(
            "/hosted/enroll/channel/confirm",
            &[
                ("csrf", &csrf),
                ("challenge", &sent.field("challenge")),
                ("method", &sent.field("method")),
                ("sent_to", &sent.field("sent_to")),
                ("code", if code == "000000" { "111111" } else { "000000" }),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    assert!(wrong.body.contains("data-error"));
    let confirmed = browser
        .post(
            "/hosted/enroll/channel/confirm",
            &[
                ("csrf", &csrf),
                ("challenge", &sent.field("challenge")),
                ("code", code),
            ],
        )
        .await;
    assert_eq!(recovery_codes(&confirmed).len(), 10, "{}", confirmed.body);
    let back = browser
        .post(
            "/hosted/done",
            &[
                ("csrf", &csrf),
                ("enrolled", &confirmed.field("enrolled")),
                ("saved", "on"),
            ],
        )
        .await;
    redeem(app, &acme.app, &result_of(&back), id).await.data()["redeemUserSession"].clone()
}

/// Signs in on the pages with a code sent by `channel`, read by `received`.
async fn sign_in_by(
    app: &TestApp,
    acme: &Acme,
    channel: &str,
    language: Option<&str>,
) -> (Answer, Browser, String) {
    let (mut browser, page, id) = visit_in(app, acme, "VERIFY", language).await;
    assert!(
        page.body.contains(&format!("data-method=\"{channel}\"")),
        "{}",
        page.body
    );
    let sent = browser
        .post(
            "/hosted/verify/send",
            &[("csrf", &page.field("csrf")), ("channel", channel)],
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(
        sent.body.contains("data-resend-at"),
        "a resend with its countdown"
    );
    (sent, browser, id)
}

#[tokio::test]
async fn an_email_address_is_enrolled_and_signs_in_on_the_pages() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (mut browser, page, id) = visit_in(&app, &acme, "ENROLL", None).await;
    assert!(page.body.contains("data-method=\"EMAIL\""), "{}", page.body);
    let csrf = page.field("csrf");
    let form = browser
        .post("/hosted/enroll/email", &[("csrf", &csrf)])
        .await;
    assert!(form.body.contains("name=\"email\""), "{}", form.body);
    let refused = browser
        .post(
            "/hosted/enroll/email/send",
            &[("csrf", &csrf), ("email", "nino at acme")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("look like an email address"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("value=\"nino at acme\""),
        "what was typed stays"
    );
    let sent = browser
        .post(
            "/hosted/enroll/email/send",
            &[("csrf", &csrf), ("email", "nino@acme.ge")],
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.body.contains("data-sent-to"));
    let code = mailed_code(&app, 1).await;
    let result = confirm_and_finish(&app, &acme, &mut browser, &sent, &code, &id).await;
    assert_eq!(result["method"], "EMAIL");

    let (sent, mut browser, id) = sign_in_by(&app, &acme, "EMAIL", None).await;
    let code = mailed_code(&app, 2).await;
    let back = browser
        .post(
            "/hosted/verify",
            &[
                ("csrf", &sent.field("csrf")),
                ("method", "EMAIL"),
                ("challenge", &sent.field("challenge")),
                ("code", &code),
            ],
        )
        .await;
    let result = redeem(&app, &acme.app, &result_of(&back), &id).await;
    assert_eq!(result.data()["redeemUserSession"]["method"], "EMAIL");
}

#[tokio::test]
async fn a_georgian_number_is_enrolled_in_georgian_refused_numbers_explained_and_signs_in_by_sms() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    app.gql(
        Some(&acme.admin),
        "mutation { setPolicy(input: { allowedCallingCodes: [\"995\"] }) { allowedCallingCodes } }",
        json!({}),
    )
    .await
    .data();
    let (mut browser, page, id) = visit_in(&app, &acme, "ENROLL", Some("ka")).await;
    assert!(page.body.contains("lang=\"ka\""));
    let csrf = page.field("csrf");
    let form = browser.post("/hosted/enroll/sms", &[("csrf", &csrf)]).await;
    assert!(
        form.body.contains("მობილური ტელეფონის გამოყენება"),
        "{}",
        form.body
    );
    let first = form.body.split("<option value=\"").nth(1).unwrap();
    assert!(first.starts_with("995\""), "+995 first: {first}");
    assert!(form.body.contains("name=\"phone\""));

    // No country code chosen or typed: told how to write it, in Georgian.
    let missing = browser
        .post(
            "/hosted/enroll/sms/send",
            &[("csrf", &csrf), ("country", ""), ("phone", "555 12 34 56")],
        )
        .await;
    assert_eq!(missing.status, 422, "{}", missing.body);
    assert!(
        missing.body.contains("აირჩიეთ ქვეყნის კოდი"),
        "{}",
        missing.body
    );
    // A country the organisation does not serve.
    let abroad = browser
        .post(
            "/hosted/enroll/sms/send",
            &[
                ("csrf", &csrf),
                ("country", "995"),
                ("phone", "+1 202 555 0143"),
            ],
        )
        .await;
    assert_eq!(abroad.status, 422, "{}", abroad.body);
    assert!(
        abroad.body.contains("+1") && abroad.body.contains("+995"),
        "{}",
        abroad.body
    );
    assert_eq!(
        app.twilio.requests().len(),
        0,
        "nothing sent for a refused number"
    );

    // The national number after the chosen code, with its trunk 0.
    let sent = browser
        .post(
            "/hosted/enroll/sms/send",
            &[
                ("csrf", &csrf),
                ("country", "995"),
                ("phone", "0555 12 34 56"),
            ],
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let code = texted_code(&app, 1).await;
    assert_eq!(app.twilio.delivered()[0].to, "+995555123456");
    let result = confirm_and_finish(&app, &acme, &mut browser, &sent, &code, &id).await;
    assert_eq!(result["method"], "SMS");

    let (sent, mut browser, id) = sign_in_by(&app, &acme, "SMS", Some("ka")).await;
    assert!(
        sent.body.contains("შეიყვანეთ გამოგზავნილი კოდი"),
        "{}",
        sent.body
    );
    let code = texted_code(&app, 2).await;
    let back = browser
        .post(
            "/hosted/verify",
            &[
                ("csrf", &sent.field("csrf")),
                ("method", "SMS"),
                ("challenge", &sent.field("challenge")),
                ("code", &code),
            ],
        )
        .await;
    let result = redeem(&app, &acme.app, &result_of(&back), &id).await;
    assert_eq!(result.data()["redeemUserSession"]["method"], "SMS");
}

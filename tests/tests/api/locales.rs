//! Codes in the user's language (issue 17, point 2): the user's locale, else the tenant's
//! default, else English; mails decoded with a standard mail parser; SMS in one segment with
//! the code first, and the autofill line only when the tenant has a web origin.

use std::time::Duration;

use mail_parser::MessageParser;
use serde_json::{json, Value};
use twofold_tests::fakes::extract_code;
use twofold_tests::{spawn_app, Answer, TestApp};

const ADD_EMAIL: &str = "mutation($u: ID!, $e: String!, $l: String) { addEmail(userId: $u, email: $e, locale: $l) { id } }";
const ADD_PHONE: &str = "mutation($u: ID!, $p: String!, $l: String) { addPhone(userId: $u, phone: $p, locale: $l) { id } }";
const CONFIRM: &str = "mutation($u: ID!, $c: ID!, $k: String!) { confirmChannel(userId: $u, challengeId: $c, code: $k) { codes } }";
const SEND: &str =
    "mutation($u: ID!, $l: String) { sendCode(userId: $u, channel: SMS, locale: $l) { id } }";
const LOCALE: &str = "query($u: ID!) { user(userId: $u) { locale } }";
const POLICY: &str =
    "mutation($i: PolicyInput!) { setPolicy(input: $i) { defaultLocale webOrigin } }";

const WAIT: Duration = Duration::from_secs(20);

async fn tenant(app: &TestApp) -> (String, String) {
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, key) = app.issue_key(&admin, "APP").await;
    (admin, key)
}

async fn gql(app: &TestApp, key: &str, q: &str, v: Value) -> Answer {
    app.gql(Some(key), q, v).await
}

/// The `n`-th mail (1-based), parsed by `mail-parser`: (subject, plain text, HTML).
async fn parsed_mail(app: &TestApp, n: usize) -> (String, String, String) {
    let mails = app.smtp.wait_for(n, WAIT).await;
    let raw = mails[n - 1].data.clone();
    assert!(
        raw.lines().all(|l| l.is_ascii()),
        "headers and bodies are transfer-encoded: {raw}"
    );
    let message = MessageParser::default()
        .parse(raw.as_bytes())
        .expect("a parsable mail");
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    (
        message.subject().expect("a subject").to_owned(),
        message.body_text(0).expect("a plain part").into_owned(),
        message.body_html(0).expect("an HTML part").into_owned(),
    )
}

/// Text with every run of white space made one space (bodies are wrapped at 72 characters).
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_gsm7_letter(c: char) -> bool {
    c.is_ascii() || "äöüÄÖÜßéèàùìòÇñÑ".contains(c)
}

#[tokio::test]
async fn a_georgian_user_gets_georgian_mail_and_sms() {
    let app = spawn_app().await;
    let (_, key) = tenant(&app).await;
    let c = gql(
        &app,
        &key,
        ADD_PHONE,
        json!({ "u": "nino", "p": "+995 555 12 34 56", "l": "ka" }),
    )
    .await;
    let phone_challenge = c.data()["addPhone"]["id"].as_str().unwrap().to_owned();
    let sms = app.twilio.wait_for_delivered(1, WAIT).await[0].body.clone();
    let code = extract_code(&sms, 6).expect("a code");
    assert!(sms.starts_with(&format!("{code} — Acme-ის ")), "{sms}");
    assert!(sms.contains("დადასტურების კოდი. ვადა: "), "{sms}");
    assert!(sms.contains(" წუთი."), "{sms}");
    assert!(!sms.contains('@'), "no web origin, no autofill line: {sms}");
    assert!(sms.chars().any(|c| ('\u{10D0}'..='\u{10FF}').contains(&c)));
    assert!(
        sms.encode_utf16().count() <= 70,
        "one UCS-2 segment: {} units: {sms}",
        sms.encode_utf16().count()
    );
    assert_eq!(
        gql(&app, &key, LOCALE, json!({ "u": "nino" })).await.data()["user"]["locale"],
        "ka"
    );

    // The email, also in Georgian: the user's locale holds without repeating it.
    gql(
        &app,
        &key,
        ADD_EMAIL,
        json!({ "u": "nino", "e": "nino@example.ge" }),
    )
    .await
    .data();
    let (subject, plain, html) = parsed_mail(&app, 1).await;
    assert_eq!(subject, "Acme — თქვენი დადასტურების კოდი");
    let plain = flat(&plain);
    assert!(
        plain.starts_with("თქვენი Acme-ის დადასტურების კოდი: "),
        "{plain}"
    );
    assert!(
        plain.contains(
            "შეიყვანეთ იგი ამ ელფოსტის მისამართის დასადასტურებლად. კოდის მოქმედების ვადაა "
        ),
        "{plain}"
    );
    assert!(
        plain.contains(" წუთი, მისი გამოყენება მხოლოდ ერთხელ შეიძლება."),
        "{plain}"
    );
    assert!(html.contains("<html lang=\"ka\">"), "{html}");
    assert!(
        flat(&html).contains("თქვენი Acme-ის დადასტურების კოდი:"),
        "{html}"
    );
    let mail_code = extract_code(&plain, 6).expect("a code in the mail");
    assert!(html.contains(&mail_code));

    // Both codes work.
    gql(
        &app,
        &key,
        CONFIRM,
        json!({ "u": "nino", "c": phone_challenge, "k": code }),
    )
    .await
    .data();
}

#[tokio::test]
async fn a_regional_tag_reads_its_language_and_the_tenant_default_comes_next() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app).await;
    gql(
        &app,
        &key,
        ADD_EMAIL,
        json!({ "u": "urs", "e": "urs@example.ch", "l": "de-ch" }),
    )
    .await
    .data();
    let (subject, plain, _) = parsed_mail(&app, 1).await;
    assert_eq!(subject, "Ihr Bestätigungscode für Acme");
    assert!(flat(&plain).contains("Geben Sie ihn ein, um diese E-Mail-Adresse zu bestätigen."));
    assert_eq!(
        gql(&app, &key, LOCALE, json!({ "u": "urs" })).await.data()["user"]["locale"],
        "de-CH",
        "kept in canonical case"
    );

    // A user without a locale: English, then the tenant's default once it has one.
    gql(
        &app,
        &key,
        ADD_EMAIL,
        json!({ "u": "amy", "e": "amy@example.com" }),
    )
    .await
    .data();
    let (subject, _, _) = parsed_mail(&app, 2).await;
    assert_eq!(subject, "Your Acme verification code");
    let p = gql(
        &app,
        &admin,
        POLICY,
        json!({ "i": { "defaultLocale": "fr" } }),
    )
    .await;
    assert_eq!(p.data()["setPolicy"]["defaultLocale"], "fr");
    gql(
        &app,
        &key,
        ADD_EMAIL,
        json!({ "u": "zoe", "e": "zoe@example.fr" }),
    )
    .await
    .data();
    let (subject, plain, _) = parsed_mail(&app, 3).await;
    assert_eq!(subject, "Votre code de vérification Acme");
    assert!(
        plain.starts_with("Votre code de vérification Acme est\u{a0}:"),
        "{plain}"
    );
    assert_eq!(
        gql(&app, &key, LOCALE, json!({ "u": "zoe" })).await.data()["user"]["locale"],
        Value::Null,
        "the tenant's default is not the user's choice"
    );
    // The user's own locale still comes first.
    gql(
        &app,
        &key,
        ADD_EMAIL,
        json!({ "u": "eva", "e": "eva@example.es", "l": "es" }),
    )
    .await
    .data();
    let (subject, _, _) = parsed_mail(&app, 4).await;
    assert_eq!(subject, "Tu código de verificación de Acme");
}

#[tokio::test]
async fn an_unknown_or_malformed_locale_is_invalid_input_and_changes_nothing() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app).await;
    for (locale, says) in [("it", "not supported"), ("de_CH", "BCP 47"), ("", "BCP 47")] {
        let a = gql(
            &app,
            &key,
            ADD_PHONE,
            json!({ "u": "ivo", "p": "+995 555 12 34 50", "l": locale }),
        )
        .await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{locale}");
        assert!(a.error_message().contains(says), "{}", a.error_message());
        let a = gql(
            &app,
            &key,
            ADD_EMAIL,
            json!({ "u": "ivo", "e": "ivo@example.com", "l": locale }),
        )
        .await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{locale}");
        let a = gql(&app, &key, SEND, json!({ "u": "ivo", "l": locale })).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{locale}");
    }
    assert_eq!(app.count_events_like("%/user/ivo", "%").await, 0);
    for (field, value) in [
        ("defaultLocale", "xx"),
        ("defaultLocale", "de-"),
        ("webOrigin", "http://login.acme.ge"),
        ("webOrigin", "https://login.acme.ge/path"),
    ] {
        let a = gql(&app, &admin, POLICY, json!({ "i": { field: value } })).await;
        assert_eq!(a.error_code(), "INVALID_INPUT", "{field} {value}");
        assert!(a.error_message().contains(field), "{}", a.error_message());
    }
    assert_eq!(app.count_events_like("%", "TwoFactorPolicySet").await, 0);
    assert!(app.twilio.requests().is_empty());
    assert!(app.smtp.messages().is_empty());
}

#[tokio::test]
async fn the_autofill_line_ends_an_sms_only_when_the_tenant_has_a_web_origin() {
    let app = spawn_app().await;
    let (admin, key) = tenant(&app).await;
    let c = gql(
        &app,
        &key,
        ADD_PHONE,
        json!({ "u": "leo", "p": "+995 555 12 34 51", "l": "en-GB" }),
    )
    .await;
    let id = c.data()["addPhone"]["id"].as_str().unwrap().to_owned();
    let sms = app.twilio.wait_for_delivered(1, WAIT).await[0].body.clone();
    let code = extract_code(&sms, 6).unwrap();
    assert!(
        sms.starts_with(&format!(
            "{code} is your Acme verification code. Valid for "
        )),
        "{sms}"
    );
    assert!(sms.ends_with(" minutes. Do not share it."), "{sms}");
    gql(
        &app,
        &key,
        CONFIRM,
        json!({ "u": "leo", "c": id, "k": code }),
    )
    .await
    .data();

    let p = gql(
        &app,
        &admin,
        POLICY,
        json!({ "i": { "webOrigin": "https://Login.Acme.ge/" } }),
    )
    .await;
    assert_eq!(p.data()["setPolicy"]["webOrigin"], "https://login.acme.ge");
    gql(&app, &key, SEND, json!({ "u": "leo", "l": "de" }))
        .await
        .data();
    let sms = app.twilio.wait_for_delivered(2, WAIT).await[1].body.clone();
    let code = extract_code(&sms, 6).unwrap();
    assert!(
        sms.starts_with(&format!("{code} ist Ihr Anmeldecode für Acme. ")),
        "{sms}"
    );
    assert!(
        sms.ends_with(&format!("\n\n@login.acme.ge #{code}")),
        "{sms}"
    );
    assert!(sms.chars().all(is_gsm7_letter), "GSM-7: {sms}");
    assert!(sms.chars().count() <= 160, "{sms}");
    assert_eq!(
        gql(&app, &key, LOCALE, json!({ "u": "leo" })).await.data()["user"]["locale"],
        "de"
    );

    // Removed again: no autofill line.
    gql(&app, &admin, POLICY, json!({ "i": { "webOrigin": "" } }))
        .await
        .data();
    gql(
        &app,
        &key,
        ADD_PHONE,
        json!({ "u": "max", "p": "+995 555 12 34 52" }),
    )
    .await
    .data();
    let sms = app.twilio.wait_for_delivered(3, WAIT).await[2].body.clone();
    assert!(sms.ends_with("Do not share it."), "{sms}");
    assert!(!sms.contains('@'), "{sms}");
}

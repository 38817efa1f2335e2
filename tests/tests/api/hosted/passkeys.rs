//! Passkeys on the hosted pages over HTTP, the browser's part played by the WebAuthn tests'
//! software authenticator: offered only where the tenant's relying party admits the pages' own
//! origin; registered as the first factor with the recovery codes after it; a forged, garbage
//! or wrong-origin answer refused in words, changing nothing; a sign-in's assertion ending the
//! flow with WEBAUTHN; a sign-in's session unable to register one.

use serde_json::{json, Value};
use twofold_tests::{spawn_app_with, TestApp, TestOptions};

use super::flows::{recovery_codes, result_of};
use super::links::{redeem, tenant, CREATE, RETURN};
use crate::console::{Answer, Browser};
use crate::sign_in::Acme;
use crate::webauthn::authenticator::{Context, SoftKey};

const SET_POLICY: &str =
    "mutation($i: PolicyInput!) { setPolicy(input: $i) { allowedMethods webAuthn { origins } } }";
const STATUS: &str =
    "query($u: ID!) { user(userId: $u) { enabled methods webAuthnCredentials { id } } }";
const REFUSED: &str = "Your passkey&#39;s answer could not be accepted.";

/// The service with its pages at `http://localhost:PORT`: browsers run WebAuthn only in a
/// secure context, and `localhost` is one over plain http.
async fn app() -> TestApp {
    spawn_app_with(TestOptions {
        public_url: Some("http://localhost:{port}".into()),
        ..TestOptions::default()
    })
    .await
}

fn pages_origin(app: &TestApp) -> String {
    app.address.replace("127.0.0.1", "localhost")
}

/// Acme, returning to app.acme.ge, whose relying party `localhost` lists `origins`.
async fn acme(app: &TestApp, origins: &[String]) -> Acme {
    let acme = tenant(app, "Acme").await;
    set_origins(app, &acme, origins).await;
    acme
}

async fn set_origins(app: &TestApp, acme: &Acme, origins: &[String]) {
    app.gql(
        Some(&acme.admin),
        SET_POLICY,
        json!({ "i": {
            "allowedMethods": ["TOTP", "RECOVERY_CODE", "WEBAUTHN"],
            "trustedDeviceDays": 30,
            "webAuthn": { "rpId": "localhost", "rpName": "Acme", "origins": origins },
        }}),
    )
    .await
    .data();
}

/// A new link for `user` and `purpose`, opened: the browser on its first page, and the id.
async fn open(app: &TestApp, acme: &Acme, user: &str, purpose: &str) -> (Browser, Answer, String) {
    let made = app
        .gql(
            Some(&acme.app),
            CREATE,
            json!({ "u": user, "p": purpose, "r": RETURN }),
        )
        .await;
    let made = &made.data()["createUserSession"];
    let url = made["url"].as_str().unwrap();
    let path = url
        .strip_prefix(&pages_origin(app))
        .unwrap_or_else(|| panic!("{url} is not on the pages' origin"));
    let mut browser = Browser::new(app);
    let opened = browser.get(path).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let page = browser.get("/hosted").await;
    assert_eq!(page.status, 200, "{}", page.body);
    (browser, page, made["id"].as_str().unwrap().to_owned())
}

/// The value of `attribute` on the first element that has it, unescaped as a browser reads it.
fn attribute(page: &Answer, attribute: &str) -> String {
    let marker = format!("{attribute}=\"");
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {attribute} in {}", page.body))
        + marker.len();
    let end = page.body[start..].find('"').unwrap() + start;
    page.body[start..end]
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A started registration on the pages: its challenge id and options.
async fn start_registration(browser: &mut Browser, csrf: &str) -> (String, String) {
    let started = browser
        .post("/hosted/enroll/webauthn", &[("csrf", csrf)])
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert!(
        started.body.contains("data-passkey=\"create\""),
        "{}",
        started.body
    );
    // As a browser without JavaScript shows it: the words, and no button to press.
    assert!(
        started
            .body
            .contains("<p data-passkey-unsupported>Passkeys need a browser that supports them"),
        "{}",
        started.body
    );
    assert!(
        started.body.contains("data-passkey-run hidden>"),
        "{}",
        started.body
    );
    (
        started.field("challenge_id"),
        attribute(&started, "data-options"),
    )
}

async fn finish(browser: &mut Browser, csrf: &str, challenge_id: &str, credential: &str) -> Answer {
    browser
        .post(
            "/hosted/enroll/webauthn/finish",
            &[
                ("csrf", csrf),
                ("challenge_id", challenge_id),
                ("credential", credential),
            ],
        )
        .await
}

async fn status(app: &TestApp, acme: &Acme, user: &str) -> Value {
    app.gql(Some(&acme.app), STATUS, json!({ "u": user }))
        .await
        .data()["user"]
        .clone()
}

/// Registers `soft` for `user` on the ENROLL pages and saves the codes: the redeemed result.
async fn enroll(app: &TestApp, acme: &Acme, user: &str, soft: &mut SoftKey) -> Value {
    let (mut browser, page, id) = open(app, acme, user, "ENROLL").await;
    let csrf = page.field("csrf");
    let (challenge_id, options) = start_registration(&mut browser, &csrf).await;
    let credential = soft.register(&options, &Context::at(&pages_origin(app)));
    let codes = finish(&mut browser, &csrf, &challenge_id, &credential).await;
    assert_eq!(codes.status, 200, "{}", codes.body);
    assert_eq!(recovery_codes(&codes).len(), 10, "{}", codes.body);
    let back = browser
        .post(
            "/hosted/done",
            &[
                ("csrf", &csrf),
                ("enrolled", &codes.field("enrolled")),
                ("saved", "on"),
            ],
        )
        .await;
    redeem(app, &acme.app, &result_of(&back), &id).await.data()["redeemUserSession"].clone()
}

#[tokio::test]
async fn passkeys_are_offered_only_where_the_relying_party_admits_the_pages_origin() {
    let app = app().await;
    // The tenant's own sign-in page, not the pages: a browser would refuse the ceremony here.
    let acme = acme(&app, &["http://localhost:1".to_owned()]).await;
    let (mut browser, page, _) = open(&app, &acme, "nino", "ENROLL").await;
    assert!(page.body.contains("data-method=\"TOTP\""), "{}", page.body);
    assert!(
        !page.body.contains("data-method=\"WEBAUTHN\""),
        "{}",
        page.body
    );
    let csrf = page.field("csrf");
    let forged = browser
        .post("/hosted/enroll/webauthn", &[("csrf", &csrf)])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    // Refused before the use-case: the user was never written.
    assert_eq!(status(&app, &acme, "nino").await, Value::Null);

    set_origins(
        &app,
        &acme,
        &["http://localhost:1".to_owned(), pages_origin(&app)],
    )
    .await;
    let (_, page, _) = open(&app, &acme, "nino", "ENROLL").await;
    assert!(
        page.body.contains("data-method=\"WEBAUTHN\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("action=\"/hosted/enroll/webauthn\""),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_passkey_enrolled_on_the_pages_signs_in_with_webauthn_trusting_the_browser() {
    let app = app().await;
    let acme = acme(&app, &[pages_origin(&app)]).await;
    let mut soft = SoftKey::new();
    let enrolled = enroll(&app, &acme, "nino", &mut soft).await;
    assert_eq!(enrolled["completed"], true);
    assert_eq!(enrolled["method"], "WEBAUTHN");
    let now = status(&app, &acme, "nino").await;
    assert_eq!(now["enabled"], true);
    assert_eq!(now["webAuthnCredentials"].as_array().unwrap().len(), 1);

    let (mut browser, page, id) = open(&app, &acme, "nino", "VERIFY").await;
    assert!(
        page.body.contains("data-method=\"WEBAUTHN\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-passkey=\"get\""), "{}", page.body);
    let csrf = page.field("csrf");
    let challenge_id = page.field("challenge_id");
    let assertion = soft.sign(
        &attribute(&page, "data-options"),
        &Context::at(&pages_origin(&app)),
    );
    let back = browser
        .post(
            "/hosted/verify",
            &[
                ("csrf", &csrf),
                ("method", "WEBAUTHN"),
                ("challenge_id", &challenge_id),
                ("code", &assertion),
                ("trust", "on"),
            ],
        )
        .await;
    let result = redeem(&app, &acme.app, &result_of(&back), &id).await;
    let result = &result.data()["redeemUserSession"];
    assert_eq!(result["completed"], true);
    assert_eq!(result["method"], "WEBAUTHN");
    assert!(result["deviceToken"].is_string(), "{result}");
}

/// What a browser posts for a registration's options.
type Answering<'a> = dyn Fn(&str, &mut SoftKey) -> String + 'a;

#[tokio::test]
async fn a_forged_garbage_or_wrong_origin_credential_is_refused_in_words_and_changes_nothing() {
    let app = app().await;
    let acme = acme(&app, &[pages_origin(&app)]).await;
    let (mut browser, page, id) = open(&app, &acme, "nino", "ENROLL").await;
    let csrf = page.field("csrf");
    let mut soft = SoftKey::new();
    let forged = json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": { "attestationObject": "AAAA", "clientDataJSON": "AAAA" },
        "clientExtensionResults": {},
    })
    .to_string();
    let answers: [&Answering<'_>; 4] = [
        &|_, _| "not json at all".to_owned(),
        &|_, _| forged.clone(),
        &|_, _| String::new(),
        // Made by a real authenticator, for a page on another site.
        &|options, soft| soft.register(options, &Context::at("https://evil.example")),
    ];
    for (i, answer) in answers.iter().enumerate() {
        let (challenge_id, options) = start_registration(&mut browser, &csrf).await;
        let credential = answer(&options, &mut soft);
        let refused = finish(&mut browser, &csrf, &challenge_id, &credential).await;
        assert_eq!(refused.status, 422, "answer {i}: {}", refused.body);
        assert!(
            refused.body.contains(REFUSED),
            "answer {i}: {}",
            refused.body
        );
        // Back at the choice, which starts a new ceremony.
        assert!(
            refused.body.contains("data-method=\"WEBAUTHN\""),
            "{}",
            refused.body
        );
        let now = status(&app, &acme, "nino").await;
        assert_eq!(now["enabled"], false, "answer {i}");
        assert_eq!(now["webAuthnCredentials"], json!([]), "answer {i}");
    }
    // The session lives on: a real answer for the pages' origin still enrolls.
    let (challenge_id, options) = start_registration(&mut browser, &csrf).await;
    let credential = soft.register(&options, &Context::at(&pages_origin(&app)));
    let codes = finish(&mut browser, &csrf, &challenge_id, &credential).await;
    assert_eq!(recovery_codes(&codes).len(), 10, "{}", codes.body);
    let back = browser
        .post(
            "/hosted/done",
            &[
                ("csrf", &csrf),
                ("enrolled", &codes.field("enrolled")),
                ("saved", "on"),
            ],
        )
        .await;
    let result = redeem(&app, &acme.app, &result_of(&back), &id).await;
    assert_eq!(result.data()["redeemUserSession"]["method"], "WEBAUTHN");
}

#[tokio::test]
async fn a_sign_in_cannot_register_a_passkey_and_a_wrong_assertion_is_refused_in_words() {
    let app = app().await;
    let acme = acme(&app, &[pages_origin(&app)]).await;
    let mut soft = SoftKey::new();
    enroll(&app, &acme, "nino", &mut soft).await;
    let (mut browser, page, _) = open(&app, &acme, "nino", "VERIFY").await;
    let csrf = page.field("csrf");
    let challenge_id = page.field("challenge_id");
    let options = attribute(&page, "data-options");
    let credential = json!({ "id": "AAAA", "type": "public-key" }).to_string();
    for (path, form) in [
        ("/hosted/enroll/webauthn", vec![("csrf", csrf.as_str())]),
        (
            "/hosted/enroll/webauthn/finish",
            vec![
                ("csrf", csrf.as_str()),
                ("challenge_id", challenge_id.as_str()),
                ("credential", credential.as_str()),
            ],
        ),
    ] {
        let refused = browser.post(path, &form).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
    }
    let now = status(&app, &acme, "nino").await;
    assert_eq!(now["webAuthnCredentials"].as_array().unwrap().len(), 1);

    // An assertion for another site: told so, no result; the page offers a new ceremony.
    let wrong = soft.sign(&options, &Context::at("https://evil.example"));
    let refused = browser
        .post(
            "/hosted/verify",
            &[
                ("csrf", &csrf),
                ("method", "WEBAUTHN"),
                ("challenge_id", &challenge_id),
                ("code", &wrong),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains(REFUSED), "{}", refused.body);
    assert_ne!(refused.field("challenge_id"), challenge_id);
}

#[tokio::test]
async fn an_enrolled_user_adds_no_passkey_through_an_enrollment_without_proof() {
    let app = app().await;
    let acme = acme(&app, &[pages_origin(&app)]).await;
    let mut soft = SoftKey::new();
    enroll(&app, &acme, "nino", &mut soft).await;
    let (mut browser, page, _) = open(&app, &acme, "nino", "ENROLL").await;
    assert!(page.body.contains("data-enrolled"), "{}", page.body);
    assert!(
        !page.body.contains("data-method=\"WEBAUTHN\""),
        "{}",
        page.body
    );
    // A post the page does not offer: the API's rule for a further factor (proof) holds.
    let csrf = page.field("csrf");
    let refused = browser
        .post("/hosted/enroll/webauthn", &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("data-enrolled"), "{}", refused.body);
    assert!(!refused.body.contains("data-passkey="), "{}", refused.body);
    // Said in words for the user, not the API's demand for proof.
    assert!(!refused.body.contains("proof"), "{}", refused.body);
    let now = status(&app, &acme, "nino").await;
    assert_eq!(now["webAuthnCredentials"].as_array().unwrap().len(), 1);
}

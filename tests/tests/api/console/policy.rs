//! The policy page: every field of `setPolicy` in one form, the API's messages beside the
//! field, a confirmation before enforcement, and nothing for an AUDITOR to press.

use serde_json::{json, Value};
use twofold_tests::{spawn_app, TestApp};

use super::{Answer, Browser};
use crate::sign_in::{acme, requirement};
use crate::totp::enroll;

const POLICY: &str = "{ tenant { policy { enforceTwoFactor enrollmentGracePeriodDays allowedMethods allowedCallingCodes ssoBypassesTwoFactor trustedDeviceDays codeDigits codeTtlSeconds totpDigits totpAlgorithm smsHourlyBudget emailHourlyBudget requestsPerSecondPerKey defaultLocale webOrigin securityNotifications } } }";

async fn policy(app: &TestApp, key: &str) -> Value {
    app.gql(Some(key), POLICY, json!({})).await.data()["tenant"]["policy"].clone()
}

/// The page's form as the browser would send it back unchanged, with `changes` applied
/// (a value of `None` unticks a box or drops a field).
fn form_of(page: &Answer, changes: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let body = &page.body;
    for input in body.split("<input").skip(1) {
        let tag = &input[..input.find('>').unwrap()];
        let attr = |name: &str| {
            let marker = format!("{name}=\"");
            tag.find(&marker).map(|i| {
                let rest = &tag[i + marker.len()..];
                rest[..rest.find('"').unwrap()].to_owned()
            })
        };
        let Some(name) = attr("name") else { continue };
        let checkbox = tag.contains("type=\"checkbox\"");
        if checkbox && !tag.contains(" checked") {
            continue;
        }
        pairs.push((name, attr("value").unwrap_or_default()));
    }
    for select in body.split("<select").skip(1) {
        let name = select
            .split("name=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let chosen = select
            .split("<option")
            .find(|o| o.contains(" selected"))
            .and_then(|o| o.split("value=\"").nth(1))
            .map(|v| v.split('"').next().unwrap().to_owned())
            .unwrap_or_default();
        pairs.push((name.to_owned(), chosen));
    }
    for area in body.split("<textarea").skip(1) {
        let name = area
            .split("name=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let text = area
            .split('>')
            .nth(1)
            .unwrap()
            .split("</textarea")
            .next()
            .unwrap();
        pairs.push((name.to_owned(), text.to_owned()));
    }
    for (name, value) in changes {
        if name.ends_with("[]") {
            let name = name.trim_end_matches("[]");
            pairs.push((name.to_owned(), value.unwrap().to_owned()));
            continue;
        }
        pairs.retain(|(k, v)| {
            k != name || (*name == "allowedMethods" && Some(v.as_str()) != *value)
        });
        if let Some(v) = value {
            if *name != "allowedMethods" {
                pairs.push(((*name).to_owned(), (*v).to_owned()));
            }
        }
    }
    pairs
}

async fn post(browser: &mut Browser, pairs: &[(String, String)]) -> Answer {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.post("/console/policy", &pairs).await
}

#[tokio::test]
async fn an_admin_changes_the_policy_through_the_form_and_reads_it_back() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&t.admin).await.status, 303);
    let page = browser.get("/console/policy").await;
    assert_eq!(page.status, 200, "{}", page.body);
    // Sent back unchanged: saved, and nothing recorded.
    let before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'TwoFactorPolicySet'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let same = post(&mut browser, &form_of(&page, &[])).await;
    assert_eq!(same.status, 303, "{}", same.body);
    let after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'TwoFactorPolicySet'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(before, after, "no change, no event");

    let changed = form_of(
        &page,
        &[
            ("enrollmentGracePeriodDays", Some("21")),
            ("trustedDeviceDays", Some("7")),
            ("codeDigits", Some("8")),
            ("codeTtlSeconds", Some("300")),
            ("allowedCallingCodes", Some("+995, +49")),
            ("defaultLocale", Some("ka")),
            ("webOrigin", Some("https://login.acme.example")),
            ("securityNotifications", None),
            ("ssoBypassesTwoFactor", Some("true")),
            ("allowedMethods", Some("EMAIL")),
            ("totpAlgorithm", Some("SHA256")),
        ],
    );
    let saved = post(&mut browser, &changed).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(saved.location(), "/console/policy?saved=1");
    let p = policy(&app, &t.admin).await;
    assert_eq!(p["enrollmentGracePeriodDays"], 21);
    assert_eq!(p["trustedDeviceDays"], 7);
    assert_eq!(p["codeDigits"], 8);
    assert_eq!(p["codeTtlSeconds"], 300);
    assert_eq!(p["allowedCallingCodes"], json!(["49", "995"]));
    assert_eq!(p["defaultLocale"], "ka");
    assert_eq!(p["webOrigin"], "https://login.acme.example");
    assert_eq!(p["securityNotifications"], false);
    assert_eq!(p["ssoBypassesTwoFactor"], true);
    assert_eq!(p["totpAlgorithm"], "SHA256");
    assert!(!p["allowedMethods"]
        .as_array()
        .unwrap()
        .contains(&json!("EMAIL")));
    let shown = browser.get("/console/policy?saved=1").await;
    assert!(shown.body.contains("data-saved"));
    assert!(shown.body.contains("value=\"https://login.acme.example\""));
}

/// The message `setPolicy` refuses `input` with, which the form must show beside its field.
async fn api_refusal(app: &TestApp, admin: &str, input: &str) -> String {
    let api = app
        .gql(
            Some(admin),
            &format!("mutation {{ setPolicy(input: {{ {input} }}) {{ enforceTwoFactor }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(api.error_code(), "INVALID_INPUT", "{}", api.body);
    api.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_refused_value_is_explained_beside_its_field_with_the_api_s_message() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&t.admin).await.status, 303);
    let page = browser.get("/console/policy").await;
    let before = policy(&app, &t.admin).await;
    let api_message = api_refusal(&app, &t.admin, "enrollmentGracePeriodDays: 9999").await;
    for (field, value, message) in [
        (
            "enrollmentGracePeriodDays",
            "9999",
            Some(api_message.as_str()),
        ),
        (
            "codeDigits",
            "six",
            Some("codeDigits must be a whole number"),
        ),
        ("webOrigin", "http://plain.example", None),
        ("allowedCallingCodes", "+999", None),
    ] {
        let refused = post(&mut browser, &form_of(&page, &[(field, Some(value))])).await;
        assert_eq!(refused.status, 400, "{field}: {}", refused.body);
        assert!(refused.body.contains("data-error-code=\"INVALID_INPUT\""));
        let beside = format!("id=\"{field}-error\">");
        let at = refused
            .body
            .find(&beside)
            .unwrap_or_else(|| panic!("{field}: {}", refused.body));
        if let Some(message) = message {
            assert!(
                refused.body[at..].starts_with(&format!("{beside}{message}")),
                "{}",
                &refused.body[at..at + 200]
            );
        }
        // What was typed is still there to correct.
        assert!(
            refused.body.contains(&format!("value=\"{value}\"")),
            "{field}"
        );
        assert_eq!(
            policy(&app, &t.admin).await,
            before,
            "{field}: nothing changed"
        );
    }
    // The only methods unticked: the domain's message, beside the methods.
    let none = post(
        &mut browser,
        &form_of(
            &page,
            &[
                ("allowedMethods", Some("TOTP")),
                ("allowedMethods", Some("EMAIL")),
                ("allowedMethods", Some("SMS")),
            ],
        ),
    )
    .await;
    assert_eq!(none.status, 400, "{}", none.body);
    assert!(
        none.body.contains("id=\"allowedMethods-error\""),
        "{}",
        none.body
    );
    assert_eq!(policy(&app, &t.admin).await, before);
}

#[tokio::test]
async fn enforcement_is_confirmed_after_being_told_who_it_affects() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    requirement(&app, &t.app, "ana", None, false).await;
    requirement(&app, &t.app, "beka", None, false).await;
    enroll(&app, &t.app, "alice").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&t.admin).await.status, 303);
    let page = browser.get("/console/policy").await;
    let asked = post(
        &mut browser,
        &form_of(
            &page,
            &[
                ("enforceTwoFactor", Some("true")),
                ("enrollmentGracePeriodDays", Some("10")),
            ],
        ),
    )
    .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("data-confirm=\"enforce\""));
    let body = asked.body.split("data-confirm-body>").nth(1).unwrap();
    assert!(body.contains(": 2."), "two users without 2FA: {body}");
    let ends = (chrono::Utc::now() + chrono::Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    assert!(body.contains(&ends), "the grace end: {body}");
    assert_eq!(
        policy(&app, &t.admin).await["enforceTwoFactor"],
        false,
        "not before the confirmation"
    );

    let confirmed = post(&mut browser, &form_of(&asked, &[])).await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    let p = policy(&app, &t.admin).await;
    assert_eq!(p["enforceTwoFactor"], true);
    assert_eq!(p["enrollmentGracePeriodDays"], 10);
    // Already on: saving again asks nothing.
    let page = browser.get("/console/policy").await;
    assert_eq!(post(&mut browser, &form_of(&page, &[])).await.status, 303);
}

#[tokio::test]
async fn an_auditor_reads_the_policy_and_cannot_change_it_even_by_posting() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&auditor).await.status, 303);
    let page = browser.get("/console/policy").await;
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("type=\"submit\">"),
        "no save button: {}",
        page.body
    );
    assert!(page.body.contains("<fieldset disabled"));
    let before = policy(&app, &t.admin).await;
    let forced = post(&mut browser, &form_of(&page, &[("codeDigits", Some("8"))])).await;
    assert_eq!(forced.status, 403, "{}", forced.body);
    assert!(forced.body.contains("data-error-code=\"FORBIDDEN\""));
    assert_eq!(policy(&app, &t.admin).await, before);

    // And an admin's form without its token changes nothing either.
    let mut admin = Browser::new(&app);
    assert_eq!(admin.sign_in(&t.admin).await.status, 303);
    let page = admin.get("/console/policy").await;
    let mut pairs = form_of(&page, &[("codeDigits", Some("8"))]);
    pairs.retain(|(k, _)| k != "csrf");
    assert_eq!(post(&mut admin, &pairs).await.status, 403);
    assert_eq!(policy(&app, &t.admin).await, before);
}

#[tokio::test]
async fn the_form_is_held_to_the_operator_s_bounds_on_a_key_s_rate() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&t.admin).await.status, 303);
    let page = browser.get("/console/policy").await;
    let before = policy(&app, &t.admin).await;
    let api_message = api_refusal(&app, &t.admin, "requestsPerSecondPerKey: 100000").await;
    let refused = post(
        &mut browser,
        &form_of(&page, &[("requestsPerSecondPerKey", Some("100000"))]),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains(&format!(
            "id=\"requestsPerSecondPerKey-error\">{api_message}"
        )),
        "{}",
        refused.body
    );
    assert_eq!(policy(&app, &t.admin).await, before, "nothing changed");
}

#[tokio::test]
async fn a_localhost_return_origin_is_flagged_as_for_development_only() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let set = |origins: Value| {
        let (app, admin) = (&app, t.admin.clone());
        async move {
            app.gql(
                Some(&admin),
                "mutation($o: [String!]) { setPolicy(input: { returnOrigins: $o }) { returnOrigins } }",
                json!({ "o": origins }),
            )
            .await
            .data();
        }
    };
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&t.admin).await.status, 303);
    set(json!(["https://app.acme.ge"])).await;
    let page = browser.get("/console/policy").await;
    assert!(!page.body.contains("data-warning=\"localhost\""));
    set(json!(["https://app.acme.ge", "http://localhost:3000"])).await;
    let page = browser.get("/console/policy").await;
    assert!(
        page.body.contains("data-warning=\"localhost\""),
        "{}",
        page.body
    );
}

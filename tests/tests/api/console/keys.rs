//! The API keys page: the list, issuing a key whose secret is shown once, revoking (which ends
//! a console session on that key; the last ADMIN key stays), and nothing for an AUDITOR.

use serde_json::json;
use twofold_tests::{spawn_app, TestApp};

use super::{Answer, Browser};

const KEYS: &str = "{ tenant { apiKeys { id role label revokedAt } } }";
const WHO: &str = "{ tenant { id } }";

async fn keys(app: &TestApp, admin: &str) -> Vec<serde_json::Value> {
    app.gql(Some(admin), KEYS, json!({})).await.data()["tenant"]["apiKeys"]
        .as_array()
        .unwrap()
        .clone()
}

/// The secret in the issued page's read-only field.
fn secret_of(page: &Answer) -> String {
    let marker = "id=\"secret\" class=\"secret\" value=\"";
    let start = page.body.find(marker).expect("the secret field") + marker.len();
    let end = page.body[start..].find('"').unwrap() + start;
    page.body[start..end].to_owned()
}

#[tokio::test]
async fn an_issued_key_s_secret_is_shown_once_and_works_against_the_api() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    let csrf = browser.csrf().await;
    let issued = browser
        .post(
            "/console/keys",
            &[("csrf", &csrf), ("role", "AUDITOR"), ("label", "Auditors")],
        )
        .await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert_eq!(issued.location(), "");
    assert_eq!(
        issued
            .headers
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap(),
        "no-store"
    );
    let secret = secret_of(&issued);
    assert_eq!(issued.body.matches(&secret).count(), 1);
    assert!(issued.body.contains("data-copy-target=\"secret\""));
    assert!(issued.body.contains("src=\"/console/assets/copy.js\""));
    let script = browser.get("/console/assets/copy.js").await;
    assert_eq!(script.status, 200);
    assert!(script.body.contains("navigator.clipboard"));

    let answer = app.gql(Some(&secret), WHO, json!({})).await;
    assert!(answer.data()["tenant"]["id"].is_string(), "{}", answer.body);
    let listed = keys(&app, &admin).await;
    assert!(listed
        .iter()
        .any(|k| k["role"] == "AUDITOR" && k["label"] == "Auditors"));

    let list = browser.get("/console/keys").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("Auditors"));
    // A crafted confirmation of a revocation that did not happen is not shown.
    let crafted = browser.get("/console/keys?revoked=abcdefgh").await;
    assert!(!crafted.body.contains("data-done"));
    assert!(!list.body.contains(&secret), "never shown again");
}

#[tokio::test]
async fn a_bad_label_or_role_is_refused_and_issues_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    let csrf = browser.csrf().await;
    for (role, label) in [("APP", ""), ("OPERATOR", "x"), ("APP", "bad\u{202e}label")] {
        let refused = browser
            .post(
                "/console/keys",
                &[("csrf", &csrf), ("role", role), ("label", label)],
            )
            .await;
        assert_eq!(refused.status, 400, "{role} {label}: {}", refused.body);
        assert!(refused.body.contains("id=\"label-error\""));
    }
    assert_eq!(keys(&app, &admin).await.len(), 1);
}

#[tokio::test]
async fn revoking_a_key_works_and_revoking_the_session_s_own_key_ends_the_session() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (second_id, second) = app.issue_key(&admin, "ADMIN").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&second).await.status, 303);
    let (app_id, app_key) = app.issue_key(&admin, "APP").await;
    let csrf = browser.csrf().await;
    let done = browser
        .post(
            &format!("/console/keys/{app_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let list = browser.get(done.location()).await;
    assert!(list.body.contains("data-done"), "{}", list.body);
    assert!(list
        .body
        .contains(&format!("data-key=\"{app_id}\" data-revoked")));
    assert_eq!(
        app.gql(Some(&app_key), WHO, json!({})).await.error_code(),
        "UNAUTHENTICATED"
    );

    let done = browser
        .post(
            &format!("/console/keys/{second_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location(),
        format!("/console/keys?revoked={second_id}")
    );
    let next = browser.get(done.location()).await;
    assert_eq!(next.status, 303);
    assert_eq!(next.location(), "/console/sign-in");
    assert_eq!(
        app.gql(Some(&second), WHO, json!({})).await.error_code(),
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn the_last_admin_key_cannot_be_revoked_and_the_api_s_message_is_shown() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let admin_id = keys(&app, &admin).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    let csrf = browser.csrf().await;
    let refused = browser
        .post(
            &format!("/console/keys/{admin_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert!(refused.status >= 400, "{}", refused.body);
    assert!(
        refused.body.contains("last active ADMIN key"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("data-error-code="));
    assert!(app.gql(Some(&admin), WHO, json!({})).await.data()["tenant"]["id"].is_string());
}

#[tokio::test]
async fn an_auditor_lists_keys_only_and_cannot_issue_or_revoke() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (app_id, app_key) = app.issue_key(&admin, "APP").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&auditor).await.status, 303);
    let list = browser.get("/console/keys").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains(&format!("data-key=\"{app_id}\"")));
    assert!(!list.body.contains("method=\"post\""), "{}", list.body);

    let csrf = browser.csrf().await;
    let issue = browser
        .post(
            "/console/keys",
            &[("csrf", &csrf), ("role", "ADMIN"), ("label", "mine now")],
        )
        .await;
    assert_eq!(issue.status, 403, "{}", issue.body);
    let revoke = browser
        .post(
            &format!("/console/keys/{app_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoke.status, 403);
    assert_eq!(keys(&app, &admin).await.len(), 3);
    assert!(app.gql(Some(&app_key), WHO, json!({})).await.data()["tenant"]["id"].is_string());
}

#[tokio::test]
async fn csrf_is_checked_and_another_tenant_s_key_is_not_found() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, other_admin) = app.create_tenant("Other").await;
    let (other_id, other_key) = app.issue_key(&other_admin, "APP").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    let forged = browser
        .post(
            "/console/keys",
            &[("csrf", "forged"), ("role", "ADMIN"), ("label", "x")],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(keys(&app, &admin).await.len(), 1);

    let csrf = browser.csrf().await;
    let theirs = browser
        .post(
            &format!("/console/keys/{other_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    assert!(theirs.body.contains("data-error-code=\"NOT_FOUND\""));
    assert!(app.gql(Some(&other_key), WHO, json!({})).await.data()["tenant"]["id"].is_string());
}

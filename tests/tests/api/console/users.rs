//! The users page: a user's status and history, and the ADMIN actions (reset, clear a lockout,
//! revoke a trusted device), each with a required reason that lands in the audit history.

use serde_json::json;
use twofold_tests::{spawn_app, TestApp};

use super::Browser;
use crate::sign_in::{acme, requirement};
use crate::totp::{enroll, status, verify};

pub(crate) const TRUST: &str = "mutation($u: ID!, $c: String!) { verify(userId: $u, method: RECOVERY_CODE, code: $c, trustDevice: true, deviceLabel: \"Work laptop\") { deviceToken } }";

/// A browser signed in with a fresh key of `role`; returns it and the key's id.
pub(crate) async fn signed_in(app: &TestApp, admin: &str, role: &str) -> (Browser, String) {
    let (id, secret) = app.issue_key(admin, role).await;
    let mut browser = Browser::new(app);
    assert_eq!(browser.sign_in(&secret).await.status, 303);
    (browser, id)
}

/// The user page at `location` once its history shows an `event` row. The history shows only
/// what is below the commit horizon (decision 52): a transaction of the database that began
/// before the action committed (a processor batch, on a loaded machine) holds it back until it
/// ends, so the page is read again until the row is there.
async fn page_with(browser: &mut Browser, location: &str, event: &str) -> String {
    let row = format!("<tr data-event=\"{event}\">");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = browser.get(location).await;
        if page.body.contains(&row) {
            return page.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{event} never reached the history"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_admin_resets_a_user_with_a_reason_that_the_history_shows_with_the_admin_s_key() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    enroll(&app, &t.app, "alice@acme").await;
    let (mut browser, key_id) = signed_in(&app, &t.admin, "ADMIN").await;

    let found = browser.get("/console/users?userId=alice%40acme").await;
    assert_eq!(found.status, 303);
    assert_eq!(found.location(), "/console/users/alice%40acme");
    let page = browser.get(found.location()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Authenticator app"), "{}", page.body);
    assert!(page
        .body
        .contains("<dd data-status=\"recovery-codes\">10</dd>"));

    let csrf = browser.csrf().await;
    let done = browser
        .post(
            "/console/users/alice%40acme/reset",
            &[("csrf", &csrf), ("reason", "Lost phone, ticket 4711")],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/console/users/alice%40acme?done=reset");
    assert_eq!(status(&app, &t.app, "alice@acme").await["enabled"], false);

    let body = page_with(&mut browser, done.location(), "TwoFactorReset").await;
    assert!(body.contains("data-done"), "{body}");
    let reset_row = body
        .split("<tr data-event=\"TwoFactorReset\">")
        .nth(1)
        .expect("the reset in the history")
        .split("</tr>")
        .next()
        .unwrap();
    assert!(reset_row.contains("Lost phone, ticket 4711"), "{reset_row}");
    assert!(
        reset_row.contains(&format!("ADMIN:{key_id}")),
        "{reset_row}"
    );
    // Newest first: the reset comes before the enrollment.
    let reset_at = body.find("data-event=\"TwoFactorReset\"").unwrap();
    let enrolled_at = body.find("data-event=\"TotpEnabled\"").unwrap();
    assert!(enrolled_at > reset_at);
}

#[tokio::test]
async fn an_admin_clears_a_lockout() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (authenticator, _) = enroll(&app, &t.app, "bob").await;
    for _ in 0..10 {
        verify(&app, &t.app, "bob", "TOTP", &authenticator.wrong_code()).await;
    }
    assert!(!status(&app, &t.app, "bob").await["lockedUntil"].is_null());
    let (mut browser, _) = signed_in(&app, &t.admin, "ADMIN").await;
    let page = browser.get("/console/users/bob").await;
    assert!(!page.body.contains("Not locked out"), "{}", page.body);
    assert!(page
        .body
        .contains("<dd data-status=\"failed-attempts\">10</dd>"));

    let csrf = browser.csrf().await;
    let done = browser
        .post(
            "/console/users/bob/clear-lockout",
            &[("csrf", &csrf), ("reason", "Called the help desk")],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(status(&app, &t.app, "bob").await["lockedUntil"].is_null());
    let body = page_with(&mut browser, done.location(), "LockoutCleared").await;
    assert!(body.contains("Not locked out"));
}

#[tokio::test]
async fn an_admin_revokes_a_trusted_device() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (_, codes) = enroll(&app, &t.app, "carol").await;
    let a = app
        .gql(Some(&t.app), TRUST, json!({ "u": "carol", "c": codes[0] }))
        .await;
    assert!(a.data()["verify"]["deviceToken"].is_string());
    let device = status(&app, &t.app, "carol").await["trustedDevices"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut browser, key_id) = signed_in(&app, &t.admin, "ADMIN").await;
    let page = browser.get("/console/users/carol").await;
    assert!(page.body.contains(&format!("data-device=\"{device}\"")));
    assert!(page.body.contains("Work laptop"));

    let csrf = browser.csrf().await;
    let done = browser
        .post(
            &format!("/console/users/carol/devices/{device}/revoke"),
            &[("csrf", &csrf), ("reason", "Laptop stolen")],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/console/users/carol?done=device");
    let left = status(&app, &t.app, "carol").await["trustedDevices"].clone();
    assert_eq!(left, json!([]));
    // The reason is in the history, with the admin's key, as a reset's is.
    let body = page_with(&mut browser, done.location(), "DeviceTrustRevoked").await;
    let row = body
        .split("<tr data-event=\"DeviceTrustRevoked\">")
        .nth(1)
        .expect("the revocation in the history")
        .split("</tr>")
        .next()
        .unwrap();
    assert!(row.contains("explanation: Laptop stolen"), "{row}");
    assert!(row.contains(&format!("ADMIN:{key_id}")), "{row}");
}

#[tokio::test]
async fn an_empty_reason_is_refused_beside_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    enroll(&app, &t.app, "dave").await;
    let (mut browser, _) = signed_in(&app, &t.admin, "ADMIN").await;
    let csrf = browser.csrf().await;
    for reason in ["", "   "] {
        let refused = browser
            .post(
                "/console/users/dave/reset",
                &[("csrf", &csrf), ("reason", reason)],
            )
            .await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        let beside = refused
            .body
            .split("id=\"reason-reset-error\"")
            .nth(1)
            .expect("the message beside the reason");
        assert!(beside.contains("reason"), "{beside}");
        assert!(refused.body.contains("data-error-code=\"INVALID_INPUT\""));
    }
    let missing = browser
        .post("/console/users/dave/reset", &[("csrf", &csrf)])
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(status(&app, &t.app, "dave").await["enabled"], true);
}

#[tokio::test]
async fn an_auditor_sees_no_form_and_posting_is_forbidden() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    enroll(&app, &t.app, "erin").await;
    let (mut browser, _) = signed_in(&app, &t.admin, "AUDITOR").await;
    let page = browser.get("/console/users/erin").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("method=\"post\""), "{}", page.body);
    assert!(!page.body.contains("<textarea"));
    assert!(page.body.contains("data-event=\"TotpEnabled\""));

    let csrf = browser.csrf().await;
    for path in [
        "/console/users/erin/reset",
        "/console/users/erin/clear-lockout",
    ] {
        let forced = browser
            .post(path, &[("csrf", &csrf), ("reason", "just because")])
            .await;
        assert_eq!(forced.status, 403, "{}", forced.body);
        assert!(forced.body.contains("data-error-code=\"FORBIDDEN\""));
    }
    assert_eq!(status(&app, &t.app, "erin").await["enabled"], true);
}

#[tokio::test]
async fn another_tenant_s_user_and_an_unknown_user_are_not_found_and_not_created() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    enroll(&app, &t.app, "frank").await;
    let (_, other_admin) = app.create_tenant("Other").await;
    let (mut browser, _) = signed_in(&app, &other_admin, "ADMIN").await;

    let page = browser.get("/console/users/frank").await;
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(page.body.contains("data-error-code=\"NOT_FOUND\""));
    assert!(!page.body.contains("TotpEnabled"));
    let csrf = browser.csrf().await;
    let forced = browser
        .post(
            "/console/users/frank/reset",
            &[("csrf", &csrf), ("reason", "not mine")],
        )
        .await;
    assert_eq!(forced.status, 404, "{}", forced.body);
    assert_eq!(status(&app, &t.app, "frank").await["enabled"], true);

    // Looking someone up writes nothing: they stay unknown to the API too.
    let (_, other_app) = app.issue_key(&other_admin, "APP").await;
    assert!(status(&app, &other_app, "frank").await.is_null());
}

#[tokio::test]
async fn a_form_without_this_session_s_token_is_refused() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    enroll(&app, &t.app, "gina").await;
    let (mut browser, _) = signed_in(&app, &t.admin, "ADMIN").await;
    for csrf in ["", "forged"] {
        let refused = browser
            .post(
                "/console/users/gina/reset",
                &[("csrf", csrf), ("reason", "Lost phone")],
            )
            .await;
        assert_eq!(refused.status, 403, "{}", refused.body);
    }
    assert_eq!(status(&app, &t.app, "gina").await["enabled"], true);
}

#[tokio::test]
async fn the_history_pages_with_the_audit_cursor_and_a_forged_cursor_is_refused() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    enroll(&app, &t.app, "hana").await;
    for _ in 0..25 {
        requirement(&app, &t.app, "hana", None, false).await;
    }
    let (mut browser, _) = signed_in(&app, &t.admin, "AUDITOR").await;
    let first = browser.get("/console/users/hana").await;
    assert_eq!(first.body.matches("<tr data-event=").count(), 20);
    let marker = "<a href=\"";
    let next = first
        .body
        .split("data-next")
        .next()
        .and_then(|b| b.rsplit(marker).next())
        .and_then(|h| h.split('"').next())
        .expect("a link to older events")
        .replace("&#x3d;", "=")
        .replace("&#61;", "=");
    assert!(next.starts_with("/console/users/hana?after="), "{next}");
    let second = browser.get(&next).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let rows = second.body.matches("<tr data-event=").count();
    assert!(rows >= 7, "{rows} older events");
    // The oldest event, the enrollment, is on the second page only.
    assert!(second.body.contains("data-event=\"TotpEnabled\""));
    assert!(!first.body.contains("data-event=\"TotpEnabled\""));

    let forged = browser.get("/console/users/hana?after=a1deadbeef").await;
    assert_eq!(forged.status, 400);
    assert!(forged.body.contains("data-error-code=\"INVALID_INPUT\""));
}

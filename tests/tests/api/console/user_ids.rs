//! User ids a browser would fold in a path (`.`, `..`): the find form, the page's links and its
//! action forms still reach the user. The client here joins addresses with the URL standard's
//! parser (the `url` crate, as reqwest does), which removes dot segments exactly as browsers do.

use serde_json::json;
use twofold_tests::{spawn_app, TestApp};

use super::compliance::unescape;
use super::users::{signed_in, TRUST};
use super::{Answer, Browser};
use crate::sign_in::acme;
use crate::totp::{enroll, status};

/// The `action` of the form marked `data-action="{action}"`.
fn form_action(page: &Answer, action: &str) -> String {
    let at = page
        .body
        .find(&format!("data-action=\"{action}\""))
        .unwrap_or_else(|| panic!("no {action} form in {}", page.body));
    let before = &page.body[..at];
    let start = before.rfind("action=\"").unwrap() + "action=\"".len();
    unescape(&before[start..][..before[start..].find('"').unwrap()])
}

/// Finds `id` with the find form and follows where it goes; returns the user's page.
async fn find(browser: &mut Browser, id: &str) -> Answer {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("userId", id)
        .finish();
    let found = browser.get(&format!("/console/users?{query}")).await;
    assert_eq!(found.status, 303, "{}", found.body);
    let page = browser.get(found.location()).await;
    assert_eq!(
        page.status,
        200,
        "{id} at {}: {}",
        found.location(),
        page.body
    );
    assert!(
        page.body
            .contains(&format!("<span data-user-id>{id}</span>")),
        "{id}: {}",
        page.body
    );
    page
}

async fn trusted_device(app: &TestApp, key: &str, user: &str, code: &str) -> String {
    let a = app
        .gql(Some(key), TRUST, json!({ "u": user, "c": code }))
        .await;
    assert!(
        a.data()["verify"]["deviceToken"].is_string(),
        "{:?}",
        a.body
    );
    status(app, key, user).await["trustedDevices"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_valid_user_id_opens_and_its_actions_work_even_dot_segments() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let ids = [".", "..", "a/..", "../x", "%2e%2e"];
    let mut devices = Vec::new();
    for id in ids {
        let (_, codes) = enroll(&app, &t.app, id).await;
        devices.push(trusted_device(&app, &t.app, id, &codes[0]).await);
    }
    let (mut browser, _) = signed_in(&app, &t.admin, "ADMIN").await;
    let csrf = browser.csrf().await;
    for (id, device) in ids.into_iter().zip(devices) {
        let page = find(&mut browser, id).await;
        assert!(page.body.contains(&format!("data-device=\"{device}\"")));

        let revoke = form_action(&page, "revoke-device");
        let done = browser
            .post(&revoke, &[("csrf", &csrf), ("reason", "Laptop stolen")])
            .await;
        assert_eq!(done.status, 303, "{id}: {revoke}: {}", done.body);
        let page = browser.get(done.location()).await;
        assert_eq!(page.status, 200, "{id}: {}", done.location());
        assert!(page.body.contains("data-done"), "{}", page.body);
        assert_eq!(
            status(&app, &t.app, id).await["trustedDevices"],
            json!([]),
            "{id}"
        );

        let reset = form_action(&page, "reset");
        let done = browser
            .post(&reset, &[("csrf", &csrf), ("reason", "Lost phone")])
            .await;
        assert_eq!(done.status, 303, "{id}: {reset}: {}", done.body);
        assert_eq!(browser.get(done.location()).await.status, 200);
        assert_eq!(status(&app, &t.app, id).await["enabled"], false, "{id}");
    }
    // The query form answers any id, so a link made either way keeps working.
    enroll(&app, &t.app, "alice").await;
    let page = browser.get("/console/user?id=alice").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<span data-user-id>alice</span>"));
    assert_eq!(form_action(&page, "reset"), "/console/users/alice/reset");
    let missing = browser.get("/console/user").await;
    assert_eq!(missing.status, 400, "{}", missing.body);
}

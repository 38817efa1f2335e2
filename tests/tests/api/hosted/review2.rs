//! Holes the attacker review of the hosted flows found, each closed here.

use serde_json::json;

use super::flows::{enroll, visit};
use super::links::tenant;

const REQUIREMENT: &str = "query($u: ID!) { signInRequirement(userId: $u) { required } }";

#[tokio::test]
async fn one_user_looping_on_a_page_is_stopped_before_the_tenant_s_backend_is() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (mut browser, _, _) = visit(&app, &acme, "nino", "VERIFY").await;
    let mut throttled = None;
    for n in 0..40 {
        let page = browser.get("/hosted").await;
        if page.status == 429 {
            throttled = Some(n);
            break;
        }
        assert_eq!(page.status, 200, "{}", page.body);
    }
    assert!(
        throttled.is_some(),
        "40 pages of one session in a moment were all served"
    );
    // The APP key still answers its backend.
    let backend = app
        .gql(Some(&acme.app), REQUIREMENT, json!({ "u": "nino" }))
        .await;
    backend.data();
}

#[tokio::test]
async fn a_flow_that_cannot_return_spends_no_recovery_code() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (_, codes) = enroll(&app, &acme, "nino").await;
    let (mut browser, page, _) = visit(&app, &acme, "nino", "VERIFY").await;
    // The admin stops sending users back to the link's site.
    app.gql(
        Some(&acme.admin),
        "mutation { setPolicy(input: { returnOrigins: [\"https://other.acme.ge\"] }) { returnOrigins } }",
        json!({}),
    )
    .await
    .data();
    let refused = browser
        .post(
            "/hosted/verify",
            &[
                ("csrf", &page.field("csrf")),
                ("method", "RECOVERY_CODE"),
                ("code", &codes[0]),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let used = app
        .gql(
            Some(&acme.app),
            "mutation($c: String!) { verify(userId: \"nino\", method: RECOVERY_CODE, code: $c) { method } }",
            json!({ "c": codes[0] }),
        )
        .await;
    assert_eq!(used.data()["verify"]["method"], "RECOVERY_CODE");
}

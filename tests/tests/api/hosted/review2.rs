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

#[tokio::test]
async fn a_tenant_s_unopened_links_are_capped_and_other_tenants_are_not_affected() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let other = tenant(&app, "Other").await;
    // A leaked APP key has made ten thousand links no one opens.
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    sqlx::query(
        "INSERT INTO hosted_sessions (link_hash, link_id, tenant_id, key_id, user_id, purpose, \
           return_url, created_at) \
         SELECT 'h' || n, 'hs_' || n, $1, 'k', 'u', 'VERIFY', 'https://app.acme.ge/', now() \
         FROM generate_series(1, 10000) n",
    )
    .bind(&acme.id)
    .execute(&pool)
    .await
    .unwrap();
    let create = |key: String| {
        let app = &app;
        async move {
            app.gql(
                Some(&key),
                super::links::CREATE,
                json!({ "u": "nino", "p": "VERIFY", "r": super::links::RETURN }),
            )
            .await
        }
    };
    let refused = create(acme.app.clone()).await;
    assert_eq!(refused.error_code(), "RATE_LIMITED", "{}", refused.body);
    create(other.app.clone()).await.data();
    // Opened links do not count.
    sqlx::query("UPDATE hosted_sessions SET opened_at = now() WHERE link_id = 'hs_1'")
        .execute(&pool)
        .await
        .unwrap();
    create(acme.app.clone()).await.data();
}

#[tokio::test]
async fn a_link_opened_during_a_live_visit_asks_before_replacing_it() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (mut browser, page, _) = visit(&app, &acme, "nino", "ENROLL").await;
    let first = browser.cookies["twofold_hosted"].clone();
    // Another site sends the browser to a link of its own.
    let made = app
        .gql(
            Some(&acme.app),
            super::links::CREATE,
            json!({ "u": "mallory", "p": "ENROLL", "r": super::links::RETURN }),
        )
        .await;
    let url = made.data()["createUserSession"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = url.strip_prefix(&app.address).unwrap();
    let asked = browser.get(path).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("data-replace"), "{}", asked.body);
    assert_eq!(
        browser.cookies["twofold_hosted"], first,
        "the visit is kept"
    );
    // The visit in progress still works.
    let back = browser
        .post("/hosted/cancel", &[("csrf", &page.field("csrf"))])
        .await;
    assert_eq!(back.status, 303, "{}", back.body);
    // With no visit left, the same link opens: it was not spent by the question.
    let opened = browser.get(path).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    assert_ne!(browser.cookies["twofold_hosted"], first);
}

#[tokio::test]
async fn the_user_may_choose_to_leave_a_live_visit_for_a_new_link() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (mut browser, _, _) = visit(&app, &acme, "nino", "ENROLL").await;
    let first = browser.cookies["twofold_hosted"].clone();
    let made = app
        .gql(
            Some(&acme.app),
            super::links::CREATE,
            json!({ "u": "nino", "p": "VERIFY", "r": super::links::RETURN }),
        )
        .await;
    let url = made.data()["createUserSession"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let asked = browser.get(url.strip_prefix(&app.address).unwrap()).await;
    let link = asked.field("link");
    // Without the page's token (a site posting where the browser sends no Sec-Fetch-Site):
    // refused, and the visit in progress kept.
    let forged = browser.post("/hosted/start", &[("link", &link)]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(browser.cookies["twofold_hosted"], first);
    let opened = browser
        .post(
            "/hosted/start",
            &[("link", &link), ("token", &asked.field("token"))],
        )
        .await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    assert_ne!(browser.cookies["twofold_hosted"], first);
    let page = browser.get("/hosted").await;
    assert!(
        page.body.contains("data-purpose=\"VERIFY\""),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn one_visit_may_ask_for_five_codes_whatever_the_numbers_and_addresses() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (mut browser, page, _) = visit(&app, &acme, "nino", "ENROLL").await;
    let csrf = page.field("csrf");
    let mut statuses = Vec::new();
    for n in 0..3 {
        let sent = browser
            .post(
                "/hosted/enroll/sms/send",
                &[
                    ("csrf", &csrf),
                    ("country", "995"),
                    ("phone", &format!("55512345{n}")),
                ],
            )
            .await;
        statuses.push(sent.status);
        let sent = browser
            .post(
                "/hosted/enroll/email/send",
                &[("csrf", &csrf), ("email", &format!("n{n}@acme.ge"))],
            )
            .await;
        statuses.push(sent.status);
        if n == 2 {
            assert!(
                sent.body.contains("as many codes as one visit may"),
                "{}",
                sent.body
            );
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 422]);
    // Five codes issued (each replacing the last), the sixth never.
    assert_eq!(app.count_events(&acme.id, "CodeSent").await, 5);
}

#[tokio::test]
async fn an_address_cannot_be_added_on_the_enrollment_pages_once_the_user_has_2fa() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    // Two tabs: the first enrolls the app while the second waits on the number's page.
    let (mut second, page, _) = visit(&app, &acme, "nino", "ENROLL").await;
    enroll(&app, &acme, "nino").await;
    let sent = second
        .post(
            "/hosted/enroll/sms/send",
            &[
                ("csrf", &page.field("csrf")),
                ("country", "995"),
                ("phone", "555123456"),
            ],
        )
        .await;
    assert!(sent.body.contains("data-enrolled"), "{}", sent.body);
    assert!(!sent.body.to_lowercase().contains("proof"), "{}", sent.body);
    assert!(app.twilio.requests().is_empty());
}

#[tokio::test]
async fn a_code_of_a_replaced_address_is_explained_with_a_way_to_a_new_one() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (mut browser, page, _) = visit(&app, &acme, "nino", "ENROLL").await;
    let csrf = page.field("csrf");
    let first = browser
        .post(
            "/hosted/enroll/email/send",
            &[("csrf", &csrf), ("email", "a@acme.ge")],
        )
        .await;
    browser
        .post(
            "/hosted/enroll/email/send",
            &[("csrf", &csrf), ("email", "b@acme.ge")],
        )
        .await;
    let code = crate::channels::mailed_code(&app, 1).await;
    let stale = browser
        .post(
            "/hosted/enroll/channel/confirm",
            &[
                ("csrf", &csrf),
                ("challenge", &first.field("challenge")),
                ("method", "EMAIL"),
                ("email", "a@acme.ge"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(stale.status, 422, "{}", stale.body);
    assert!(stale.body.contains("no longer valid"), "{}", stale.body);
    assert!(stale.body.contains("data-resend"), "a way to a new code");
}

#[tokio::test]
async fn a_new_link_for_a_user_ends_their_unopened_ones() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let link = |user: &'static str| {
        let app = &app;
        let key = acme.app.clone();
        async move {
            let made = app
                .gql(
                    Some(&key),
                    super::links::CREATE,
                    json!({ "u": user, "p": "VERIFY", "r": super::links::RETURN }),
                )
                .await;
            let url = made.data()["createUserSession"]["url"]
                .as_str()
                .unwrap()
                .to_owned();
            url.strip_prefix(&app.address).unwrap().to_owned()
        }
    };
    let old = link("nino").await;
    let other = link("ana").await;
    let new = link("nino").await;
    let mut browser = crate::console::Browser::new(&app);
    assert_eq!(
        browser.get(&old).await.status,
        404,
        "ended by the newer link"
    );
    assert_eq!(browser.get(&new).await.status, 303);
    let mut elsewhere = crate::console::Browser::new(&app);
    assert_eq!(
        elsewhere.get(&other).await.status,
        303,
        "another user's link lives"
    );
}

#[tokio::test]
async fn a_planted_second_cookie_does_not_let_a_link_replace_a_visit_unasked() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let made = app
        .gql(
            Some(&acme.app),
            super::links::CREATE,
            json!({ "u": "mallory", "p": "ENROLL", "r": super::links::RETURN }),
        )
        .await;
    let url = made.data()["createUserSession"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (browser, _, _) = visit(&app, &acme, "nino", "ENROLL").await;
    let mut planted = browser.with_header("cookie", "twofold_hosted=planted");
    let asked = planted.get(url.strip_prefix(&app.address).unwrap()).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("data-replace"), "{}", asked.body);
    assert_eq!(asked.headers["referrer-policy"], "strict-origin");
}

#[tokio::test]
async fn asking_again_and_again_with_a_live_visit_is_throttled() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let (mut browser, _, _) = visit(&app, &acme, "nino", "ENROLL").await;
    let path = format!("/hosted/start?link=tfl_{}", "b".repeat(52));
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(browser.get(&path).await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn a_new_link_is_not_a_new_budget_of_codes_for_the_same_user() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let mut statuses = Vec::new();
    for round in 0..2 {
        let (mut browser, page, _) = visit(&app, &acme, "nino", "ENROLL").await;
        let csrf = page.field("csrf");
        for n in 0..3 {
            let sent = browser
                .post(
                    "/hosted/enroll/email/send",
                    &[("csrf", &csrf), ("email", &format!("n{round}{n}@acme.ge"))],
                )
                .await;
            statuses.push(sent.status);
        }
        browser.post("/hosted/cancel", &[("csrf", &csrf)]).await;
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 422]);
}

#[tokio::test]
async fn expired_links_visits_and_result_codes_are_refused() {
    let app = twofold_tests::spawn_app().await;
    let acme = tenant(&app, "Acme").await;
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let age = |table: &'static str, minutes: i32| {
        let pool = pool.clone();
        async move {
            sqlx::query(&format!(
                "UPDATE {table} SET created_at = now() - make_interval(mins => $1)"
            ))
            .bind(minutes)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    // A link made 11 minutes ago no longer opens.
    let made = app
        .gql(
            Some(&acme.app),
            super::links::CREATE,
            json!({ "u": "nino", "p": "VERIFY", "r": super::links::RETURN }),
        )
        .await;
    let url = made.data()["createUserSession"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    age("hosted_sessions", 11).await;
    let mut browser = crate::console::Browser::new(&app);
    let expired = browser.get(url.strip_prefix(&app.address).unwrap()).await;
    assert_eq!(expired.status, 404, "{}", expired.body);
    assert!(expired.body.contains("expired or has already been used"));

    // A visit 31 minutes after its link was made has ended.
    let (mut browser, page, _) = visit(&app, &acme, "ana", "VERIFY").await;
    age("hosted_sessions", 31).await;
    let ended = browser.get("/hosted").await;
    assert_eq!(ended.status, 401, "{}", ended.body);
    let refused = browser
        .post("/hosted/cancel", &[("csrf", &page.field("csrf"))])
        .await;
    assert_eq!(refused.status, 401, "no result from an ended visit");

    // A result code older than 5 minutes is not redeemed.
    let (mut browser, page, id2) = visit(&app, &acme, "beka", "VERIFY").await;
    let back = browser
        .post("/hosted/cancel", &[("csrf", &page.field("csrf"))])
        .await;
    let code = super::flows::result_of(&back);
    age("hosted_results", 6).await;
    let late = super::links::redeem(&app, &acme.app, &code, &id2).await;
    assert_eq!(late.error_code(), "INVALID_INPUT");
}

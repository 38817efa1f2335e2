//! The rest of the console in a real browser: every page screenshotted and checked by axe; an
//! auditor with the live timeline open watches an admin's reset arrive, and reads the export
//! its link downloads.

use fantoccini::Locator;
use serde_json::json;
use twofold_tests::browser::{Browser, BrowserOptions};
use twofold_tests::spawn_app;

use super::console::{click, look, sign_in, tenant, text};

#[tokio::test]
async fn every_other_page_passes_axe_and_an_admin_issues_a_key_shown_once() {
    let app = spawn_app().await;
    let (admin, _) = tenant(&app).await;
    let browser = Browser::start().await;
    sign_in(&browser, &app, &admin).await;
    let c = browser.client();
    for (path, name, ready) in [
        ("/console/compliance", "console-compliance", "main h1"),
        ("/console/audit", "console-audit", "[data-timeline]"),
        ("/console/users", "console-users", "input[name=userId]"),
        (
            "/console/users/carla",
            "console-user",
            "[data-status=methods]",
        ),
        ("/console/keys", "console-keys", "[data-table=keys]"),
    ] {
        browser.goto(&format!("{}{path}", app.address)).await;
        c.wait().for_element(Locator::Css(ready)).await.unwrap();
        look(&browser, name).await;
    }
    // A user that does not exist is a page too.
    browser
        .goto(&format!("{}/console/users/nobody", app.address))
        .await;
    look(&browser, "console-user-not-found").await;
    // Issuing a key: the secret is on the answer, once, and works against the API.
    browser.goto(&format!("{}/console/keys", app.address)).await;
    let label = c.find(Locator::Css("#label")).await.unwrap();
    label.send_keys("reporting").await.unwrap();
    click(
        c,
        Locator::Css("[data-action=issue-key] button[type=submit]"),
    )
    .await;
    let secret = c
        .wait()
        .for_element(Locator::Css("[data-secret]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .expect("the secret");
    look(&browser, "console-key-issued").await;
    let works = app.gql(Some(&secret), "{ tenant { id } }", json!({})).await;
    assert!(works.body["errors"].is_null(), "{}", works.body);
    browser.goto(&format!("{}/console/keys", app.address)).await;
    let list = text(&browser, "[data-table=keys]").await;
    assert!(!list.contains(&secret), "the list never shows a secret");
}

#[tokio::test]
async fn an_auditor_watches_a_reset_arrive_live_and_downloads_the_export() {
    let app = spawn_app().await;
    let (admin, auditor) = tenant(&app).await;
    let browsers =
        Browser::start_several(&[BrowserOptions::default(), BrowserOptions::default()]).await;
    let (watcher, actor) = (&browsers[0], &browsers[1]);
    sign_in(watcher, &app, &auditor).await;
    watcher
        .goto(&format!("{}/console/audit?userId=carla", app.address))
        .await;
    let w = watcher.client();
    // No action anywhere for an auditor.
    assert!(w
        .find_all(Locator::Css("main form[method=post]"))
        .await
        .unwrap()
        .is_empty());
    // The live box appears only with JavaScript, which this browser has.
    click(w, Locator::Css("#live")).await;

    sign_in(actor, &app, &admin).await;
    actor
        .goto(&format!("{}/console/users/carla", app.address))
        .await;
    let a = actor.client();
    a.find(Locator::Css("#reason-reset"))
        .await
        .expect("the reset form")
        .send_keys("lost her phone")
        .await
        .unwrap();
    click(a, Locator::Css("[data-action=reset] button[type=submit]")).await;
    a.wait()
        .for_element(Locator::Css("[data-done]"))
        .await
        .expect("the reset is confirmed");

    let arrived = w
        .wait()
        .for_element(Locator::Css(
            "[data-timeline] [data-event-type=TwoFactorReset]",
        ))
        .await
        .expect("the reset arrives in the auditor's timeline without a reload");
    let reason = arrived.text().await.unwrap();
    assert!(reason.contains("TwoFactorReset"), "{reason}");
    look(watcher, "console-audit-live").await;

    // The export link, with the page's filter, downloads JSON Lines holding the reset.
    let href = w
        .find(Locator::Css("[data-export]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("the export link");
    assert!(href.contains("userId=carla"), "{href}");
    let body = w
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             fetch(arguments[0]).then(r => r.text()).then(done, e => done('failed: ' + e));",
            vec![json!(href)],
        )
        .await
        .unwrap();
    let body = body.as_str().unwrap();
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().all(|e| e["userId"] == "carla"));
    let reset = lines
        .iter()
        .find(|e| e["eventType"] == "TwoFactorReset")
        .expect("the reset is in the export");
    assert_eq!(reset["data"]["reason"], "lost her phone");
}

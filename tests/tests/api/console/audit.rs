//! The audit page: the API's events behind a filter in the URL, its cursors, the same export
//! as `/audit/export` for a browser session, and a live stream that ends with the session.

use std::time::Duration;

use serde_json::json;
use twofold_tests::{spawn_app, TestApp};

use super::compliance::{next_link, unescape};
use super::{Answer, Browser};
use crate::audit::settled;
use crate::sign_in::{acme, requirement, Acme};

/// Bound on waiting for a live event or the end of a stream (never the assertion itself).
const WAIT: Duration = Duration::from_secs(20);

/// One event of a page: (type, user, time as RFC 3339).
fn events_of(page: &Answer) -> Vec<(String, String, String)> {
    page.body
        .split("<li class=\"event\"")
        .skip(1)
        .map(|e| {
            let attr = |marker: &str| {
                let rest = &e[e.find(marker).unwrap() + marker.len()..];
                unescape(&rest[..rest.find(['"', '<']).unwrap()])
            };
            (
                attr("data-event-type=\""),
                attr("<dd data-user>"),
                attr("datetime=\""),
            )
        })
        .collect()
}

/// A tenant with events of two users, settled, and an AUDITOR's signed-in browser.
async fn tenant_with_events(app: &TestApp) -> (Acme, String, Browser) {
    let t = acme(app).await;
    for user in ["ana", "bob", "ana", "bob", "ana"] {
        requirement(app, &t.app, user, None, false).await;
    }
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;
    settled(app, &t.id).await;
    let mut browser = Browser::new(app);
    assert_eq!(browser.sign_in(&auditor).await.status, 303);
    (t, auditor, browser)
}

#[tokio::test]
async fn filters_by_user_type_and_time_narrow_the_timeline_for_an_auditor() {
    let app = spawn_app().await;
    // Another tenant's events never appear.
    let (_, other_admin) = app.create_tenant("Other").await;
    let (_, other_app) = app.issue_key(&other_admin, "APP").await;
    requirement(&app, &other_app, "outsider", None, false).await;
    let (_, _, mut browser) = tenant_with_events(&app).await;

    let all = browser.get("/console/audit").await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(!all.body.contains("<form method=\"post\""), "read-only");
    let everything = events_of(&all);
    assert!(everything.len() >= 8, "{everything:?}");
    assert!(!all.body.contains("outsider"));
    let times: Vec<&String> = everything.iter().map(|e| &e.2).collect();
    let mut newest_first = times.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, newest_first, "newest first");

    let ana = events_of(&browser.get("/console/audit?userId=ana").await);
    assert_eq!(ana.len(), 3, "three decisions: {ana:?}");
    assert!(ana.iter().all(|e| e.1 == "ana"));

    let decisions = browser
        .get("/console/audit?eventType=SignInEvaluated&eventType=ApiKeyIssued")
        .await;
    let decisions = events_of(&decisions);
    assert_eq!(
        decisions
            .iter()
            .filter(|e| e.0 == "SignInEvaluated")
            .count(),
        5
    );
    assert!(decisions
        .iter()
        .all(|e| e.0 == "SignInEvaluated" || e.0 == "ApiKeyIssued"));
    assert!(decisions.iter().any(|e| e.0 == "ApiKeyIssued"));

    // A time inside the history splits it: `from` keeps what is at or after, `to` the rest.
    let middle = &everything[everything.len() / 2].2;
    let q = |name: &str| format!("/console/audit?{name}={}", urlencode(middle));
    let after = events_of(&browser.get(&q("from")).await);
    let before = events_of(&browser.get(&q("to")).await);
    assert!(!after.is_empty() && !before.is_empty());
    assert_eq!(after.len() + before.len(), everything.len());
    assert!(after.iter().all(|e| &e.2 >= middle) && before.iter().all(|e| &e.2 < middle));
    // As a datetime-local control sends it, in UTC.
    let future = events_of(&browser.get("/console/audit?from=2099-01-01T00:00").await);
    assert!(future.is_empty());
    let past = events_of(&browser.get("/console/audit?to=2099-01-01T00:00").await);
    assert_eq!(past.len(), everything.len());

    // Bad filters are refused with the API's message, beside the form.
    let bad = browser.get("/console/audit?eventType=NoSuchEvent").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("data-error-code=\"INVALID_INPUT\""));
    assert!(bad.body.contains("unknown event type"), "{}", bad.body);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn pages_follow_the_api_s_cursors_and_a_crafted_cursor_is_refused() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    for i in 0..60 {
        requirement(&app, &t.app, &format!("u{i}"), None, false).await;
    }
    settled(&app, &t.id).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&t.admin).await.status, 303);
    let first = browser
        .get("/console/audit?eventType=SignInEvaluated")
        .await;
    assert_eq!(events_of(&first).len(), 50);
    let next = next_link(&first).expect("a next page");
    assert!(
        next.contains("eventType=SignInEvaluated"),
        "keeps the filter"
    );
    let second = browser.get(&next).await;
    assert_eq!(
        events_of(&second).len(),
        10,
        "{next} {:?}",
        events_of(&second)
    );
    assert!(next_link(&second).is_none());
    let mut users: Vec<String> = events_of(&first)
        .into_iter()
        .chain(events_of(&second))
        .map(|e| e.1)
        .collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 60, "every event once");

    // Another tenant's cursor, and a made-up one, are refused.
    let cursor = next.split("after=").nth(1).unwrap().to_owned();
    let (_, other_admin) = app.create_tenant("Other").await;
    let mut other = Browser::new(&app);
    assert_eq!(other.sign_in(&other_admin).await.status, 303);
    let forged = format!("a1{}", "0".repeat(66));
    for (b, after) in [
        (&mut other, cursor.as_str()),
        (&mut browser, forged.as_str()),
    ] {
        let page = b.get(&format!("/console/audit?after={after}")).await;
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(page.body.contains("data-error-code=\"INVALID_INPUT\""));
        assert!(page.body.contains("is not a cursor of this tenant"));
    }
}

#[tokio::test]
async fn the_console_export_is_the_api_export_for_the_same_filter() {
    let app = spawn_app().await;
    let (t, auditor, mut browser) = tenant_with_events(&app).await;
    for query in [
        "",
        "?userId=ana&eventType=SignInEvaluated",
        "?eventType=ApiKeyIssued",
    ] {
        let console = browser.get(&format!("/console/audit/export{query}")).await;
        assert_eq!(console.status, 200, "{}", console.body);
        assert_eq!(console.headers["content-type"], "application/x-ndjson");
        let api = reqwest::Client::new()
            .get(format!("{}/audit/export{query}", app.address))
            .header("authorization", format!("Bearer {auditor}"))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 200);
        let api = api.text().await.unwrap();
        assert!(!api.is_empty());
        assert_eq!(console.body, api, "{query}");
    }
    let _ = t;
    let bad = browser.get("/console/audit/export?userId=%20ana").await;
    assert_eq!(bad.status, 400);
    assert!(Browser::new(&app)
        .get("/console/audit/export")
        .await
        .status
        .eq(&303));
}

/// Reads the stream until `want` is in what arrived, or it ends; returns what arrived.
async fn read_until(stream: &mut reqwest::Response, want: &str) -> String {
    let mut seen = String::new();
    let _ = tokio::time::timeout(WAIT, async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(want) {
                return;
            }
        }
    })
    .await;
    seen
}

/// Whether the stream ends (within the bound).
async fn ends(stream: &mut reqwest::Response) -> bool {
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn the_live_stream_delivers_new_events_and_ends_when_the_session_ends() {
    let app = spawn_app().await;
    let (t, _, mut browser) = tenant_with_events(&app).await;
    let (_, other_admin) = app.create_tenant("Other").await;
    let (_, other_app) = app.issue_key(&other_admin, "APP").await;
    let mut live = browser
        .stream("/console/audit/live?eventType=SignInEvaluated")
        .await;
    assert_eq!(live.status(), 200);
    assert!(live.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    requirement(&app, &other_app, "outsider", None, false).await;
    requirement(&app, &t.app, "newcomer", None, false).await;
    let seen = read_until(&mut live, "newcomer").await;
    assert!(seen.contains("event: audit"), "{seen}");
    assert!(seen.contains("<dd data-user>newcomer</dd>"), "{seen}");
    assert!(!seen.contains("outsider"), "another tenant's event: {seen}");
    assert!(
        !seen.contains("data-user>ana<"),
        "history is not news: {seen}"
    );

    let csrf = browser.csrf().await;
    assert_eq!(
        browser
            .post("/console/sign-out", &[("csrf", &csrf)])
            .await
            .status,
        303
    );
    assert!(ends(&mut live).await, "the stream ends after sign-out");
}

#[tokio::test]
async fn the_live_stream_ends_when_its_key_is_revoked() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let (auditor_id, auditor) = app.issue_key(&t.admin, "AUDITOR").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&auditor).await.status, 303);
    let mut live = browser.stream("/console/audit/live").await;
    assert_eq!(live.status(), 200);
    let a = app
        .gql(
            Some(&t.admin),
            "mutation($k: ID!) { revokeApiKey(keyId: $k) { id } }",
            json!({ "k": auditor_id }),
        )
        .await;
    assert!(a.body["errors"].is_null(), "{}", a.body);
    assert!(ends(&mut live).await, "the stream ends after revocation");
}

#[tokio::test]
async fn live_streams_count_against_the_tenant_s_cap_and_only_its_own() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&t.admin).await.status, 303);
    let mut open = Vec::new();
    for _ in 0..twofold_services::audit::MAX_LIVE_PER_TENANT {
        let live = browser.stream("/console/audit/live").await;
        assert_eq!(live.status(), 200);
        open.push(live);
    }
    let refused = browser.get("/console/audit/live").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.body.contains("data-error-code=\"RATE_LIMITED\""));
    // Another tenant's places are its own.
    let (_, other_admin) = app.create_tenant("Other").await;
    let mut other = Browser::new(&app);
    assert_eq!(other.sign_in(&other_admin).await.status, 303);
    assert_eq!(other.stream("/console/audit/live").await.status(), 200);
    drop(open);
}

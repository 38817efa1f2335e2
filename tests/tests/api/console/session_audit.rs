//! Console sign-ins and sign-outs are in the tenant's audit history: who, with which role,
//! which session (a short reference, never the token), and when; a refused sign-in records
//! nothing, and a sign-in that cannot be recorded gets no session.

use serde_json::{json, Value};
use twofold_tests::{spawn_app, TestApp};

use super::Browser;
use crate::audit::settled;

const SESSION_EVENTS: &str = "query { auditEvents(first: 50, oldestFirst: true, filter: { eventTypes: [\"ConsoleSignedIn\", \"ConsoleSignedOut\"] }) { nodes { eventType actor data } } }";

/// The tenant's console sign-ins and sign-outs, oldest first, as `key` reads them.
async fn session_events(app: &TestApp, key: &str) -> Vec<Value> {
    let a = app.gql(Some(key), SESSION_EVENTS, json!({})).await;
    a.data()["auditEvents"]["nodes"].as_array().unwrap().clone()
}

async fn token_hash(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT token_hash FROM console_sessions")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_auditor_reads_who_signed_in_and_out_of_the_console_and_no_secret() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (auditor_id, auditor) = app.issue_key(&admin, "AUDITOR").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&auditor).await.status, 303);
    let cookie = browser.cookies["twofold_console"].clone();
    let hash = token_hash(&app).await;
    let csrf = browser.csrf().await;
    let out = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    settled(&app, &tenant).await;

    let events = session_events(&app, &auditor).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ConsoleSignedIn", "ConsoleSignedOut"], "{events:?}");
    let (signed_in, signed_out) = (&events[0], &events[1]);
    assert_eq!(signed_in["data"]["keyId"], auditor_id.as_str());
    assert_eq!(signed_in["data"]["role"], "AUDITOR");
    assert_eq!(signed_in["actor"]["keyId"], auditor_id.as_str());
    assert_eq!(signed_out["data"]["keyId"], auditor_id.as_str());
    assert_eq!(signed_out["actor"]["keyId"], auditor_id.as_str());
    // One session, named by the start of its row's hash in both.
    assert_eq!(signed_in["data"]["session"], &hash[..8]);
    assert_eq!(signed_out["data"]["session"], &hash[..8]);
    for e in [signed_in, signed_out] {
        assert!(e["data"]["at"].is_string(), "{e}");
    }

    // Nowhere in the whole history: the cookie, the key's secret, the session's full hash.
    let all = app
        .gql(
            Some(&auditor),
            "query { auditEvents(first: 500) { nodes { eventType actor requestId data } } }",
            json!({}),
        )
        .await;
    let text = all.data().to_string();
    let key_secret = auditor.rsplit('_').next().unwrap();
    for secret in [cookie.as_str(), key_secret, hash.as_str()] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    // Another tenant's auditor sees none of it.
    let (_, other_admin) = app.create_tenant("Other").await;
    let (_, other_auditor) = app.issue_key(&other_admin, "AUDITOR").await;
    assert!(session_events(&app, &other_auditor).await.is_empty());
    let theirs = app
        .gql(
            Some(&other_auditor),
            "query { auditEvents(first: 500) { nodes { data } } }",
            json!({}),
        )
        .await;
    assert!(!theirs.data().to_string().contains(&auditor_id));
}

#[tokio::test]
async fn the_audit_page_offers_and_labels_sign_ins_in_english_and_georgian() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    for (language, signed_in, signed_out) in [
        (
            "en",
            "Signed in to the console",
            "Signed out of the console",
        ),
        ("ka", "კონსოლში შესვლა", "კონსოლიდან გასვლა"),
    ] {
        let mut browser = Browser::new(&app).speaking(language);
        assert_eq!(browser.sign_in(&admin).await.status, 303);
        settled(&app, &tenant).await;
        let page = browser
            .get("/console/audit?eventType=ConsoleSignedIn&eventType=ConsoleSignedOut")
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("data-event-type=\"ConsoleSignedIn\""));
        for label in [signed_in, signed_out] {
            assert!(page.body.contains(label), "{language}: {label}");
        }
        for t in ["ConsoleSignedIn", "ConsoleSignedOut"] {
            assert!(
                page.body
                    .contains(&format!("name=\"eventType\" value=\"{t}\" checked")),
                "the filter offers {t}"
            );
        }
    }
}

#[tokio::test]
async fn refused_sign_ins_record_nothing() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    let (_, app_key) = app.issue_key(&admin, "APP").await;
    let (revoked_id, revoked) = app.issue_key(&admin, "AUDITOR").await;
    let r = app
        .gql(
            Some(&admin),
            "mutation($k: ID!) { revokeApiKey(keyId: $k) { id } }",
            json!({ "k": revoked_id }),
        )
        .await;
    assert!(r.body["errors"].is_null(), "{}", r.body);
    let last = if admin.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &admin[..admin.len() - 1]);
    for (key, status) in [
        (app_key.as_str(), 403),
        (revoked.as_str(), 401),
        (wrong.as_str(), 401),
    ] {
        let answer = Browser::new(&app).sign_in(key).await;
        assert_eq!(answer.status, status, "{key}: {}", answer.body);
    }
    assert_eq!(app.count_events(&tenant, "ConsoleSignedIn").await, 0);
    // The one that worked is the one recorded.
    assert_eq!(Browser::new(&app).sign_in(&admin).await.status, 303);
    assert_eq!(app.count_events(&tenant, "ConsoleSignedIn").await, 1);
}

/// Makes the history refuse events of `event_type`, as a failing database would.
async fn refuse(app: &TestApp, event_type: &str) {
    for statement in [
        "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
            .to_owned(),
        format!(
            "CREATE TRIGGER refuse_event BEFORE INSERT ON events FOR EACH ROW \
             WHEN (NEW.event_type = '{event_type}') EXECUTE FUNCTION refuse_event()"
        ),
    ] {
        sqlx::query(&statement).execute(&app.db).await.unwrap();
    }
}

async fn sessions(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_sign_in_that_cannot_be_recorded_gets_no_session() {
    let app = spawn_app().await;
    let (tenant, admin) = app.create_tenant("Acme").await;
    refuse(&app, "ConsoleSignedIn").await;
    let mut browser = Browser::new(&app);
    let answer = browser.sign_in(&admin).await;
    assert_eq!(answer.status, 500, "{}", answer.body);
    assert!(answer.body.contains("data-error-code=\"INTERNAL\""));
    assert!(!browser.cookies.contains_key("twofold_console"));
    assert_eq!(
        sessions(&app).await,
        0,
        "no session without its sign-in in the history"
    );
    assert_eq!(app.count_events(&tenant, "ConsoleSignedIn").await, 0);
}

#[tokio::test]
async fn a_sign_out_that_cannot_be_recorded_still_ends_the_session() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    let cookie = browser.cookies["twofold_console"].clone();
    refuse(&app, "ConsoleSignedOut").await;
    let csrf = browser.csrf().await;
    let out = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 500, "{}", out.body);
    assert!(out.body.contains("data-error-code=\"INTERNAL\""));
    assert!(!browser.cookies.contains_key("twofold_console"));
    assert_eq!(sessions(&app).await, 0);
    // The old cookie, kept by a browser that ignored the answer, opens nothing either.
    let mut kept = Browser::new(&app);
    kept.cookies.insert("twofold_console".into(), cookie);
    assert_eq!(kept.get("/console").await.location(), "/console/sign-in");
}

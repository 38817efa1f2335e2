//! What every console page carries: its security headers, no inline script or style, the
//! reader's language, and no action for an AUDITOR.

use twofold_tests::{spawn_app, spawn_app_with, TestOptions};

use super::Browser;

#[tokio::test]
async fn every_page_has_a_strict_policy_and_no_inline_script_or_style() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let mut browser = Browser::new(&app);
    let sign_in = browser.get("/console/sign-in").await;
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    let mut pages = vec![sign_in];
    for path in [
        "/console",
        "/console/sign-out",
        "/console/no-such-page",
        "/console/compliance",
        "/console/audit",
    ] {
        pages.push(browser.get(path).await);
    }
    for path in ["/console/users", "/console/keys"] {
        pages.push(browser.get(path).await);
    }
    let csrf = browser.csrf().await;
    let issued = browser
        .post(
            "/console/keys",
            &[("csrf", &csrf), ("role", "APP"), ("label", "scan")],
        )
        .await;
    assert_eq!(issued.status, 200);
    pages.push(issued);
    for page in &pages {
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(page.headers["x-frame-options"], "DENY");
        assert_eq!(page.headers["cache-control"], "no-store");
        assert!(page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),);
        let body = page.body.to_lowercase();
        assert!(!body.contains(" style="), "inline style: {}", page.body);
        assert!(!body.contains("<style"), "inline style: {}", page.body);
        assert!(
            !has_event_handler(&body),
            "an event handler attribute: {}",
            page.body
        );
        for script in body.split("<script").skip(1) {
            assert!(
                script.trim_start().starts_with("src="),
                "inline script: {script}"
            );
        }
        assert!(
            !body.contains("https://") && !body.contains("http://"),
            "{}",
            page.body
        );
    }
    assert_eq!(pages[3].status, 404);
    let css = browser.get("/console/assets/console.css").await;
    assert_eq!(css.status, 200);
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let js = browser.get("/console/assets/live.js").await;
    assert_eq!(js.status, 200);
    assert!(js.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(pages[5]
        .body
        .contains("<script src=\"/console/assets/live.js\""));
}

/// Whether `html` has an attribute such as `onclick=` (an inline script).
fn has_event_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
        !name.is_empty() && rest[name.len()..].trim_start().starts_with('=')
    })
}

#[test]
fn event_handlers_are_found_and_words_are_not() {
    assert!(has_event_handler("<a onclick=\"x()\">"));
    assert!(has_event_handler("<body onload = 'x'>"));
    assert!(!has_event_handler("<p>a session at once, on time</p>"));
}

#[tokio::test]
async fn pages_speak_the_browser_s_language_and_the_switcher_changes_it() {
    let app = spawn_app().await;
    let mut georgian = Browser::new(&app).speaking("ka-GE,ka;q=0.9,en;q=0.5");
    let page = georgian.get("/console/sign-in").await;
    assert!(page.body.contains("<html lang=\"ka\">"), "{}", page.body);
    assert!(page.body.contains("კონსოლში შესვლა"), "{}", page.body);
    let mut english = Browser::new(&app).speaking("de-CH, en;q=0.5");
    let page = english.get("/console/sign-in").await;
    assert!(page.body.contains("<html lang=\"en\">"));
    assert!(page.body.contains("Sign in to the console"));
    // The switcher: remembered, and back to the same page (never to another site).
    let switched = english
        .get("/console/language?lang=ka&back=/console/sign-in")
        .await;
    assert_eq!(switched.status, 303);
    assert_eq!(switched.location(), "/console/sign-in");
    let page = english.get("/console/sign-in").await;
    assert!(page.body.contains("<html lang=\"ka\">"));
    for back in [
        "https://evil.example",
        "//evil.example",
        "/console/\\evil",
        "/graphql",
    ] {
        let r = english
            .get(&format!("/console/language?lang=en&back={back}"))
            .await;
        assert_eq!(r.location(), "/console", "{back}");
    }
}

#[tokio::test]
async fn an_auditor_is_told_the_session_is_read_only() {
    let app = spawn_app().await;
    let (_, admin) = app.create_tenant("Acme").await;
    let (_, auditor) = app.issue_key(&admin, "AUDITOR").await;
    let mut reader = Browser::new(&app);
    assert_eq!(reader.sign_in(&auditor).await.status, 303);
    let page = reader.get("/console").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-read-only"), "{}", page.body);
    assert!(page.body.contains("data-role=\"AUDITOR\""));
    let mut writer = Browser::new(&app);
    assert_eq!(writer.sign_in(&admin).await.status, 303);
    let page = writer.get("/console").await;
    assert!(!page.body.contains("data-read-only"));
    assert!(page.body.contains("data-role=\"ADMIN\""));
}

#[tokio::test]
async fn the_console_can_be_switched_off() {
    let app = spawn_app_with(TestOptions {
        console: false,
        ..TestOptions::default()
    })
    .await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.get("/console/sign-in").await.status, 404);
    assert_eq!(browser.get("/console").await.status, 404);
    assert_eq!(browser.get("/console/assets/console.css").await.status, 404);
}

#[tokio::test]
async fn the_overview_shows_the_read_model_s_figures_and_today_s_activity() {
    use crate::sign_in::{acme, requirement};
    use crate::totp::{enroll, verify};
    let app = spawn_app().await;
    let t = acme(&app).await;
    requirement(&app, &t.app, "ana", None, false).await;
    let (mut authenticator, _) = enroll(&app, &t.app, "alice").await;
    verify(&app, &t.app, "alice", "TOTP", &authenticator.next_code()).await;
    verify(&app, &t.app, "alice", "TOTP", &authenticator.wrong_code()).await;
    verify(&app, &t.app, "alice", "TOTP", &authenticator.wrong_code()).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&t.admin).await.status, 303);
    let page = browser.get("/console").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let figure = |name: &str| {
        let marker = format!("data-figure=\"{name}\">");
        let rest = page.body.split(&marker).nth(1).unwrap();
        rest[..rest.find('<').unwrap()].to_owned()
    };
    assert_eq!(figure("users-seen"), "2");
    assert_eq!(figure("enrolled"), "1");
    assert_eq!(figure("in-grace"), "0");
    assert_eq!(figure("locked-out"), "0");
    assert_eq!(figure("enforcement"), "Not required");
    // Thirty days, today last, with today's sign-in and two failed codes.
    assert_eq!(page.body.matches("<tr data-day=").count(), 30);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let row = page
        .body
        .split(&format!("<tr data-day=\"{today}\">"))
        .nth(1)
        .expect("today is in the table");
    assert!(
        row.contains("<td data-sign-ins>1</td><td data-failed>2</td>"),
        "{row}"
    );
    assert!(page.body.contains("data-chart=\"activity\""));
    assert!(
        page.body.contains("1 sign-ins and 2 failed codes"),
        "the chart's text alternative"
    );
}

/// The `back` of the page's language switcher.
fn switcher_back(page: &super::Answer) -> String {
    let form = page
        .body
        .split("action=\"/console/language\"")
        .nth(1)
        .expect("a language switcher");
    let back = form.split("name=\"back\" value=\"").nth(1).unwrap();
    super::compliance::unescape(&back[..back.find('"').unwrap()])
}

#[tokio::test]
async fn the_switcher_on_a_refused_form_returns_to_the_form_s_page() {
    let app = spawn_app().await;
    let t = crate::sign_in::acme(&app).await;
    for user in ["dave", ".."] {
        crate::totp::enroll(&app, &t.app, user).await;
    }
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&t.admin).await.status, 303);
    let csrf = browser.csrf().await;
    let refusals = [
        (
            "/console/users/dave/reset",
            csrf.as_str(),
            "/console/users/dave",
        ),
        (
            "/console/user/reset?id=..",
            csrf.as_str(),
            "/console/user?id=..",
        ),
        ("/console/users/dave/reset", "forged", "/console/users/dave"),
        (
            "/console/keys/nosuchkey/revoke",
            csrf.as_str(),
            "/console/keys",
        ),
        ("/console/policy", csrf.as_str(), "/console/policy"),
    ];
    for (path, csrf, page) in refusals {
        let refused = browser
            .post(path, &[("csrf", csrf), ("reason", ""), ("codeDigits", "x")])
            .await;
        assert!(refused.status >= 400, "{path}: {}", refused.body);
        assert!(refused.body.contains("<html lang=\"en\">"));

        // As the browser submits the switcher's form.
        let back = switcher_back(&refused);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("back", back.as_str()), ("lang", "ka")])
            .finish();
        let switched = browser.get(&format!("/console/language?{query}")).await;
        assert_eq!(switched.status, 303);
        let again = browser.get(switched.location()).await;
        assert_eq!(again.status, 200, "{path} back to {back}: {}", again.body);
        assert!(again.body.contains("<html lang=\"ka\">"), "{path}");
        assert_eq!(switched.location(), page, "{path}");
        // Back to English for the next refusal.
        browser.get("/console/language?lang=en").await;
    }
    // A page's own query comes back with it, unless it is too long to: then the page alone.
    let page = browser.get("/console/users/dave?done=reset").await;
    assert_eq!(switcher_back(&page), "/console/users/dave?done=reset");
    let long = format!("/console/audit?userId%3D{}", "a".repeat(600));
    let switched = browser
        .get(&format!("/console/language?lang=en&back={long}"))
        .await;
    assert_eq!(switched.location(), "/console/audit");
}

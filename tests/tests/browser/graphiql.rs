//! GraphiQL (GET /graphql) in a real browser: it starts under its strict policy, which the
//! HTTP-level tests (tests/api/graphiql.rs) can only read, not run.

use fantoccini::Locator;
use twofold_tests::browser::{Browser, ConsoleMessage, Violation};
use twofold_tests::spawn_app;

/// The serious or critical axe rules GraphiQL 4.1.2's own markup fails (decision 127):
/// CodeMirror's hidden textareas have no label and its scroller takes no focus, the tab list
/// nests buttons in tabs, and the editor's theme and line numbers have low contrast.
const GRAPHIQL_KNOWN_VIOLATIONS: [&str; 4] = [
    "color-contrast",
    "label",
    "nested-interactive",
    "scrollable-region-focusable",
];

/// Messages that say the browser refused something because of the page's policy.
fn policy_violations(messages: &[ConsoleMessage]) -> Vec<&ConsoleMessage> {
    messages
        .iter()
        .filter(|m| {
            m.message.contains("Content Security Policy")
                || m.message.contains("Content-Security-Policy")
        })
        .collect()
}

#[tokio::test]
async fn graphiql_starts_under_its_content_security_policy() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/graphql", app.address)).await;
    // The editor exists only once init.js ran with React, ReactDOM and GraphiQL loaded.
    browser
        .client()
        .wait()
        .for_element(Locator::Css(".graphiql-container .graphiql-query-editor"))
        .await
        .expect("GraphiQL's query editor appears");
    // Its schema request reaches the service and the answer the page: introspection without a
    // key is refused. Checked after the console, which says why when the policy blocked it.
    let answered = browser
        .client()
        .wait()
        .for_element(Locator::XPath(
            "//*[contains(@class, 'graphiql-response')][contains(., 'UNAUTHENTICATED')]",
        ))
        .await;
    let messages = browser.console_messages().await;
    let refused = policy_violations(&messages);
    assert!(
        refused.is_empty(),
        "the page's policy blocked something: {refused:#?}"
    );
    // The browser asks for /favicon.ico on its own; the service has none (a 404 is logged).
    let errors: Vec<_> = messages
        .iter()
        .filter(|m| m.level == "SEVERE" && !m.message.contains("/favicon.ico "))
        .collect();
    assert!(errors.is_empty(), "console errors: {:?}", errors);
    answered.expect("the service's answer to GraphiQL's schema request is shown");
    browser.screenshot("graphiql").await;

    // GraphiQL's own markup fails four serious or critical axe rules (decision 127): not ours
    // to fix in a vendored, minified bundle. Any other one is a regression of ours (our page,
    // init.js, twofold.css) and fails here; the full list is in target/screenshots/graphiql.axe.json.
    let blocking: Vec<_> = browser
        .accessibility_violations("graphiql")
        .await
        .into_iter()
        .filter(Violation::is_blocking)
        .collect();
    let new: Vec<_> = blocking
        .iter()
        .filter(|v| !GRAPHIQL_KNOWN_VIOLATIONS.contains(&v.rule.as_str()))
        .collect();
    assert!(
        new.is_empty(),
        "new accessibility violations on GraphiQL: {new:#?}"
    );
    browser.close().await;
}

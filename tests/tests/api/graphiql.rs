//! GraphiQL comes from the binary, never from a CDN, under a strict Content-Security-Policy,
//! and can be switched off (issue 14, point 9).

use serde_json::{json, Value};
use twofold_tests::{spawn_app, spawn_app_with, TestOptions};

/// Every `src="..."` and `href="..."` of the page.
fn references(page: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in page.match_indices(attribute) {
            let rest = &page[at + attribute.len()..];
            found.push(rest[..rest.find('"').expect("a closed attribute")].to_owned());
        }
    }
    found
}

#[tokio::test]
async fn graphiql_is_served_from_this_origin_only() {
    let app = spawn_app().await;
    let res = app.get("/graphql").await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let policy = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let script_src = policy
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap_or_else(|| panic!("no script-src in {policy}"));
    assert_eq!(script_src, "script-src 'self'", "{policy}");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    let page = res.text().await.unwrap();
    assert!(
        !page.contains("://") && !page.contains("\"//"),
        "an external reference: {page}"
    );
    assert!(!page.contains("unpkg") && !page.contains("cdn"), "{page}");
    // No inline script: every <script> loads a file and holds nothing.
    assert_eq!(
        page.matches("<script").count(),
        page.matches("></script>").count()
    );
    assert!(page.matches("<script src=\"/").count() >= 4, "{page}");

    let refs = references(&page);
    assert!(refs.len() >= 5, "{refs:?}");
    for path in &refs {
        assert!(path.starts_with("/graphiql/"), "{path}");
        let res = app.get(path).await;
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
        let expected = if path.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(kind.starts_with(expected), "{path}: {kind}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        let cache = res.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(cache.contains("max-age=31536000"), "{path}: {cache}");
        let body = res.bytes().await.unwrap();
        assert!(!body.is_empty(), "{path}");
    }
    let script = refs
        .iter()
        .find(|p| p.ends_with("/graphiql.min.js"))
        .unwrap();
    let body = app.get(script).await.text().await.unwrap();
    assert!(body.contains("GraphiQL"));

    // Files outside the current build's version are not served.
    let stale = script.replace("/graphiql/", "/graphiql/0").to_owned();
    let res = app.get(&stale).await;
    assert_eq!(res.status().as_u16(), 404);
    let res = app.get("/graphiql/x/../../Cargo.toml").await;
    assert_eq!(res.status().as_u16(), 404);
}

#[tokio::test]
async fn graphiql_can_be_switched_off() {
    let app = spawn_app_with(TestOptions {
        graphiql: false,
        ..TestOptions::default()
    })
    .await;
    let res = app.get("/graphql").await;
    assert_eq!(res.status().as_u16(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("TWOFOLD_GRAPHIQL"));
    // GraphQL itself still answers.
    let a = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(a.data()["__typename"], "Query");
}

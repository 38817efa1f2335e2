//! The compliance page: every user without 2FA exactly once across its pages, the whole list
//! as a CSV a spreadsheet cannot be tricked by, for auditors too, and never another tenant's.

use std::collections::BTreeSet;

use futures::StreamExt;
use twofold_tests::{spawn_app, TestApp};

use super::{Answer, Browser};
use crate::sign_in::{acme, requirement};
use crate::totp::enroll;

/// The text of an HTML attribute or element as askama escaped it.
pub(crate) fn unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

/// The `data-user` values of a page, in order.
fn users_of(page: &Answer) -> Vec<String> {
    page.body
        .split("<tr data-user=\"")
        .skip(1)
        .map(|rest| unescape(&rest[..rest.find('"').unwrap()]))
        .collect()
}

/// The href of the page's `data-next-page` link, if any.
pub(crate) fn next_link(page: &Answer) -> Option<String> {
    let at = page.body.find("data-next-page")?;
    let before = &page.body[..at];
    let start = before.rfind("href=\"").unwrap() + "href=\"".len();
    Some(unescape(
        &before[start..][..before[start..].find('"').unwrap()],
    ))
}

/// The cells of each line of a CSV (quotes and doubled quotes, as RFC 4180 has them).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}

const FORMULA: &str = "=HYPERLINK(\"evil.example\",\"Click, me\")";

async fn show_users(app: &TestApp, key: &str, users: &[String]) {
    futures::stream::iter(users.iter().map(|u| requirement(app, key, u, None, false)))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
}

#[tokio::test]
async fn pages_and_the_csv_list_every_user_without_2fa_once_and_neutralise_formulas() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let mut expected: Vec<String> = (0..119).map(|i| format!("user-{i:03}")).collect();
    expected.push(FORMULA.to_owned());
    show_users(&app, &t.app, &expected).await;
    enroll(&app, &t.app, "alice").await;
    // Another tenant's users are never listed.
    let (_, other_admin) = app.create_tenant("Other").await;
    let (_, other_app) = app.issue_key(&other_admin, "APP").await;
    requirement(&app, &other_app, "outsider", None, false).await;
    let (_, auditor) = app.issue_key(&t.admin, "AUDITOR").await;

    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&auditor).await.status, 303);
    let mut seen = Vec::new();
    let mut path = "/console/compliance".to_owned();
    let mut pages = 0;
    loop {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        if pages == 0 {
            assert!(
                page.body.contains("data-figure=\"total\">121<"),
                "{}",
                page.body
            );
            assert!(page.body.contains("data-figure=\"enrolled\">1<"));
            assert!(page.body.contains("data-figure=\"not-enrolled\">120<"));
        }
        assert!(users_of(&page).len() <= 50);
        seen.extend(users_of(&page));
        pages += 1;
        match next_link(&page) {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(pages, 3, "50 a page");
    assert_eq!(seen.len(), 120, "nobody twice: {seen:?}");
    let seen: BTreeSet<String> = seen.into_iter().collect();
    let wanted: BTreeSet<String> = expected.iter().cloned().collect();
    assert_eq!(seen, wanted);

    let csv = browser.get("/console/compliance.csv").await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(csv.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let rows = parse_csv(&csv.body);
    assert_eq!(rows[0], ["user_id", "first_seen_at", "grace_ends_at"]);
    let ids: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids.len(), 120);
    assert!(rows[1..].iter().all(|r| r.len() == 3), "{rows:?}");
    let mut listed: BTreeSet<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    // The formula comes back as text a spreadsheet shows rather than runs.
    assert!(listed.remove(&format!("'{FORMULA}")), "{listed:?}");
    assert!(!ids.iter().any(|id| id.starts_with('=')));
    let mut wanted = wanted;
    wanted.remove(FORMULA);
    assert_eq!(listed, wanted);
}

#[tokio::test]
async fn a_crafted_cursor_is_refused_with_the_api_s_error() {
    let app = spawn_app().await;
    let t = acme(&app).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&t.admin).await.status, 303);
    for after in ["c2AAAA", "nonsense", "a1deadbeef"] {
        let page = browser
            .get(&format!("/console/compliance?after={after}"))
            .await;
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(page.body.contains("data-error-code=\"INVALID_INPUT\""));
        assert!(
            page.body.contains("is not a cursor of this report"),
            "the API's message: {}",
            page.body
        );
    }
    // Signed out, the CSV is not served.
    let mut stranger = Browser::new(&app);
    let csv = stranger.get("/console/compliance.csv").await;
    assert_eq!(csv.status, 303);
}

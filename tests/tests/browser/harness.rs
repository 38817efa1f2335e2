//! The browser harness itself: each check it offers can fail, and browsers are independent.

use futures::FutureExt;
use twofold_tests::browser::{screenshots_dir, Browser, BrowserOptions};

use crate::pages::{serve, ACCESSIBLE, IMAGE_WITHOUT_ALT};

#[tokio::test]
async fn the_accessibility_check_fails_on_an_image_without_alt_text() {
    let address = serve(IMAGE_WITHOUT_ALT, None).await;
    let browser = Browser::start().await;
    browser.goto(&address).await;

    let failure =
        std::panic::AssertUnwindSafe(browser.assert_accessible("harness-image-without-alt"))
            .catch_unwind()
            .await
            .expect_err("an image without alt text passed the accessibility check");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("- image-alt (critical): Images must have alternative text"),
        "{message}"
    );
    assert!(message.contains("on: #dot"), "{message}");
    assert!(
        message.contains("dequeuniversity.com/rules/axe/"),
        "{message}"
    );

    let written =
        std::fs::read_to_string(screenshots_dir().join("harness-image-without-alt.axe.json"))
            .expect("the full result is written beside the screenshots");
    let result: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert!(result["violations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["id"] == "image-alt"));
    assert!(
        !result["passes"].as_array().unwrap().is_empty(),
        "not the full result"
    );
    browser.close().await;
}

#[tokio::test]
async fn the_accessibility_check_passes_the_same_page_with_alt_text() {
    let address = serve(ACCESSIBLE, None).await;
    let browser = Browser::start().await;
    browser.goto(&address).await;
    let all = browser.accessibility_violations("harness-accessible").await;
    assert!(all.is_empty(), "{all:#?}");
    browser.assert_accessible("harness-accessible").await;
    browser.close().await;
}

#[tokio::test]
async fn console_messages_report_what_the_policy_blocked() {
    // An inline script, refused by a policy that allows scripts from files of this origin only.
    const INLINE: &str = r#"<!DOCTYPE html><html lang="en"><head><title>Inline</title></head>
<body><main><h1>Inline</h1><script>document.title = "ran";</script></main></body></html>"#;
    let address = serve(INLINE, Some("default-src 'none'; script-src 'self'")).await;
    let browser = Browser::start().await;
    browser.goto(&address).await;
    let title = browser.client().title().await.unwrap();
    assert_eq!(title, "Inline", "the inline script ran despite the policy");
    let messages = browser.console_messages().await;
    assert!(
        messages
            .iter()
            .any(|m| m.level == "SEVERE" && m.message.contains("Content Security Policy")),
        "{messages:#?}"
    );
    browser.close().await;
}

#[tokio::test]
async fn the_mobile_viewport_is_375_css_pixels_wide_and_screenshots_are_pngs() {
    let address = serve(ACCESSIBLE, None).await;
    let browsers = Browser::start_several(&[
        BrowserOptions::default(),
        BrowserOptions {
            viewport: twofold_tests::browser::Viewport::Mobile,
            ..BrowserOptions::default()
        },
    ])
    .await;
    let mut widths = Vec::new();
    for (browser, name) in browsers.iter().zip(["harness-desktop", "harness-mobile"]) {
        browser.goto(&address).await;
        let width = browser
            .client()
            .execute("return window.innerWidth;", vec![])
            .await
            .unwrap();
        widths.push(width.as_u64().unwrap());
        let path = browser.screenshot(name).await;
        assert_eq!(path, screenshots_dir().join(format!("{name}.png")));
        let png = image::open(&path).expect("a PNG");
        widths.push(u64::from(png.width()));
    }
    // Desktop: 1280 CSS pixels, one device pixel each; mobile: 375 at two.
    assert_eq!(widths, [1280, 1280, 375, 750]);
    for browser in browsers {
        browser.close().await;
    }
}

#[tokio::test]
async fn browsers_do_not_share_cookies() {
    let address = serve(ACCESSIBLE, None).await;
    let browsers =
        Browser::start_several(&[BrowserOptions::default(), BrowserOptions::default()]).await;
    for browser in &browsers {
        browser.goto(&address).await;
    }
    browsers[0]
        .client()
        .execute("document.cookie = 'session=first; path=/';", vec![])
        .await
        .unwrap();
    let read = |b: &Browser| {
        let client = b.client().clone();
        async move {
            client
                .execute("return document.cookie;", vec![])
                .await
                .unwrap()
        }
    };
    assert_eq!(read(&browsers[0]).await, "session=first");
    assert_eq!(read(&browsers[1]).await, "");
    for browser in browsers {
        browser.close().await;
    }
}

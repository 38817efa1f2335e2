//! Tests in a real browser: Debian's headless Chromium driven over WebDriver (`fantoccini`).
//!
//! Each [`Browser`] has its own chromedriver (on a free loopback port) and its own fresh
//! profile folder, so tests run in parallel without sharing cookies or storage. At most
//! `TWOFOLD_TEST_BROWSERS` (default 2) run at once in a test process: every Chromium takes a few
//! hundred MB and the machine has 2 cores, so further tests wait for a slot. Screenshots and
//! accessibility results go to `<target>/screenshots/`.
//!
//! Chromium runs without its sandbox (`--no-sandbox`: tests run as root on CI, where the
//! sandbox cannot start); it only ever loads pages served by the test itself.

mod artifacts;
mod axe;
mod driver;
mod webauthn;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

pub use artifacts::{screenshots_dir, target_dir};
pub use axe::Violation;
use driver::Driver;

/// The window the page is laid out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewport {
    /// A 1280 × 800 window: a page 1280 CSS pixels wide, one device pixel each.
    Desktop,
    /// A phone: 375 × 812 CSS pixels at 2 device pixels each, touch, mobile layout rules
    /// (the page's `<meta name="viewport">` applies).
    Mobile,
}

/// How a browser is set up.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    pub viewport: Viewport,
    /// The UI language and what `Accept-Language` asks for, e.g. `en-US` or `ka`. Fixed
    /// rather than taken from the machine, so a page's language does not depend on where the
    /// test runs.
    pub language: String,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            viewport: Viewport::Desktop,
            language: "en-US".to_owned(),
        }
    }
}

/// A message the page wrote to the browser's console, or the browser wrote about the page
/// (a Content-Security-Policy violation, a failed load).
#[derive(Debug, Clone)]
pub struct ConsoleMessage {
    /// `SEVERE`, `WARNING`, `INFO`, ...
    pub level: String,
    /// Where it came from: `console-api`, `security`, `network`, `javascript`, ...
    pub source: String,
    pub message: String,
}

/// A headless Chromium with its own chromedriver and profile.
pub struct Browser {
    client: Client,
    // Dropped in this order: the driver (which kills Chromium) before its profile folder.
    _driver: Driver,
    _profile: tempfile::TempDir,
    _slot: SemaphorePermit<'static>,
}

fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(slot_count()))
}

fn slot_count() -> usize {
    std::env::var("TWOFOLD_TEST_BROWSERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(2)
}

/// A binary: `$variable` when set, else `default`.
fn binary(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/ensure-deps (installs Debian's chromium and \
         chromium-driver), or point {variable} at it",
        path.display()
    );
    path
}

impl Browser {
    /// A desktop-sized browser in English.
    pub async fn start() -> Browser {
        Self::start_with(BrowserOptions::default()).await
    }

    /// A phone-sized browser (375 px wide) in English.
    pub async fn start_mobile() -> Browser {
        Self::start_with(BrowserOptions {
            viewport: Viewport::Mobile,
            ..BrowserOptions::default()
        })
        .await
    }

    /// A browser set up as `options` say; waits for a free slot first.
    pub async fn start_with(options: BrowserOptions) -> Browser {
        let slot = slots()
            .acquire()
            .await
            .expect("the browser slots stay open");
        Self::launch(&options, slot).await
    }

    /// Several browsers at once (an admin and an auditor side by side, say). Their slots are
    /// taken together: two tests each holding one slot and waiting for a second would wait
    /// for ever.
    pub async fn start_several(options: &[BrowserOptions]) -> Vec<Browser> {
        let count = u32::try_from(options.len()).expect("a few browsers");
        assert!(
            options.len() <= slot_count(),
            "{count} browsers at once, but TWOFOLD_TEST_BROWSERS allows {}",
            slot_count()
        );
        let mut slots = slots()
            .acquire_many(count)
            .await
            .expect("the browser slots stay open");
        let mut browsers = Vec::with_capacity(options.len());
        for options in options {
            let slot = slots.split(1).expect("one slot per browser");
            browsers.push(Self::launch(options, slot).await);
        }
        browsers
    }

    async fn launch(options: &BrowserOptions, slot: SemaphorePermit<'static>) -> Browser {
        let chromium = binary("TWOFOLD_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("TWOFOLD_CHROMEDRIVER", "/usr/bin/chromedriver");
        let profile = tempfile::Builder::new()
            .prefix("twofold-browser-")
            .tempdir()
            .expect("a profile folder");
        let driver = Driver::start(&chromedriver, profile.path()).await;
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities(options, &chromium, profile.path()));
        let client = builder
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("opening a Chromium session: {e}"));
        client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(Duration::from_secs(60)),
                Some(Duration::from_secs(30)),
                Some(Duration::ZERO),
            ))
            .await
            .expect("setting the session's timeouts");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
            _slot: slot,
        }
    }

    /// The WebDriver client, for everything this helper does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Writes what the window shows to `<target>/screenshots/<name>.png`; returns the path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("taking a screenshot");
        let path = screenshots_dir().join(format!("{}.png", artifacts::checked_name(name)));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Runs axe-core on the current page, writes its full result to
    /// `<target>/screenshots/<name>.axe.json` and returns every violation, whatever its impact.
    pub async fn accessibility_violations(&self, name: &str) -> Vec<Violation> {
        let path = screenshots_dir().join(format!("{}.axe.json", artifacts::checked_name(name)));
        let result = axe::run(&self.client).await;
        let text = serde_json::to_string_pretty(&result).expect("axe's result as JSON");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        axe::violations(&result)
    }

    /// Fails unless axe-core finds no serious or critical violation on the current page; the
    /// failure lists each with its rule, impact, elements and help. The full result is written
    /// as by [`Browser::accessibility_violations`].
    pub async fn assert_accessible(&self, name: &str) {
        let blocking: Vec<_> = self
            .accessibility_violations(name)
            .await
            .into_iter()
            .filter(Violation::is_blocking)
            .collect();
        let url = self.client.current_url().await.map(String::from);
        assert!(
            blocking.is_empty(),
            "axe-core found {} serious or critical accessibility violation(s) on {} ({}):\n{}\n\
             full result: {}",
            blocking.len(),
            name,
            url.unwrap_or_else(|e| format!("url unknown: {e}")),
            axe::describe(&blocking),
            screenshots_dir().join(format!("{name}.axe.json")).display()
        );
    }

    /// The console messages logged since the last call (chromedriver hands each out once).
    pub async fn console_messages(&self) -> Vec<ConsoleMessage> {
        let answer = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("reading the browser's console");
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        answer
            .as_array()
            .expect("the log is a list")
            .iter()
            .map(|entry| ConsoleMessage {
                level: text(&entry["level"]),
                source: text(&entry["source"]),
                message: text(&entry["message"]),
            })
            .collect()
    }

    /// Adds a virtual platform authenticator (a passkey holder that verifies its user and
    /// answers every ceremony at once): its id.
    pub async fn add_virtual_authenticator(&self) -> String {
        let answer = self
            .client
            .issue_cmd(webauthn::WebAuthnCommand::add_platform_authenticator())
            .await
            .expect("adding a virtual authenticator");
        answer.as_str().expect("the authenticator's id").to_owned()
    }

    /// The credentials the virtual authenticator `id` holds, as WebDriver describes them
    /// (`credentialId`, `rpId`, `isResidentCredential`, `signCount`, ...).
    pub async fn virtual_credentials(&self, id: &str) -> Vec<Value> {
        let answer = self
            .client
            .issue_cmd(webauthn::WebAuthnCommand::credentials(id))
            .await
            .expect("reading the virtual authenticator's credentials");
        answer.as_array().expect("a list").clone()
    }

    /// Ends the session (Chromium closes) and then chromedriver. Dropping a `Browser` kills
    /// both at once instead, which is also safe.
    pub async fn close(self) {
        let Browser {
            client,
            _driver,
            _profile,
            _slot,
        } = self;
        // A failure here still ends everything: the driver's drop kills the process group.
        let _ = client.close().await;
        // Chromium must be gone before its profile folder is removed.
        drop(_driver);
        drop(_profile);
        drop(_slot);
    }
}

fn capabilities(
    options: &BrowserOptions,
    chromium: &std::path::Path,
    profile: &std::path::Path,
) -> Capabilities {
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        // /dev/shm may be small in a container; Chromium crashes on a full one.
        "--disable-dev-shm-usage".to_owned(),
        format!("--user-data-dir={}", profile.display()),
        format!("--lang={}", options.language),
    ];
    let mut chrome = json!({
        "binary": chromium,
        "prefs": { "intl": { "accept_languages": options.language } },
    });
    match options.viewport {
        Viewport::Desktop => args.push("--window-size=1280,800".to_owned()),
        Viewport::Mobile => {
            chrome["mobileEmulation"] = json!({
                "deviceMetrics": {
                    "width": 375, "height": 812, "pixelRatio": 2.0, "touch": true, "mobile": true
                }
            });
        }
    }
    chrome["args"] = json!(args);
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": chrome,
        // Keep every console message, for `console_messages`.
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    match capabilities {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// chromedriver's own command for the browser's console log (not in the W3C standard).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a session is open");
        base_url.join(&format!("session/{session}/se/log"))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

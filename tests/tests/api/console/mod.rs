//! The console over plain HTTP: sessions, CSRF, roles and headers, as a browser without
//! JavaScript meets them (the real-browser tests are in `tests/browser`).

mod attacks;
mod audit;
mod compliance;
mod compliance_cap;
mod keys;
mod pages;
mod policy;
mod review3;
mod session_audit;
mod sessions;
mod user_ids;
mod users;

use std::collections::HashMap;

use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::redirect::Policy;
use twofold_tests::TestApp;

/// A cookie-keeping client that does not follow redirects, so each answer can be read.
pub(crate) struct Browser {
    client: reqwest::Client,
    base: String,
    pub(crate) cookies: HashMap<String, String>,
    /// Every `Set-Cookie` line received, in order.
    pub(crate) set_cookies: Vec<String>,
    accept_language: Option<String>,
    /// Headers sent with every request (what a proxy in front adds, a browser's `Origin`).
    extra_headers: Vec<(String, String)>,
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the first `name="{field}" value="..."` in the page.
    pub(crate) fn field(&self, field: &str) -> String {
        let marker = format!("name=\"{field}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {field} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: app.address.clone(),
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
            accept_language: None,
            extra_headers: Vec::new(),
        }
    }

    pub(crate) fn speaking(mut self, accept_language: &str) -> Self {
        self.accept_language = Some(accept_language.to_owned());
        self
    }

    pub(crate) fn with_header(mut self, name: &str, value: &str) -> Self {
        self.extra_headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let mut request = request.header(COOKIE, self.cookie_header());
        if let Some(l) = &self.accept_language {
            request = request.header("accept-language", l);
        }
        for (name, value) in &self.extra_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.unwrap();
        for line in response.headers().get_all(SET_COOKIE) {
            let line = line.to_str().unwrap().to_owned();
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || line.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.push(line);
        }
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Answer {
        let r = self.client.get(format!("{}{path}", self.base));
        self.send(r).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let r = self.client.post(format!("{}{path}", self.base)).form(form);
        self.send(r).await
    }

    /// A GET whose body is left unread, for long answers (the live stream) read chunk by chunk.
    pub(crate) async fn stream(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap()
    }

    /// Signs in with `key` through the form; returns the answer to the form's POST.
    pub(crate) async fn sign_in(&mut self, key: &str) -> Answer {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.field("csrf");
        self.post("/console/sign-in", &[("key", key), ("csrf", &csrf)])
            .await
    }

    /// The CSRF token of the signed-in session, read from the sign-out page's form.
    pub(crate) async fn csrf(&mut self) -> String {
        let page = self.get("/console/sign-out").await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.field("csrf")
    }
}

/// Sends `request(i)` in concurrent batches of 100 (the budget's burst) until one is answered
/// 429, and returns every status seen and that answer. Batches rather than one burst: under a
/// loaded machine a single burst can be slower than the budget refills (50 a second), and the
/// test would depend on timing.
pub(crate) async fn until_throttled(
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> (Vec<u16>, reqwest::Response) {
    let mut statuses = Vec::new();
    for batch in 0..50 {
        let answers =
            futures::future::join_all((0..100).map(|i| request(batch * 100 + i).send())).await;
        let mut throttled = None;
        for answer in answers {
            let answer = answer.unwrap();
            statuses.push(answer.status().as_u16());
            if answer.status() == 429 && throttled.is_none() {
                throttled = Some(answer);
            }
        }
        if let Some(answer) = throttled {
            return (statuses, answer);
        }
    }
    panic!("never throttled: {statuses:?}");
}

/// Signs in with made-up keys through `browser`'s sign-in form (its nonce and token), in
/// batches until the address is refused; see [`until_throttled`].
pub(crate) async fn guess_keys_until_throttled(
    app: &TestApp,
    browser: &mut Browser,
) -> (Vec<u16>, reqwest::Response) {
    let form = browser.get("/console/sign-in").await;
    let csrf = form.field("csrf");
    let cookie = format!(
        "twofold_console_nonce={}",
        browser.cookies["twofold_console_nonce"]
    );
    let client = reqwest::Client::new();
    until_throttled(|i| {
        client
            .post(format!("{}/console/sign-in", app.address))
            .header("cookie", &cookie)
            .form(&[
                ("key", format!("tfk_abcdefgh_guess{i}")),
                ("csrf", csrf.clone()),
            ])
    })
    .await
}

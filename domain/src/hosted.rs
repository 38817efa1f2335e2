//! Hosted pages: the tenant's backend sends a user to Twofold's pages with a single-use link and
//! gets them back at a return URL with a one-time result code. What a link and a result are, and
//! which return URLs a tenant may name.
//!
//! A return URL is compared with the allowed origins by its parsed origin, never by text: the
//! classic open-redirect bug is a prefix test, which `https://app.example.com.evil.net` passes
//! for `https://app.example.com`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::PolicyError;

/// How long a link may be opened.
pub const LINK_TTL: Duration = Duration::minutes(10);
/// How long the browser session opened by a link lasts (enrolling can mean installing an app).
pub const SESSION_TTL: Duration = Duration::minutes(30);
/// How long the tenant's backend has to redeem a result.
pub const RESULT_TTL: Duration = Duration::minutes(5);
/// Most return origins a tenant may allow.
pub const MAX_RETURN_ORIGINS: usize = 10;
/// Longest return URL accepted (browsers and proxies cut longer ones).
pub const MAX_RETURN_URL_CHARS: usize = 2048;

/// Why the user is sent to the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Purpose {
    /// Set up a first factor (and save recovery codes).
    Enroll,
    /// Prove the second factor at sign-in.
    Verify,
    /// See, add and remove factors, regenerate recovery codes, turn 2FA off.
    Manage,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Enroll => "ENROLL",
            Purpose::Verify => "VERIFY",
            Purpose::Manage => "MANAGE",
        }
    }

    pub fn parse(raw: &str) -> Option<Purpose> {
        match raw {
            "ENROLL" => Some(Purpose::Enroll),
            "VERIFY" => Some(Purpose::Verify),
            "MANAGE" => Some(Purpose::Manage),
            _ => None,
        }
    }
}

/// An origin a tenant's return URLs may go to: `https://` with a domain name (a port allowed),
/// or `http://localhost` for development. Kept as browsers serialise origins.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReturnOrigin(String);

impl ReturnOrigin {
    /// Parses one entry of `returnOrigins`.
    pub fn parse(raw: &str) -> Result<ReturnOrigin, PolicyError> {
        let shown: String = raw.chars().take(64).filter(|c| !c.is_control()).collect();
        let bad = || {
            PolicyError::ReturnOrigin(format!(
                "returnOrigins: {shown:?} is not an origin such as https://app.example.com \
                 (https with a domain name, or http://localhost; a port is allowed, no path, \
                 query or credentials)"
            ))
        };
        if raw.len() > 256 {
            return Err(bad());
        }
        let url = Url::parse(raw.trim()).map_err(|_| bad())?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(bad());
        }
        origin_of(&url).map(ReturnOrigin).ok_or_else(bad)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The origin of `url` if it is one a return origin may be: `https` with a domain name, or
/// `http://localhost`; no credentials.
fn origin_of(url: &Url) -> Option<String> {
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = match url.host()? {
        // Letters, digits, `-` and `.` only (`url` writes international names in punycode): the
        // origin is written into the pages' Content-Security-Policy, where `*`, `;`, `,` or `'`
        // would widen or split it, and `url` accepts them in a host.
        Host::Domain(d)
            if !d.ends_with('.')
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.')) =>
        {
            d.to_owned()
        }
        _ => return None,
    };
    let allowed = match url.scheme() {
        "https" => host.contains('.') || host == "localhost",
        "http" => host == "localhost",
        _ => false,
    };
    if !allowed {
        return None;
    }
    // `Url` drops the scheme's default port, as browsers' origins do.
    Some(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

impl TryFrom<String> for ReturnOrigin {
    type Error = PolicyError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        ReturnOrigin::parse(&value)
    }
}

impl From<ReturnOrigin> for String {
    fn from(value: ReturnOrigin) -> Self {
        value.0
    }
}

/// Parses `returnOrigins`: at most [`MAX_RETURN_ORIGINS`], duplicates folded, in the order
/// given.
pub fn parse_origins(raw: &[String]) -> Result<Vec<ReturnOrigin>, PolicyError> {
    let mut origins: Vec<ReturnOrigin> = Vec::new();
    for r in raw {
        let origin = ReturnOrigin::parse(r)?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    if origins.len() > MAX_RETURN_ORIGINS {
        return Err(PolicyError::ReturnOrigin(format!(
            "returnOrigins: at most {MAX_RETURN_ORIGINS} origins"
        )));
    }
    Ok(origins)
}

/// Reads stored return origins without ever failing: one the rules no longer accept is dropped,
/// so the tenant still loads.
pub fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ReturnOrigin>, D::Error> {
    let raw: Option<Vec<String>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .iter()
        .filter_map(|r| ReturnOrigin::parse(r).ok())
        .collect())
}

/// Why a return URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnUrlError {
    #[error("returnUrl is not an absolute URL of at most {MAX_RETURN_URL_CHARS} characters")]
    Malformed,
    #[error("returnUrl must not carry credentials or a twofold_result parameter")]
    Forbidden,
    #[error("returnUrl must be on one of the tenant's returnOrigins (set them with setPolicy)")]
    NotAllowed,
}

/// Where the user is sent back: a URL on one of the tenant's return origins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnUrl(String);

/// The query parameter that carries the result code back to the tenant.
pub const RESULT_PARAMETER: &str = "twofold_result";

impl ReturnUrl {
    /// Parses `raw` and checks its origin is one of `allowed`.
    pub fn parse(raw: &str, allowed: &[ReturnOrigin]) -> Result<ReturnUrl, ReturnUrlError> {
        if raw.chars().any(char::is_control) {
            return Err(ReturnUrlError::Malformed);
        }
        let url = Url::parse(raw).map_err(|_| ReturnUrlError::Malformed)?;
        // Counted as stored and sent, after percent-encoding.
        if url.as_str().len() > MAX_RETURN_URL_CHARS {
            return Err(ReturnUrlError::Malformed);
        }
        if !url.username().is_empty() || url.password().is_some() || names_the_result(&url) {
            return Err(ReturnUrlError::Forbidden);
        }
        // `//evil.example` as a path is a host to many "next" redirectors on the tenant's site.
        if url.path().starts_with("//") {
            return Err(ReturnUrlError::NotAllowed);
        }
        let origin = origin_of(&url).ok_or(ReturnUrlError::NotAllowed)?;
        if !allowed.iter().any(|o| o.as_str() == origin) {
            return Err(ReturnUrlError::NotAllowed);
        }
        Ok(ReturnUrl(url.into()))
    }

    /// The URL's origin, as browsers serialise it (for the pages' `form-action`).
    pub fn origin(&self) -> String {
        Url::parse(&self.0)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }

    /// Whether the URL's origin is still one of `allowed` (an admin may have removed it since).
    pub fn allowed_by(&self, allowed: &[ReturnOrigin]) -> bool {
        Url::parse(&self.0)
            .ok()
            .and_then(|u| origin_of(&u))
            .is_some_and(|origin| allowed.iter().any(|o| o.as_str() == origin))
    }

    /// Reads back a URL this type accepted when it was stored.
    pub fn stored(raw: String) -> ReturnUrl {
        ReturnUrl(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with the result code added as [`RESULT_PARAMETER`] (its fragment kept last).
    pub fn with_result(&self, code: &str) -> String {
        let mut url = Url::parse(&self.0).expect("a stored return URL parses");
        url.query_pairs_mut().append_pair(RESULT_PARAMETER, code);
        url.into()
    }
}

/// Whether the URL already names a result parameter in any spelling a tenant's framework might
/// read as ours: any case (ASP.NET), after `;` (older parsers), with `.`, space or `[` for `_`
/// (PHP), in the query or in the fragment (single-page routers).
fn names_the_result(url: &Url) -> bool {
    let fold = |name: &str| -> String {
        name.chars()
            .map(|c| match c {
                '.' | ' ' | '[' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect()
    };
    let named = |text: &str| {
        text.split(['&', ';', '?'])
            .filter_map(|pair| pair.split('=').next())
            .map(|name| {
                let decoded: String = url::form_urlencoded::parse(name.as_bytes())
                    .map(|(k, _)| k.into_owned())
                    .collect();
                fold(&decoded)
            })
            .any(|name| name == RESULT_PARAMETER)
    };
    url.query().is_some_and(named) || url.fragment().is_some_and(named)
}

/// When a link, or the session it opened, ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTimes {
    pub created_at: DateTime<Utc>,
}

impl LinkTimes {
    /// The link may be opened until then.
    pub fn link_expires_at(&self) -> DateTime<Utc> {
        self.created_at + LINK_TTL
    }

    /// The browser session it opened ends then, however it is used.
    pub fn session_ends_at(&self) -> DateTime<Utc> {
        self.created_at + SESSION_TTL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(raw: &[&str]) -> Vec<ReturnOrigin> {
        parse_origins(&raw.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn origins_are_https_domains_or_http_localhost_as_browsers_write_them() {
        let o = origins(&[
            "https://App.Example.com/",
            "https://app.example.com:8443",
            "http://localhost:3000",
            "https://app.example.com",
        ]);
        let shown: Vec<&str> = o.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            shown,
            [
                "https://app.example.com",
                "https://app.example.com:8443",
                "http://localhost:3000"
            ]
        );
        for bad in [
            "http://app.example.com",
            "https://10.0.0.1",
            "https://app.example.com/path",
            "https://app.example.com/?q=1",
            "https://user:pw@app.example.com",
            "javascript:alert(1)",
            "https://app",
            "",
        ] {
            let e = ReturnOrigin::parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("returnOrigins: "), "{bad}: {e}");
        }
        let many: Vec<String> = (0..11).map(|i| format!("https://a{i}.example")).collect();
        assert!(parse_origins(&many).is_err());
    }

    #[test]
    fn an_origin_that_would_widen_or_split_the_pages_csp_is_refused() {
        // `url` accepts each of these hosts; each would change the `form-action` it is put in.
        for raw in [
            "https://*.com",
            "https://x.com;sandbox",
            "https://x.com,evil.net",
            "https://x.com'unsafe-inline'",
        ] {
            assert!(ReturnOrigin::parse(raw).is_err(), "{raw}");
        }
        assert!(ReturnOrigin::parse("https://xn--80ak6aa92e.com").is_ok());
        assert!(
            ReturnOrigin::parse("https://пример.com").is_ok(),
            "kept in punycode"
        );
    }

    #[test]
    fn a_return_url_must_be_on_an_allowed_origin_by_its_parsed_origin() {
        let allowed = origins(&["https://app.example.com", "http://localhost:3000"]);
        for ok in [
            "https://app.example.com/after-2fa?x=1#top",
            "https://APP.example.com:443/",
            "http://localhost:3000/cb",
        ] {
            assert!(ReturnUrl::parse(ok, &allowed).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (
                "https://app.example.com.evil.net/",
                ReturnUrlError::NotAllowed,
            ),
            ("https://app.example.com:444/", ReturnUrlError::NotAllowed),
            ("http://app.example.com/", ReturnUrlError::NotAllowed),
            ("http://localhost:3001/", ReturnUrlError::NotAllowed),
            ("//app.example.com/", ReturnUrlError::Malformed),
            ("/relative", ReturnUrlError::Malformed),
            (
                "https://evil.net@app.example.com/",
                ReturnUrlError::Forbidden,
            ),
            (
                "https://app.example.com/?twofold_result=forged",
                ReturnUrlError::Forbidden,
            ),
            ("https://app.example.com/\n", ReturnUrlError::Malformed),
            (
                "https://app.example.com/?TWOFOLD_RESULT=x",
                ReturnUrlError::Forbidden,
            ),
            (
                "https://app.example.com/?a=1;twofold_result=x",
                ReturnUrlError::Forbidden,
            ),
            (
                "https://app.example.com/?twofold.result=x",
                ReturnUrlError::Forbidden,
            ),
            (
                "https://app.example.com/?twofold%5Fresult=x",
                ReturnUrlError::Forbidden,
            ),
            (
                "https://app.example.com/#/done?twofold_result=x",
                ReturnUrlError::Forbidden,
            ),
            (
                "https://app.example.com//evil.net/",
                ReturnUrlError::NotAllowed,
            ),
        ] {
            assert_eq!(ReturnUrl::parse(bad, &allowed), Err(why), "{bad}");
        }
        assert_eq!(
            ReturnUrl::parse("https://app.example.com/", &[]),
            Err(ReturnUrlError::NotAllowed)
        );
        // Short in characters, long once percent-encoded: counted as sent.
        let emoji = format!("https://app.example.com/{}", "😀".repeat(300));
        assert_eq!(
            ReturnUrl::parse(&emoji, &allowed),
            Err(ReturnUrlError::Malformed)
        );
    }

    #[test]
    fn a_return_url_is_allowed_only_while_its_origin_is() {
        let allowed = origins(&["https://app.example.com", "https://old.example.com"]);
        let url = ReturnUrl::parse("https://old.example.com:443/x", &allowed).unwrap();
        assert_eq!(url.origin(), "https://old.example.com");
        assert!(url.allowed_by(&allowed));
        assert!(!url.allowed_by(&origins(&["https://app.example.com"])));
    }

    #[test]
    fn the_result_is_added_as_a_query_parameter_before_the_fragment() {
        let allowed = origins(&["https://app.example.com"]);
        let url = ReturnUrl::parse("https://app.example.com/done?a=1#x", &allowed).unwrap();
        assert_eq!(
            url.with_result("tfr_abc"),
            "https://app.example.com/done?a=1&twofold_result=tfr_abc#x"
        );
    }
}

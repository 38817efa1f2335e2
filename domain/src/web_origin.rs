//! The tenant's web origin: the site its users sign in on, named in the last line of SMS codes
//! (`@login.example.com #123456`) so browsers and phones can offer to fill the code in (WebOTP,
//! and the origin-bound one-time codes of iOS and Android).

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::PolicyError;

/// Longest host accepted. The autofill line (`@host #12345678`) must leave room in a single
/// 70-character UCS-2 SMS for the code and a few words in Georgian.
pub const MAX_HOST_CHARS: usize = 40;

/// An `https://` origin with a domain name (no IP address, port, path, query or credentials),
/// kept as browsers serialise it (`https://login.example.com`, IDNs in punycode).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebOrigin {
    origin: String,
    host_start: usize,
}

impl WebOrigin {
    /// Parses `webOrigin`.
    pub fn parse(raw: &str) -> Result<WebOrigin, PolicyError> {
        let shown: String = raw.chars().take(64).filter(|c| !c.is_control()).collect();
        let bad = || {
            PolicyError::WebOrigin(format!(
                "webOrigin: {shown:?} is not an https origin such as https://login.example.com \
                 (a domain name of at most {MAX_HOST_CHARS} characters; no port, path, query or \
                 credentials)"
            ))
        };
        if raw.len() > 256 {
            return Err(bad());
        }
        let url = Url::parse(raw.trim()).map_err(|_| bad())?;
        let host = match url.host() {
            Some(Host::Domain(d)) if d.contains('.') && !d.ends_with('.') => d.to_owned(),
            _ => return Err(bad()),
        };
        if url.scheme() != "https"
            || url.port().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || host.len() > MAX_HOST_CHARS
        {
            return Err(bad());
        }
        Ok(WebOrigin {
            origin: format!("https://{host}"),
            host_start: "https://".len(),
        })
    }

    /// The origin, `https://login.example.com`.
    pub fn as_str(&self) -> &str {
        &self.origin
    }

    /// The host, as the autofill line names it.
    pub fn host(&self) -> &str {
        &self.origin[self.host_start..]
    }
}

/// Reads a stored `Option<WebOrigin>` without ever failing: one the rules no longer accept
/// reads as none (no autofill line), so the tenant still loads.
pub fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<WebOrigin>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.and_then(|r| WebOrigin::parse(&r).ok()))
}

impl TryFrom<String> for WebOrigin {
    type Error = PolicyError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        WebOrigin::parse(&value)
    }
}

impl From<WebOrigin> for String {
    fn from(value: WebOrigin) -> Self {
        value.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_origins_with_a_domain_are_kept_as_browsers_write_them() {
        let o = WebOrigin::parse(" https://Login.Example.com/ ").unwrap();
        assert_eq!(o.as_str(), "https://login.example.com");
        assert_eq!(o.host(), "login.example.com");
        let idn = WebOrigin::parse("https://bank.გე").unwrap();
        assert_eq!(idn.host(), "bank.xn--node");
    }

    #[test]
    fn anything_else_is_refused_with_the_field_name() {
        for raw in [
            "http://login.example.com",
            "https://login.example.com:8443",
            "https://login.example.com/path",
            "https://login.example.com/?q=1",
            "https://user@login.example.com",
            "https://127.0.0.1",
            "https://[::1]",
            "https://localhost",
            "login.example.com",
            "",
            &format!("https://{}.example.com", "a".repeat(40)),
        ] {
            let e = WebOrigin::parse(raw).unwrap_err();
            assert!(e.to_string().starts_with("webOrigin: "), "{raw}: {e}");
        }
    }
}

//! The console's cookies: the session token, the sign-in form's nonce, the chosen language.
//! All are `HttpOnly`, `SameSite=Strict`, scoped to `/console`, and `Secure` unless the
//! browser reached us as `localhost` (a plain-HTTP development set-up: browsers drop `Secure`
//! cookies there).

use axum::http::{header, HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};

pub(crate) const SESSION: &str = "twofold_console";
pub(crate) const NONCE: &str = "twofold_console_nonce";
pub(crate) const LANGUAGE: &str = "twofold_console_lang";

/// The value of cookie `name` in the request, if sent once; a name sent twice (a cookie
/// planted by a sibling domain beside ours) counts as not sent.
pub(crate) fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for c in Cookie::split_parse(text).flatten() {
            if c.name() == name {
                if found.is_some() {
                    return None;
                }
                found = Some(c.value().to_owned());
            }
        }
    }
    found
}

/// Whether the request's host is a loopback name, where `Secure` cookies are not kept over
/// plain HTTP.
pub(crate) fn is_local(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(name, "localhost" | "127.0.0.1" | "[::1]") || name.ends_with(".localhost")
}

/// A `Set-Cookie` value; `max_age_seconds: 0` deletes the cookie.
pub(crate) fn set(
    name: &'static str,
    value: &str,
    max_age_seconds: i64,
    request: &HeaderMap,
) -> HeaderValue {
    let cookie = Cookie::build((name, value.to_owned()))
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(!is_local(request))
        .max_age(cookie::time::Duration::seconds(max_age_seconds))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie values are plain ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_cookie_sent_twice_is_not_believed() {
        let h = headers(&[("cookie", "a=1; twofold_console=x; b=2")]);
        assert_eq!(read(&h, SESSION).as_deref(), Some("x"));
        let h = headers(&[
            ("cookie", "twofold_console=x"),
            ("cookie", "twofold_console=y"),
        ]);
        assert_eq!(read(&h, SESSION), None);
    }

    #[test]
    fn cookies_are_secure_except_on_localhost() {
        for (host, secure) in [
            ("localhost:8080", false),
            ("127.0.0.1:3000", false),
            ("[::1]:80", false),
            ("console.example.com", true),
            ("localhost.example.com", true),
        ] {
            let h = headers(&[("host", host)]);
            let c = set(SESSION, "v", 60, &h);
            let c = c.to_str().unwrap();
            assert_eq!(c.contains("Secure"), secure, "{host}: {c}");
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict"),
                "{c}"
            );
            assert!(c.contains("Path=/console"), "{c}");
        }
    }
}

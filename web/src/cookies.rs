//! The console's cookies: the session token, the sign-in form's nonce, the chosen language.
//! All are `HttpOnly`, `SameSite=Strict`, scoped to `/console`, and `Secure` unless the
//! browser reached us as `localhost` (a plain-HTTP development set-up: browsers drop `Secure`
//! cookies there).

use axum::http::{header, HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};

pub(crate) const SESSION: &str = "twofold_console";
pub(crate) const NONCE: &str = "twofold_console_nonce";
pub(crate) const LANGUAGE: &str = "twofold_console_lang";
/// The hosted pages' session (see `crate::hosted`): `SameSite=Lax`, scoped to `/hosted`.
pub(crate) const HOSTED_SESSION: &str = "twofold_hosted";

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

/// How many cookies named `name` the request carries (a sibling domain may plant one beside
/// ours, which [`read`] then ignores).
pub(crate) fn count(headers: &HeaderMap, name: &str) -> usize {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|text| Cookie::split_parse(text).flatten())
        .filter(|c| c.name() == name)
        .count()
}

/// Whether the browser is on this machine over plain HTTP, where `Secure` cookies may not be
/// kept: by every sign, not the `Host` header alone. In production TLS ends at a proxy in front,
/// and a proxy may rewrite `Host` to its upstream (nginx's default sends `Host: 127.0.0.1:8080`
/// for `proxy_pass http://127.0.0.1:8080`), which would make the session cookie travel in clear
/// text on any `http://` request a network attacker provokes. So a forwarding header, or an
/// `Origin` (browsers send theirs with form posts) that is not `http://` on a loopback name,
/// means the browser is elsewhere.
pub(crate) fn is_local(headers: &HeaderMap) -> bool {
    const FORWARDING: [&str; 5] = [
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
    ];
    if FORWARDING.iter().any(|name| headers.contains_key(*name)) {
        return false;
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| *o != "null");
    if let Some(origin) = origin {
        if !origin.strip_prefix("http://").is_some_and(is_loopback) {
            return false;
        }
    }
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(is_loopback)
}

/// Whether `authority` (`host[:port]`) names this machine.
fn is_loopback(authority: &str) -> bool {
    let name = match authority.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => authority,
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

/// The hosted pages' session cookie; `max_age_seconds: 0` deletes it. `Lax`, not `Strict`: the
/// user arrives by a top-level navigation from the tenant's site, and a `Strict` cookie set then
/// is not sent on the redirect that follows. Every form the pages take is a POST with a token.
///
/// `https`: the service is published over https (`TWOFOLD_PUBLIC_URL`), so the cookie is `Secure`
/// whatever the request says. The link is opened by a top-level navigation, which carries no
/// `Origin`, so behind a proxy that rewrites `Host` to loopback the headers alone would say
/// "local".
pub(crate) fn hosted_session(
    value: &str,
    max_age_seconds: i64,
    request: &HeaderMap,
    https: bool,
) -> HeaderValue {
    let cookie = Cookie::build((HOSTED_SESSION, value.to_owned()))
        .path("/hosted")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(https || !is_local(request))
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

    #[test]
    fn a_loopback_host_behind_a_proxy_or_from_another_origin_is_not_local() {
        for (extra, local) in [
            (None, true),
            (Some(("origin", "http://127.0.0.1:3000")), true),
            (Some(("origin", "null")), true),
            (Some(("origin", "https://console.example.com")), false),
            (Some(("origin", "https://127.0.0.1:3000")), false),
            (Some(("origin", "http://console.example.com")), false),
            (Some(("x-forwarded-proto", "https")), false),
            (Some(("x-forwarded-for", "203.0.113.7")), false),
            (Some(("forwarded", "for=203.0.113.7;proto=https")), false),
            (Some(("x-real-ip", "203.0.113.7")), false),
        ] {
            let mut pairs = vec![("host", "127.0.0.1:3000")];
            pairs.extend(extra);
            assert_eq!(is_local(&headers(&pairs)), local, "{extra:?}");
        }
        assert!(!is_local(&headers(&[])), "no Host: not local");
    }
}

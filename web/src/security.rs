//! Headers every page answer carries. The policy allows scripts, styles and images from this
//! origin only: no inline script or style anywhere (htmx is configured not to inject its
//! indicator styles), no framing, forms posting only here.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

use crate::language::Texts;

pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

pub(crate) async fn headers(req: Request, next: Next) -> Response {
    let post = req.method() == Method::POST;
    let mut response = next.run(req).await;
    let in_place = post && !response.status().is_redirection();
    let h = response.headers_mut();
    // htmx puts the address of every boosted answer in the address bar; for a form answered
    // in place (refused, or an issued key's page) that is the POST's address, which has no
    // page to reload or go back to. The form's own page stays in the address bar instead.
    // Sent whatever the request's `HX-*` headers, so no answer varies with them.
    if in_place {
        h.insert("hx-push-url", HeaderValue::from_static("false"));
    }
    // A page may have set a stricter or wider one of its own (a hosted page's forms end in a
    // redirect to the tenant's site, which `form-action` must name).
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it a browser sends `Origin: null` with its form posts, and the
    // cookies' `Secure` decision needs the real one (`cookies::is_local`). Other sites still get
    // no referrer.
    // A page may send less (a hosted page whose address holds a link).
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Refuses a form post that the browser says another site sent (`Sec-Fetch-Site` other than
/// `same-origin` or `none`), before any handler. The CSRF tokens do not cover a sibling domain
/// or a plain-HTTP man in the middle: either can plant a nonce cookie of its own beside ours and
/// post the form token that goes with it, signing the browser in with the attacker's key. A
/// browser that does not send the header still has the tokens.
pub(crate) async fn same_origin_posts(texts: Texts, req: Request, next: Next) -> Response {
    let foreign = req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|site| site != "same-origin" && site != "none");
    if foreign && req.method() != Method::GET && req.method() != Method::HEAD {
        let chrome = crate::console::chrome_for(texts, req.method(), req.uri());
        return crate::console::form_expired(chrome);
    }
    next.run(req).await
}

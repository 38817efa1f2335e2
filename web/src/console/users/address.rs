//! Where a user's page and its forms are. Any valid user id is the tenant's text, and browsers
//! fold the path segments `.` and `..` (also when percent-encoded) before they send a request,
//! so `/console/users/..` would reach `/console/`. Such ids are put in a query parameter instead,
//! which no browser rewrites: `/console/user?id=..`. Both addresses answer the same page, and
//! the action forms post to the same kind of address as the page (decision 145).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::encode;

/// `id`'s page, or the address of one of its actions (`suffix` such as `/reset`), followed by
/// `query` (names and values as given, encoded here).
pub(crate) fn user_url(id: &str, suffix: &str, query: &[(&str, &str)]) -> String {
    let segment = encode(id);
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(query.len() + 1);
    let mut url = if folded(&segment) {
        pairs.push(("id", id));
        format!("/console/user{suffix}")
    } else {
        format!("/console/users/{segment}{suffix}")
    };
    pairs.extend_from_slice(query);
    for (i, (name, value)) in pairs.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(name);
        url.push('=');
        url.push_str(&encode(value));
    }
    url
}

/// Whether a browser removes `segment` from a path (a dot segment of the URL standard:
/// `.`, `..`, and their forms with `%2e`).
fn folded(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "." | "%2e" | ".." | ".%2e" | "%2e." | "%2e%2e"
    )
}

/// The user (and device) a request names: from the path (`/console/users/{user_id}…`,
/// `…/devices/{device_id}/revoke`) or, on `/console/user…`, from the `id` query parameter.
/// A missing id is empty, which the user's checks refuse with the API's message.
pub(crate) struct Target {
    pub(crate) user_id: String,
    pub(crate) device_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Target {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let mut params = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| p)
            .unwrap_or_default();
        let device_id = params.remove("device_id");
        // The query names the user only on the query's routes: a path id that fails to decode
        // must not fall back to `?id=`, or the address would not name the user acted on.
        let by_path = parts.uri.path().starts_with("/console/users/");
        let user_id = match params.remove("user_id") {
            Some(id) => id,
            None if by_path => String::new(),
            None => form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
                .find(|(k, _)| k == "id")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default(),
        };
        Ok(Self { user_id, device_id })
    }
}

/// The page a POST to an action of a user belongs to (where the language switcher returns):
/// `/console/users/{id}/reset` to `/console/users/{id}`, `/console/user/reset?id=…` to
/// `/console/user?id=…`. `None` for a path that is not a user's.
pub(crate) fn page_of_action(path: &str, query: Option<&str>) -> Option<String> {
    if let Some(rest) = path.strip_prefix("/console/users/") {
        let segment = rest.split('/').next().unwrap_or_default();
        return Some(format!("/console/users/{segment}"));
    }
    path.starts_with("/console/user/").then(|| {
        let id = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        user_url(&id, "", &[])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_a_browser_would_fold_go_in_the_query() {
        assert_eq!(user_url("alice", "", &[]), "/console/users/alice");
        assert_eq!(user_url(".", "", &[]), "/console/user?id=.");
        assert_eq!(
            user_url("..", "/reset", &[("done", "reset")]),
            "/console/user/reset?id=..&done=reset"
        );
        // The slash is encoded, so the segment is not a dot segment.
        assert_eq!(user_url("a/..", "", &[]), "/console/users/a%2F..");
        assert_eq!(user_url("...", "", &[]), "/console/users/...");
        assert_eq!(
            user_url("bob", "", &[("after", "c=1")]),
            "/console/users/bob?after=c%3D1"
        );
        // An unsafe id's page path is rebuilt from the action's query.
        assert_eq!(
            page_of_action("/console/user/devices/d1/revoke", Some("id=..")),
            Some("/console/user?id=..".into())
        );
        assert_eq!(
            page_of_action("/console/users/a%2F../reset", None),
            Some("/console/users/a%2F..".into())
        );
        assert_eq!(page_of_action("/console/keys", None), None);
    }
}

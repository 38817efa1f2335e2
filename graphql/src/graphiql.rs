//! GraphiQL, from files compiled into the binary (`graphql/assets/graphiql/`, see its README for
//! versions and provenance), never from a CDN: a CDN serving a changed script would run it with
//! the origin of a service whose users paste API keys into the page.
//!
//! The page's Content-Security-Policy allows scripts and connections to this origin only and no
//! inline script (GraphiQL is started by `init.js`). The files live under a path holding a hash
//! of their content, so they can be cached for a year and a new build is fetched afresh.
//! `TWOFOLD_GRAPHIQL=off` switches page and files off.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use twofold_services::ErrorCode;

use crate::http::{error_response, ApiState};

/// The page's policy. Styles may be inline because GraphiQL sets them from script; fonts and
/// icons are `data:` URIs inside its stylesheet.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

/// (name, content type, bytes) of every served file.
const FILES: [(&str, &str, &[u8]); 6] = [
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "init.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/init.js"),
    ),
    (
        "twofold.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/graphiql/twofold.css"),
    ),
];

const PAGE: &str = include_str!("../assets/graphiql/index.html");

/// A hash of every file, the middle segment of their paths: it changes whenever one does.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = DefaultHasher::new();
    for (name, _, bytes) in FILES {
        name.hash(&mut hasher);
        bytes.hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
});

static RENDERED_PAGE: LazyLock<String> = LazyLock::new(|| PAGE.replace("{{VERSION}}", &VERSION));

fn switched_off() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "GraphiQL is switched off on this instance (TWOFOLD_GRAPHIQL=off); POST GraphQL requests to /graphql",
    )
}

/// The page, for a `GET /graphql` that is not a WebSocket upgrade.
pub fn page(state: &ApiState) -> Response {
    if !state.graphiql {
        return switched_off();
    }
    let mut response = RENDERED_PAGE.as_str().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /graphiql/{version}/{file}`: one of the files, under the current version only.
pub async fn asset(
    State(state): State<ApiState>,
    Path((version, name)): Path<(String, String)>,
) -> Response {
    if !state.graphiql {
        return switched_off();
    }
    let found = FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .filter(|_| version == *VERSION);
    let Some((_, content_type, bytes)) = found else {
        return error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such GraphiQL file in this build",
        );
    };
    (
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, CACHE_FOREVER),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        *bytes,
    )
        .into_response()
}

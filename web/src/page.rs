//! Rendering: a template into an HTML answer, and the console's error page for a failed
//! use-case (its stable code and the use-case's own message; never an internal detail).

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use twofold_services::{ErrorCode, ServiceError};

use crate::language::Texts;

/// What the layout shows around every page.
#[derive(Clone)]
pub(crate) struct Chrome {
    pub(crate) texts: Texts,
    /// The page's path (which the navigation marks as current).
    pub(crate) path: String,
    /// Where the language switcher returns: this page's GET address, query included.
    pub(crate) back: String,
    /// Who is signed in, when someone is.
    pub(crate) who: Option<Who>,
}

/// The signed-in key, as the header shows it.
#[derive(Clone)]
pub(crate) struct Who {
    pub(crate) line: String,
    pub(crate) read_only: bool,
    pub(crate) csrf: String,
}

impl Chrome {
    pub(crate) fn t(&self, id: &str) -> String {
        self.texts.get(id)
    }

    pub(crate) fn lang(&self) -> &'static str {
        self.texts.code()
    }

    /// `en` or `ka`, for the switcher's other choice.
    pub(crate) fn other_language(&self) -> (&'static str, &'static str) {
        match self.texts.code() {
            "ka" => ("en", "English"),
            _ => ("ka", "ქართული"),
        }
    }
}

/// `template` as an HTML answer with `status`.
pub(crate) fn html(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub(crate) struct ErrorPage {
    pub(crate) chrome: Chrome,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// The HTTP status of a use-case's error.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The error page of a failed use-case.
pub(crate) fn error(chrome: Chrome, e: &ServiceError, request_id: &str) -> Response {
    let code = e.code();
    let message = match e {
        ServiceError::Internal(inner) => {
            tracing::error!(error = ?inner, "console request failed internally");
            chrome
                .texts
                .with("console-error-internal", &[("request", request_id)])
        }
        other => other.to_string(),
    };
    html(
        status_of(code),
        &ErrorPage {
            chrome,
            code: code.as_str(),
            message,
        },
    )
}

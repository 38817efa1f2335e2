//! Recovery codes, shown once: after the first factor is enrolled and after they are
//! regenerated. Copy, download and print, and a box to tick before going on.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use twofold_domain::Method;
use twofold_services::users::RecoveryCodes;

use super::visit::Visit;
use super::Frame;
use crate::{page, WebState};

#[derive(Template)]
#[template(path = "hosted/codes.html")]
pub(crate) struct CodesPage {
    frame: Frame,
    codes: Vec<String>,
    /// After enrolling, the session ends with the box ticked, carrying the server's mark of
    /// the method enrolled; in the settings it goes back to them (`None`).
    enrolled: Option<String>,
}

impl CodesPage {
    pub(crate) fn after_enrollment(
        state: &WebState,
        visit: &Visit,
        method: Method,
        codes: RecoveryCodes,
    ) -> Self {
        Self {
            frame: Frame {
                cancellable: false,
                ..Frame::of(visit)
            },
            codes: codes.0,
            enrolled: Some(state.hosted.mark(&visit.secret, method.as_str())),
        }
    }

    pub(crate) fn regenerated(visit: &Visit, codes: RecoveryCodes) -> Self {
        Self {
            // The old codes are gone: nothing to cancel.
            frame: Frame {
                cancellable: false,
                ..Frame::of(visit)
            },
            codes: codes.0,
            enrolled: None,
        }
    }

    /// The codes as the downloaded text file holds them.
    fn text(&self) -> String {
        let mut text = self.frame.texts.with(
            "hosted-codes-file-heading",
            &[("tenant", &self.frame.tenant)],
        );
        text.push_str("\n\n");
        for code in &self.codes {
            text.push_str(code);
            text.push('\n');
        }
        text
    }

    /// The download link's address: the file is made in the page, never stored.
    fn download_href(&self) -> String {
        format!(
            "data:text/plain;charset=utf-8,{}",
            percent_encoding::utf8_percent_encode(&self.text(), percent_encoding::NON_ALPHANUMERIC)
        )
    }

    pub(crate) fn render(&self) -> Response {
        page::html(StatusCode::OK, self)
    }
}

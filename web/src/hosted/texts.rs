//! The hosted pages' texts, in the link's language or the browser's.

use axum::http::{header, HeaderMap};
use twofold_i18n::{negotiate, Arg, Catalog, Language};
use twofold_services::hosted::HostedSession;

/// The texts of a hosted page, in its language.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostedTexts {
    language: Language,
}

impl HostedTexts {
    /// The link's locale if it named one, else the browser's first supported language, else
    /// English.
    pub(crate) fn choose(session: Option<&HostedSession>, headers: &HeaderMap) -> Self {
        let chosen = session
            .and_then(|s| s.link.locale.as_ref())
            .map(|l| l.language())
            .or_else(|| {
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        v.split(',')
                            .take(32)
                            .filter_map(|part| negotiate(part.split(';').next()?.trim()))
                            .next()
                    })
            });
        Self {
            language: chosen.unwrap_or(Language::En),
        }
    }

    pub(crate) fn t(&self, id: &str) -> String {
        Catalog::get().message(self.language, id, &[])
    }

    pub(crate) fn with(&self, id: &str, args: &[(&str, &str)]) -> String {
        let args: Vec<(&str, Arg<'_>)> = args.iter().map(|(k, v)| (*k, Arg::Text(v))).collect();
        Catalog::get().message(self.language, id, &args)
    }

    pub(crate) fn lang(&self) -> &'static str {
        self.language.code()
    }
}

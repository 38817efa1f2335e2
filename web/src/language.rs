//! Which language a page is in: the one chosen with the switcher (a cookie), else the first
//! console language the browser's `Accept-Language` names, else English.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use twofold_i18n::{negotiate, Arg, Catalog, Language, CONSOLE_LANGUAGES};

use crate::cookies;

/// The texts of one page, in its language.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Texts {
    pub(crate) language: Language,
}

impl Texts {
    /// The message `id`.
    pub(crate) fn get(&self, id: &str) -> String {
        Catalog::get().message(self.language, id, &[])
    }

    /// The message `id`, if the catalog has one by that id.
    pub(crate) fn find(&self, id: &str) -> Option<String> {
        Catalog::get().has(self.language, id).then(|| self.get(id))
    }

    /// The message `id` with one text argument.
    pub(crate) fn with(&self, id: &str, args: &[(&str, &str)]) -> String {
        let args: Vec<(&str, Arg<'_>)> = args.iter().map(|(k, v)| (*k, Arg::Text(v))).collect();
        Catalog::get().message(self.language, id, &args)
    }

    /// The `lang` attribute of the page.
    pub(crate) fn code(&self) -> &'static str {
        self.language.code()
    }
}

/// The console language named by `code` (`en`, `ka`), if it is one.
pub(crate) fn console_language(code: &str) -> Option<Language> {
    CONSOLE_LANGUAGES.into_iter().find(|l| l.code() == code)
}

/// The first console language in an `Accept-Language` value, by quality then order.
fn from_accept_language(value: &str) -> Option<Language> {
    let mut ranked: Vec<(u16, usize, Language)> = value
        .split(',')
        .take(32)
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next()?.trim();
            let quality =
                pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1000), |q| {
                        q.parse::<f32>()
                            .ok()
                            .map(|q| (q.clamp(0.0, 1.0) * 1000.0) as u16)
                    })?;
            let language = negotiate(tag).filter(|l| CONSOLE_LANGUAGES.contains(l))?;
            (quality > 0).then_some((quality, i, language))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.first().map(|r| r.2)
}

pub(crate) fn choose(headers: &HeaderMap) -> Language {
    cookies::read(headers, cookies::LANGUAGE)
        .and_then(|c| console_language(&c))
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(from_accept_language)
        })
        .unwrap_or(Language::En)
}

impl<S: Send + Sync> FromRequestParts<S> for Texts {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Texts {
            language: choose(&parts.headers),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_s_first_console_language_by_quality() {
        assert_eq!(
            from_accept_language("ka-GE,ka;q=0.9,en;q=0.8"),
            Some(Language::Ka)
        );
        assert_eq!(
            from_accept_language("de-CH, en;q=0.5, ka;q=0.7"),
            Some(Language::Ka)
        );
        assert_eq!(from_accept_language("de, fr"), None);
        assert_eq!(from_accept_language("ka;q=0, en"), Some(Language::En));
        assert_eq!(from_accept_language("garbage;;;,"), None);
    }

    #[test]
    fn the_switcher_s_cookie_comes_first() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_LANGUAGE, "en".parse().unwrap());
        h.insert(header::COOKIE, "twofold_console_lang=ka".parse().unwrap());
        assert_eq!(choose(&h), Language::Ka);
        h.insert(header::COOKIE, "twofold_console_lang=de".parse().unwrap());
        assert_eq!(choose(&h), Language::En);
    }
}

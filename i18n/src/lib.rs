//! Twofold's message catalog: every text sent to users (codes, security notices), in every
//! supported language, written in [Project Fluent](https://projectfluent.org) files under
//! `i18n/locales/<language>/*.ftl` and embedded at compile time.
//!
//! - [`Catalog::message`] formats one message in a [`Language`]; a message missing in that
//!   language falls back to English (the completeness test makes that never happen).
//! - Which tags are valid, and which language each one reads, is the domain's rule
//!   ([`Locale`], [`Language::choose`]: the user's locale, else the tenant's, else English),
//!   re-exported here.
//! - [`sms`] counts SMS segments (GSM-7 or UCS-2); [`code`] renders the email and SMS of a
//!   one-time code.
//!
//! Output carries no Unicode isolation marks (Fluent's default): they are invisible, cost two
//! UCS-2 characters each in an SMS and force UCS-2 on otherwise GSM-7 texts.

pub mod code;
pub mod delivery_test;
pub mod notice;
pub mod sms;
mod text;

use std::collections::HashMap;
use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

pub use text::{display_name, escape_html, wrap};
pub use twofold_domain::locale::{Language, Locale, LocaleError};

mod files {
    include!(concat!(env!("OUT_DIR"), "/files.rs"));
}

/// A value passed to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    /// Text, inserted as given (escape it for HTML after formatting).
    Text(&'a str),
    /// A number: chooses plural forms (`[one]`, `[other]`).
    Number(i64),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(value)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(value)
    }
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Number(value)
    }
}

impl From<u32> for Arg<'_> {
    fn from(value: u32) -> Self {
        Arg::Number(i64::from(value))
    }
}

/// Why the embedded catalog cannot be used (a broken `.ftl` file; the tests catch it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// A directory under `locales/` that is not a supported language.
    #[error("locales/{0}: not a supported language")]
    UnknownLanguage(String),
    /// A file Fluent cannot parse.
    #[error("locales/{language}/{file}: {detail}")]
    Syntax {
        /// Its language directory.
        language: String,
        /// Its name.
        file: String,
        /// What the parser said.
        detail: String,
    },
    /// A message defined twice in one language.
    #[error("locales/{language}/{file}: {detail}")]
    Duplicate {
        /// Its language directory.
        language: String,
        /// Its name.
        file: String,
        /// What Fluent said.
        detail: String,
    },
}

/// The messages of one embedded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInventory {
    /// Its language.
    pub language: Language,
    /// Its name (`codes.ftl`).
    pub file: &'static str,
    /// Each message id with the variables (`$name`) and messages it refers to, sorted.
    pub messages: Vec<(String, Vec<String>)>,
}

/// Every message in every language.
pub struct Catalog {
    bundles: HashMap<Language, FluentBundle<FluentResource>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("languages", &self.bundles.len())
            .finish()
    }
}

impl Catalog {
    /// The embedded catalog, parsed once.
    ///
    /// # Panics
    /// If an embedded file is broken, which the crate's tests rule out.
    pub fn get() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| Catalog::load().expect("the embedded message catalog is valid"))
    }

    /// Parses the embedded files.
    pub fn load() -> Result<Catalog, CatalogError> {
        let mut bundles = HashMap::new();
        for language in Language::ALL {
            let id: unic_langid::LanguageIdentifier =
                language.code().parse().expect("supported codes are valid");
            let mut bundle = FluentBundle::new_concurrent(vec![id]);
            bundle.set_use_isolating(false);
            bundles.insert(language, bundle);
        }
        for (code, file, source) in files::FILES {
            let language = Language::from_code(code)
                .ok_or_else(|| CatalogError::UnknownLanguage((*code).to_owned()))?;
            let resource = FluentResource::try_new((*source).to_owned()).map_err(|(_, e)| {
                CatalogError::Syntax {
                    language: (*code).to_owned(),
                    file: (*file).to_owned(),
                    detail: format!("{e:?}"),
                }
            })?;
            let bundle = bundles.get_mut(&language).expect("one bundle per language");
            bundle
                .add_resource(resource)
                .map_err(|e| CatalogError::Duplicate {
                    language: (*code).to_owned(),
                    file: (*file).to_owned(),
                    detail: format!("{e:?}"),
                })?;
        }
        Ok(Catalog { bundles })
    }

    /// Whether `language` has the message `id`.
    pub fn has(&self, language: Language, id: &str) -> bool {
        self.bundles[&language].has_message(id)
    }

    /// The message `id` in `language` (in English if that language lacks it; the id itself if
    /// no language has it), formatted with `args`.
    pub fn message(&self, language: Language, id: &str, args: &[(&str, Arg<'_>)]) -> String {
        self.try_message(language, id, args)
            .or_else(|| self.try_message(Language::En, id, args))
            .unwrap_or_else(|| id.to_owned())
    }

    fn try_message(
        &self,
        language: Language,
        id: &str,
        args: &[(&str, Arg<'_>)],
    ) -> Option<String> {
        let bundle = &self.bundles[&language];
        let pattern = bundle.get_message(id)?.value()?;
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            match value {
                Arg::Text(t) => fluent_args.set(*name, FluentValue::from(*t)),
                Arg::Number(n) => fluent_args.set(*name, FluentValue::from(*n)),
            }
        }
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
        Some(text.into_owned())
    }

    /// The message ids and variables of each embedded file, per language: what the
    /// completeness test compares.
    pub fn inventory() -> Vec<FileInventory> {
        let mut out = Vec::new();
        for (code, file, source) in files::FILES {
            let Some(language) = Language::from_code(code) else {
                continue;
            };
            let Ok(resource) = FluentResource::try_new((*source).to_owned()) else {
                continue;
            };
            out.push(FileInventory {
                language,
                file,
                messages: text::messages_and_variables(&resource),
            });
        }
        out
    }
}

/// The console's languages (issue 18 asks for English and Georgian; its texts are in
/// `console.ftl`). Users' pages and messages are in every language.
pub const CONSOLE_LANGUAGES: [Language; 2] = [Language::En, Language::Ka];

/// The languages a catalog file must exist in: its messages are complete in each of them.
pub fn file_languages(file: &str) -> &'static [Language] {
    match file {
        "console.ftl" => &CONSOLE_LANGUAGES,
        _ => &Language::ALL,
    }
}

/// The supported language a BCP 47 tag reads (`de-CH` -> German), or `None` if the tag is
/// malformed or of a language without texts.
pub fn negotiate(tag: &str) -> Option<Language> {
    Locale::parse(tag).ok().map(|l| l.language())
}

#[cfg(test)]
mod tests;

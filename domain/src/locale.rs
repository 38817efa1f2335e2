//! Which languages Twofold speaks, and which BCP 47 language tags it accepts for them.
//!
//! A tag is accepted when it is well-formed (RFC 5646 `langtag`: language, optional extended
//! language, script, region, variants, extensions and private use) and its primary language is
//! one of [`Language::ALL`]. Regions and scripts are kept (`de-CH` stays `de-CH`) but only the
//! language chooses the texts: `de-CH` reads German. The tag is stored in its canonical case
//! (`de-CH`, `sr-Latn`), so the same preference is never recorded twice.

use serde::{Deserialize, Serialize};

/// A language the message catalog has every text in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Language {
    /// English, the last fallback.
    En,
    /// Georgian (Mkhedruli script).
    Ka,
    /// German.
    De,
    /// French.
    Fr,
    /// Spanish.
    Es,
}

impl Language {
    /// Every supported language, English first.
    pub const ALL: [Language; 5] = [
        Language::En,
        Language::Ka,
        Language::De,
        Language::Fr,
        Language::Es,
    ];

    /// The ISO 639-1 code, as used in tags and in the catalog's directory names.
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Ka => "ka",
            Language::De => "de",
            Language::Fr => "fr",
            Language::Es => "es",
        }
    }

    /// The language of a primary language subtag (any case), if supported.
    pub fn from_code(code: &str) -> Option<Language> {
        Language::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(code))
    }

    /// The language to write to a user in: theirs, else the tenant's default, else English.
    pub fn choose(user: Option<&Locale>, tenant: Option<&Locale>) -> Language {
        user.or(tenant).map_or(Language::En, Locale::language)
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Why a locale was refused; the message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocaleError {
    /// Not a well-formed BCP 47 language tag.
    #[error("{field} must be a BCP 47 language tag such as \"ka\" or \"de-CH\" (got {shown:?})")]
    Malformed {
        /// Which field (API name).
        field: &'static str,
        /// The start of what was given.
        shown: String,
    },
    /// Well-formed, but of a language there are no texts for.
    #[error("{field}: the language {language:?} is not supported; supported: en, ka, de, fr, es")]
    Unsupported {
        /// Which field (API name).
        field: &'static str,
        /// The primary language subtag given.
        language: String,
    },
}

/// A user's or tenant's language preference: a well-formed BCP 47 tag of a supported language,
/// in canonical case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Locale {
    tag: String,
    language: Language,
}

/// Longest tag accepted: long enough for any real tag with a region, script and a variant.
pub const MAX_TAG_CHARS: usize = 35;

impl Locale {
    /// Parses caller input (`field` names it in errors): trimmed, well-formed, supported.
    pub fn parse_field(field: &'static str, raw: &str) -> Result<Locale, LocaleError> {
        let raw = raw.trim();
        let malformed = || LocaleError::Malformed {
            field,
            shown: raw
                .chars()
                .take(MAX_TAG_CHARS)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
        };
        if raw.len() > MAX_TAG_CHARS || !raw.is_ascii() {
            return Err(malformed());
        }
        let tag = canonical(raw).ok_or_else(malformed)?;
        let primary = tag.split('-').next().unwrap_or_default();
        let language = Language::from_code(primary).ok_or_else(|| LocaleError::Unsupported {
            field,
            language: primary.to_owned(),
        })?;
        Ok(Locale { tag, language })
    }

    /// Parses the `locale` argument.
    pub fn parse(raw: &str) -> Result<Locale, LocaleError> {
        Locale::parse_field("locale", raw)
    }

    /// The tag, canonical case (`de-CH`).
    pub fn as_str(&self) -> &str {
        &self.tag
    }

    /// The language whose texts this locale reads.
    pub fn language(&self) -> Language {
        self.language
    }
}

impl std::fmt::Display for Locale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.tag)
    }
}

impl TryFrom<String> for Locale {
    type Error = LocaleError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Locale::parse(&value)
    }
}

impl From<Locale> for String {
    fn from(value: Locale) -> Self {
        value.tag
    }
}

/// Reads a stored `Option<Locale>` (events, snapshots) without ever failing: a tag that is
/// no longer accepted (a language withdrawn) reads as none, so the aggregate still loads.
pub fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Locale>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.and_then(|r| Locale::parse(&r).ok()))
}

/// The tag in canonical case if it is a well-formed RFC 5646 `langtag` (grandfathered and
/// private-use-only tags are not: they name no supported language anyway).
fn canonical(raw: &str) -> Option<String> {
    let subtags: Vec<&str> = raw.split('-').collect();
    let alpha = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic())
    };
    let alnum = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    let mut out: Vec<String> = Vec::with_capacity(subtags.len());
    let mut i = 0;
    // language: 2-3 letters (with up to three extended subtags), or 4-8 letters.
    let first = *subtags.first()?;
    if !alpha(first, 2, 8) {
        return None;
    }
    out.push(first.to_ascii_lowercase());
    i += 1;
    if first.len() <= 3 {
        let mut ext = 0;
        while ext < 3 && subtags.get(i).is_some_and(|s| alpha(s, 3, 3)) {
            out.push(subtags[i].to_ascii_lowercase());
            i += 1;
            ext += 1;
        }
    }
    // script: 4 letters, title case.
    if let Some(s) = subtags.get(i).filter(|s| alpha(s, 4, 4)) {
        let lower = s.to_ascii_lowercase();
        out.push(lower[..1].to_ascii_uppercase() + &lower[1..]);
        i += 1;
    }
    // region: 2 letters (upper case) or 3 digits.
    if let Some(s) = subtags
        .get(i)
        .filter(|s| alpha(s, 2, 2) || (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit())))
    {
        out.push(s.to_ascii_uppercase());
        i += 1;
    }
    // variants: 5-8 alphanumerics, or a digit and 3 alphanumerics; no repeats.
    while let Some(s) = subtags.get(i).filter(|s| {
        alnum(s, 5, 8) || (s.len() == 4 && s.as_bytes()[0].is_ascii_digit() && alnum(s, 4, 4))
    }) {
        let lower = s.to_ascii_lowercase();
        if out.contains(&lower) {
            return None;
        }
        out.push(lower);
        i += 1;
    }
    // extensions: a singleton other than x, then one or more 2-8 alphanumerics; no repeats.
    let mut singletons: Vec<u8> = Vec::new();
    while let Some(s) = subtags.get(i).filter(|s| s.len() == 1) {
        let singleton = s.as_bytes()[0].to_ascii_lowercase();
        if !singleton.is_ascii_alphanumeric() {
            return None;
        }
        if singleton == b'x' {
            break;
        }
        if singletons.contains(&singleton) {
            return None;
        }
        singletons.push(singleton);
        out.push(s.to_ascii_lowercase());
        i += 1;
        let start = i;
        while subtags.get(i).is_some_and(|s| alnum(s, 2, 8)) {
            out.push(subtags[i].to_ascii_lowercase());
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    // private use: x, then one or more 1-8 alphanumerics.
    if subtags.get(i).is_some_and(|s| s.eq_ignore_ascii_case("x")) {
        out.push("x".to_owned());
        i += 1;
        let start = i;
        while subtags.get(i).is_some_and(|s| alnum(s, 1, 8)) {
            out.push(subtags[i].to_ascii_lowercase());
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    (i == subtags.len()).then(|| out.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(raw: &str) -> Result<String, LocaleError> {
        Locale::parse(raw).map(|l| l.as_str().to_owned())
    }

    #[test]
    fn supported_tags_are_kept_in_canonical_case() {
        assert_eq!(tag("ka").unwrap(), "ka");
        assert_eq!(tag(" DE-ch ").unwrap(), "de-CH");
        assert_eq!(tag("fr-ca").unwrap(), "fr-CA");
        assert_eq!(tag("es-419").unwrap(), "es-419");
        assert_eq!(tag("en-latn-gb").unwrap(), "en-Latn-GB");
        assert_eq!(tag("de-DE-1996").unwrap(), "de-DE-1996");
        assert_eq!(tag("de-CH-u-co-phonebk").unwrap(), "de-CH-u-co-phonebk");
        assert_eq!(tag("en-US-x-twain").unwrap(), "en-US-x-twain");
        assert_eq!(Locale::parse("de-CH").unwrap().language(), Language::De);
        assert_eq!(Locale::parse("ka-GE").unwrap().language(), Language::Ka);
    }

    #[test]
    fn malformed_tags_are_refused() {
        for raw in [
            "",
            "-",
            "d",
            "de-",
            "de--CH",
            "de_CH",
            "de-CH-",
            "en-a",
            "en-a-bb-a-cc",
            "en-x",
            "x-private",
            "de-1996-1996",
            "kä",
            "de CH",
            "abcdefghi",
            &"de-".repeat(20),
        ] {
            assert!(
                matches!(Locale::parse(raw), Err(LocaleError::Malformed { .. })),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn unsupported_languages_are_named() {
        let e = Locale::parse("it-IT").unwrap_err();
        assert_eq!(
            e.to_string(),
            "locale: the language \"it\" is not supported; supported: en, ka, de, fr, es"
        );
        assert!(matches!(
            Locale::parse("deu"),
            Err(LocaleError::Unsupported { .. })
        ));
    }

    #[test]
    fn the_user_comes_before_the_tenant_before_english() {
        let ka = Locale::parse("ka").unwrap();
        let de = Locale::parse("de-CH").unwrap();
        assert_eq!(Language::choose(Some(&ka), Some(&de)), Language::Ka);
        assert_eq!(Language::choose(None, Some(&de)), Language::De);
        assert_eq!(Language::choose(None, None), Language::En);
    }

    #[test]
    fn serde_refuses_what_parse_refuses() {
        let l: Locale = serde_json::from_str("\"de-ch\"").unwrap();
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"de-CH\"");
        assert!(serde_json::from_str::<Locale>("\"it\"").is_err());
        #[derive(serde::Deserialize)]
        struct Stored {
            #[serde(default, deserialize_with = "lenient")]
            locale: Option<Locale>,
        }
        let read = |json: &str| serde_json::from_str::<Stored>(json).unwrap().locale;
        assert_eq!(read(r#"{"locale":"it"}"#), None);
        assert_eq!(read(r#"{"locale":null}"#), None);
        assert_eq!(read("{}"), None);
        assert_eq!(read(r#"{"locale":"ka"}"#), Locale::parse("ka").ok());
    }
}

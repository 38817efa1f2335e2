//! What text an argument may hold: the rules every string of a request is held to, whatever
//! the argument, before the domain applies its own (usually tighter) ones.

use twofold_domain::{DeviceLabel, KeyLabel, Reason, TenantName, UserId};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Longest ID value, in characters. The domain's own ids are shorter (user ids 128).
pub const MAX_ID_CHARS: usize = 256;

/// Longest String value, in characters, for arguments the domain does not bound more tightly
/// (the longest it does bound is `reason`, 500).
pub const MAX_TEXT_CHARS: usize = 1_000;

/// Most elements of one list value (the domain's longest lists: 64 event types, 50 calling
/// codes).
pub const MAX_LIST_ITEMS: usize = 100;

/// Arguments (and input fields) the domain bounds, by name: refused here with the domain's own
/// limit, so the message is the same whichever check sees the value first.
const DOMAIN_BOUNDS: &[(&str, usize)] = &[
    ("userId", UserId::MAX_CHARS),
    ("name", TenantName::MAX_CHARS),
    ("label", KeyLabel::MAX_CHARS),
    ("reason", Reason::MAX_CHARS),
    ("deviceLabel", DeviceLabel::MAX_CHARS),
    // The browser's WebAuthn JSON: a credential (`finishWebAuthnRegistration`) or an assertion
    // (`verify` and proofs with WEBAUTHN); the services bound other codes to 64 characters.
    ("credential", MAX_WEBAUTHN_JSON_CHARS),
    ("code", MAX_WEBAUTHN_JSON_CHARS),
];

/// Longest browser WebAuthn JSON: a credential with an RSA key and every `toJSON()` field is a
/// few KiB; the services refuse more than this many bytes too.
pub const MAX_WEBAUTHN_JSON_CHARS: usize = 32 * 1024;

/// How an argument's text is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An identifier: also no white space at either end (" alice" is not "alice", and would
    /// look the same in every list).
    Id,
    /// Any other text.
    Text,
}

/// Checks one string of argument `name`; the error message names the argument.
pub fn check(name: &str, value: &str, kind: Kind) -> Result<(), String> {
    let max = DOMAIN_BOUNDS
        .iter()
        .find(|(bounded, _)| *bounded == name)
        .map_or(
            match kind {
                Kind::Id => MAX_ID_CHARS,
                Kind::Text => MAX_TEXT_CHARS,
            },
            |(_, max)| *max,
        );
    // Bytes bound characters from above: most values need no count.
    if value.len() > max && value.chars().count() > max {
        return Err(format!("`{name}` must be at most {max} characters"));
    }
    if value.chars().any(invisible) {
        return Err(format!(
            "`{name}` must not contain control or invisible formatting characters"
        ));
    }
    if kind == Kind::Id && value.trim() != value {
        return Err(format!("`{name}` must not begin or end with white space"));
    }
    Ok(())
}

/// Characters that corrupt storage, logs or exports (NUL, other controls, line separators), or
/// make two different values look the same: bidirectional overrides and isolates (U+202A to
/// U+202E, U+2066 to U+2069) and every other format character (general category Cf: zero-width
/// spaces and joiners, U+FEFF, U+2060, soft hyphens, ...).
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c.general_category(),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_controls_bidi_and_format_characters() {
        for bad in [
            "a\0b",
            "a\u{7}",
            "\u{1b}[31m",
            "a\u{85}",
            "a\u{2028}b",
            "\u{202a}x",
            "x\u{202e}",
            "\u{2066}x",
            "x\u{2069}",
            "a\u{200b}b",
            "a\u{200d}b",
            "a\u{200f}",
            "\u{feff}a",
            "a\u{2060}b",
            "soft\u{ad}hyphen",
            "tag\u{e0041}",
        ] {
            let e = check("userId", bad, Kind::Text).unwrap_err();
            assert!(
                e.starts_with("`userId` must not contain control"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn accepts_scripts_emoji_and_inner_spaces() {
        for good in ["Zoë", "山田 太郎", "مرحبا", "👍", "a b", "O'Brien-Smith"] {
            assert_eq!(check("name", good, Kind::Id), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn ids_have_no_white_space_at_either_end_and_lengths_are_bounded() {
        assert!(check("userId", " alice", Kind::Id).is_err());
        assert!(check("userId", "alice\u{a0}", Kind::Id).is_err());
        assert_eq!(check("reason", " because ", Kind::Text), Ok(()));
        assert_eq!(check("keyId", &"é".repeat(MAX_ID_CHARS), Kind::Id), Ok(()));
        assert_eq!(
            check("keyId", &"é".repeat(MAX_ID_CHARS + 1), Kind::Id),
            Err(format!("`keyId` must be at most {MAX_ID_CHARS} characters"))
        );
        assert_eq!(
            check("userId", &"u".repeat(129), Kind::Id),
            Err("`userId` must be at most 128 characters".to_owned())
        );
        assert!(check("accountLabel", &"1".repeat(MAX_TEXT_CHARS + 1), Kind::Text).is_err());
        // WebAuthn JSON travels in `credential` and `code`: a few KiB pass, more does not.
        assert_eq!(check("code", &"a".repeat(4_000), Kind::Text), Ok(()));
        assert!(check(
            "credential",
            &"a".repeat(MAX_WEBAUTHN_JSON_CHARS + 1),
            Kind::Text
        )
        .is_err());
    }
}

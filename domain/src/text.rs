//! Human-entered text fields, parsed once at the edge so the rest of the code can trust them.

use serde::{Deserialize, Serialize};

/// Why a piece of human-entered text was refused; the message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing but white space.
    #[error("{field} must not be empty")]
    Empty {
        /// Which field.
        field: &'static str,
    },
    /// Longer than the field allows (counted in characters).
    #[error("{field} must be at most {max} characters")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// Control characters would corrupt logs and exports.
    #[error("{field} must not contain control characters")]
    ControlCharacter {
        /// Which field.
        field: &'static str,
    },
}

/// Trims, then checks the text is non-empty, short enough and free of control characters.
fn parse_text(field: &'static str, raw: &str, max: usize) -> Result<String, TextError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(TextError::Empty { field });
    }
    if trimmed.chars().count() > max {
        return Err(TextError::TooLong { field, max });
    }
    if trimmed.chars().any(char::is_control) {
        return Err(TextError::ControlCharacter { field });
    }
    Ok(trimmed.to_owned())
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Parses caller input: trimmed, non-empty, at most `MAX_CHARS`, no control characters.
            pub fn parse(raw: &str) -> Result<Self, TextError> {
                parse_text($field, raw, $max).map(Self)
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// A tenant's display name: it appears as the issuer in authenticator apps and in messages.
    TenantName,
    "name",
    100
);
text_newtype!(
    /// What an admin calls an API key, so a list of keys can be told apart before revoking one.
    KeyLabel,
    "label",
    100
);
text_newtype!(
    /// Why an admin took a drastic action (reset, lockout cleared): the audit trail needs it.
    Reason,
    "reason",
    500
);
text_newtype!(
    /// What the user calls a remembered device ("Work laptop"), so a list of trusted devices can
    /// be told apart before revoking one.
    DeviceLabel,
    "deviceLabel",
    64
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trims_and_keeps_inner_spaces() {
        assert_eq!(
            TenantName::parse("  Acme Inc ").unwrap().as_str(),
            "Acme Inc"
        );
    }

    #[test]
    fn refuses_blank_long_and_control_text() {
        assert_eq!(
            TenantName::parse("   "),
            Err(TextError::Empty { field: "name" })
        );
        assert_eq!(
            KeyLabel::parse(&"x".repeat(101)),
            Err(TextError::TooLong {
                field: "label",
                max: 100
            })
        );
        assert_eq!(
            Reason::parse("a\u{0}b"),
            Err(TextError::ControlCharacter { field: "reason" })
        );
    }

    #[test]
    fn limit_counts_characters_not_bytes() {
        assert!(TenantName::parse(&"ა".repeat(100)).is_ok());
    }

    proptest! {
        #[test]
        fn accepted_text_is_trimmed_bounded_and_printable(s in "\\PC{0,120}") {
            if let Ok(name) = TenantName::parse(&s) {
                prop_assert_eq!(name.as_str(), name.as_str().trim());
                prop_assert!(!name.as_str().is_empty());
                prop_assert!(name.as_str().chars().count() <= TenantName::MAX_CHARS);
                prop_assert!(!name.as_str().chars().any(char::is_control));
            }
        }
    }
}

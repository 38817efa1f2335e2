//! Where codes are delivered: email addresses and SMS-capable phone numbers, parsed at the edge
//! and masked whenever shown (`j***@example.com`, `+995 *** ** 12 34`).

use phonenumber::{Mode, Type};
use serde::{Deserialize, Serialize};

use crate::calling_codes::CallingCode;

/// Why an address or number was refused; the message tells the caller how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    /// Not an email address.
    #[error("'email' is not a valid email address")]
    InvalidEmail,
    /// No `+` and country code.
    #[error("phone numbers need their country code in international form, e.g. +995 555 12 34 56")]
    MissingCountryCode,
    /// Not a valid number for its country.
    #[error("'phone' is not a valid phone number for its country")]
    InvalidPhone,
    /// A number with an extension: SMS reaches the line, never the extension.
    #[error("'phone' has an extension, which SMS cannot reach; give a mobile number without one")]
    Extension,
    /// A number that cannot receive SMS (fixed line, premium rate, pager...).
    #[error("'phone' is a {0} number and cannot receive SMS codes; use a mobile number")]
    NotMobile(&'static str),
}

/// A syntactically valid email address (domain lowercased).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses an address: one `@`, a local part of 1..=64 printable characters without spaces,
    /// a domain of dot-separated labels with an alphabetic top level, 254 characters at most.
    pub fn parse(raw: &str) -> Result<Self, ContactError> {
        let raw = raw.trim();
        let (local, domain) = raw.rsplit_once('@').ok_or(ContactError::InvalidEmail)?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let labels: Vec<&str> = domain.split('.').collect();
        let ok = raw.len() <= 254
            && (1..=64).contains(&local.len())
            && !local.contains('@')
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '<' && c != '>')
            && labels.len() >= 2
            && labels.iter().all(|l| label_ok(l))
            && labels
                .last()
                .is_some_and(|t| t.len() >= 2 && t.bytes().all(|b| b.is_ascii_alphabetic()));
        if !ok {
            return Err(ContactError::InvalidEmail);
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For display: the first character of the local part, then `***`.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.rsplit_once('@').unwrap_or(("", &self.0));
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    }
}

/// A phone number that can receive SMS, in E.164.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PhoneNumber {
    e164: String,
    calling_code: CallingCode,
    region: Option<String>,
}

/// Full-width digits (U+FF10 to U+FF19) and plus sign (U+FF0B) as their ASCII forms.
fn as_typed(raw: &str) -> String {
    raw.chars()
        .map(|c| match c {
            '\u{FF10}'..='\u{FF19}' => char::from(b'0' + (c as u32 - 0xFF10) as u8),
            '\u{FF0B}' => '+',
            other => other,
        })
        .collect()
}

impl PhoneNumber {
    /// Parses a number in international form (`+<country code><number>`), refusing numbers
    /// the metadata marks as unable to receive SMS.
    ///
    /// Numbers are read as people type them: full-width digits and plus sign (as Japanese and
    /// Chinese input methods produce) count as ASCII ones, and the `00` international prefix as
    /// `+`. A number with an extension is refused rather than silently cut short.
    pub fn parse(raw: &str) -> Result<Self, ContactError> {
        let typed = as_typed(raw.trim());
        let raw = match typed.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => typed,
        };
        if !raw.starts_with('+') {
            return Err(ContactError::MissingCountryCode);
        }
        if raw.len() > 32 {
            return Err(ContactError::InvalidPhone);
        }
        // The ways an extension is written: "ext. 12", "x 12", "#12", RFC 3966's ";ext=12". Each
        // holds one of these characters; a bare ";" is refused too, as `phonenumber` would drop it.
        if raw.to_ascii_lowercase().contains(['x', '#', ';']) {
            return Err(ContactError::Extension);
        }
        let number = phonenumber::parse(None, &raw).map_err(|_| ContactError::InvalidPhone)?;
        if number.extension().is_some() {
            return Err(ContactError::Extension);
        }
        if !number.is_valid() {
            return Err(ContactError::InvalidPhone);
        }
        let kind = number.number_type(&phonenumber::metadata::DATABASE);
        match kind {
            Type::Mobile | Type::FixedLineOrMobile | Type::Voip | Type::PersonalNumber => {}
            Type::FixedLine => return Err(ContactError::NotMobile("fixed-line")),
            Type::TollFree => return Err(ContactError::NotMobile("toll-free")),
            Type::PremiumRate => return Err(ContactError::NotMobile("premium-rate")),
            _ => return Err(ContactError::NotMobile("non-mobile")),
        }
        let calling_code = CallingCode::parse(&number.code().value().to_string())
            .map_err(|_| ContactError::InvalidPhone)?;
        Ok(Self {
            e164: number.format().mode(Mode::E164).to_string(),
            calling_code,
            region: number.country().id().map(|id| format!("{id:?}")),
        })
    }

    /// `+99555512345`-style E.164 text: what providers are sent.
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The country calling code, checked against the tenant's allowed list.
    pub fn calling_code(&self) -> CallingCode {
        self.calling_code
    }

    /// ISO region (e.g. `GE`), when the code maps to one.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// For display: the calling code and the last four digits, e.g. `+995 *** ** 12 34`.
    pub fn masked(&self) -> String {
        let cc = self.calling_code.to_string();
        let national: Vec<char> = self.e164.trim_start_matches('+')[cc.len()..]
            .chars()
            .collect();
        let hidden = national.len().saturating_sub(4);
        let stars: Vec<String> = "*"
            .repeat(hidden)
            .as_bytes()
            .chunks(3)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let tail: String = national[hidden..].iter().collect();
        let (a, b) = tail.split_at(tail.len().min(2));
        format!("+{cc} {} {a} {b}", stars.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_parsed_and_masked() {
        let e = EmailAddress::parse("  John.Doe+2fa@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "John.Doe+2fa@example.com");
        assert_eq!(e.masked(), "J***@example.com");
        for bad in [
            "",
            "plain",
            "a@b",
            "a@b.c",
            "a b@c.com",
            "@c.com",
            "a@-c.com",
            "a@c..com",
            "a@c.c0m",
        ] {
            assert_eq!(
                EmailAddress::parse(bad),
                Err(ContactError::InvalidEmail),
                "{bad}"
            );
        }
        assert!(EmailAddress::parse(&format!("{}@x.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn domains_may_have_hyphens_and_nothing_else_but_letters_and_digits() {
        assert_eq!(
            EmailAddress::parse("j@mail-1.example.com")
                .unwrap()
                .as_str(),
            "j@mail-1.example.com"
        );
        for bad in ["j@mail_1.example.com", "j@exa mple.com", "j@example-.com"] {
            assert_eq!(
                EmailAddress::parse(bad),
                Err(ContactError::InvalidEmail),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_number_may_be_typed_with_spaces_up_to_32_characters() {
        let spaced = |spaces: usize| format!("+995{}555123456", " ".repeat(spaces));
        assert_eq!(spaced(19).len(), 32);
        assert_eq!(
            PhoneNumber::parse(&spaced(19)).map(|p| p.e164().to_owned()),
            Ok("+995555123456".into())
        );
        assert_eq!(
            PhoneNumber::parse(&spaced(20)),
            Err(ContactError::InvalidPhone)
        );
    }

    #[test]
    fn georgian_mobile_numbers_are_accepted_in_e164() {
        let p = PhoneNumber::parse("+995 555 12 34 56").unwrap();
        assert_eq!(p.e164(), "+995555123456");
        assert_eq!(p.calling_code().value(), 995);
        assert_eq!(p.region(), Some("GE"));
        assert_eq!(p.masked(), "+995 *** ** 34 56");
    }

    #[test]
    fn numbers_are_read_as_people_type_them() {
        let e164 = |raw: &str| PhoneNumber::parse(raw).map(|p| p.e164().to_owned());
        assert_eq!(e164("00995 555 12 34 56"), Ok("+995555123456".into()));
        assert_eq!(
            e164("\u{FF0B}\u{FF19}\u{FF19}\u{FF15} \u{FF15}\u{FF15}\u{FF15} 12 34 56"),
            Ok("+995555123456".into())
        );
        for with_extension in [
            "+995 555 12 34 56 ext. 12",
            "+995555123456;ext=7",
            "+1 415 555 2671 x 33",
            "+995555123456#12",
            "+995555123456;12",
            "+995555123456;",
        ] {
            let e = PhoneNumber::parse(with_extension).unwrap_err();
            assert_eq!(e, ContactError::Extension, "{with_extension}");
            assert!(e.to_string().contains("SMS cannot reach"));
        }
    }

    #[test]
    fn a_number_without_a_country_code_says_so() {
        let e = PhoneNumber::parse("555 12 34 56").unwrap_err();
        assert_eq!(e, ContactError::MissingCountryCode);
        assert!(e.to_string().contains("country code"));
    }

    #[test]
    fn invalid_and_fixed_line_numbers_are_refused() {
        assert_eq!(
            PhoneNumber::parse("+995 12"),
            Err(ContactError::InvalidPhone)
        );
        assert_eq!(PhoneNumber::parse("+abc"), Err(ContactError::InvalidPhone));
        // Tbilisi landline.
        assert_eq!(
            PhoneNumber::parse("+995 32 212 34 56"),
            Err(ContactError::NotMobile("fixed-line"))
        );
        // UK freephone and premium rate: the message names the kind.
        assert_eq!(
            PhoneNumber::parse("+44 800 123 4567"),
            Err(ContactError::NotMobile("toll-free"))
        );
        assert_eq!(
            PhoneNumber::parse("+44 909 876 5432"),
            Err(ContactError::NotMobile("premium-rate"))
        );
    }

    proptest! {
        #[test]
        fn masking_never_shows_more_than_the_last_four_digits(n in 100_000_000u64..999_999_999) {
            if let Ok(p) = PhoneNumber::parse(&format!("+9955{:08}", n % 100_000_000)) {
                let masked = p.masked();
                let digits: String = masked.chars().filter(char::is_ascii_digit).collect();
                prop_assert_eq!(digits.len(), 3 + 4);
                prop_assert!(p.e164().ends_with(&digits[3..]));
            }
        }

        #[test]
        fn email_parsing_never_panics(s in "\\PC{0,80}") {
            let _ = EmailAddress::parse(&s);
        }
    }
}

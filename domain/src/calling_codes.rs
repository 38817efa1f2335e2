//! Country calling codes (ITU-T E.164 geographic assignments).
//!
//! A tenant restricts SMS to the countries it serves (e.g. `995`, Georgia) to stop SMS pumping;
//! a typo such as `9950` must be refused when the policy is set, not discovered when no user can
//! enroll. Non-geographic codes (international freephone, satellite, networks) are excluded on
//! purpose: no end user's phone should receive a code there.

use serde::{Deserialize, Serialize};

/// The geographic country calling codes in use, sorted.
const ASSIGNED: &[u16] = &[
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54,
    55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98, 211,
    212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234,
    235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 290, 291, 297, 298,
    299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376, 377,
    378, 379, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674, 675,
    676, 677, 678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 850, 852, 853,
    855, 856, 880, 886, 960, 961, 962, 963, 964, 965, 966, 967, 968, 970, 971, 972, 973, 974, 975,
    976, 977, 992, 993, 994, 995, 996, 998,
];

/// Why a calling code was refused; safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not a country calling code (give digits only, e.g. \"995\" for Georgia)")]
pub struct CallingCodeError {
    /// What was given, truncated for the message.
    pub input: String,
}

/// A country calling code that is actually assigned to a country or region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallingCode(u16);

impl CallingCode {
    /// Parses `"995"` or `"+995"`.
    pub fn parse(raw: &str) -> Result<Self, CallingCodeError> {
        let err = || CallingCodeError {
            input: raw.chars().take(16).collect(),
        };
        let digits = raw.trim().strip_prefix('+').unwrap_or(raw.trim());
        // Digits only (`u16::from_str` alone would take a second `+`), without a leading zero
        // (`0995` is a typo, not 995). Empty and overlong input fail to parse or to be assigned.
        if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
            return Err(err());
        }
        let code: u16 = digits.parse().map_err(|_| err())?;
        if ASSIGNED.binary_search(&code).is_err() {
            return Err(err());
        }
        Ok(Self(code))
    }

    /// The numeric code.
    pub fn value(self) -> u16 {
        self.0
    }

    /// Every assigned code, in ascending order (a country selector's choices).
    pub fn all() -> impl Iterator<Item = CallingCode> {
        ASSIGNED.iter().map(|c| CallingCode(*c))
    }
}

impl std::fmt::Display for CallingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_so_binary_search_is_right() {
        assert!(ASSIGNED.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn accepts_real_codes_with_or_without_plus() {
        assert_eq!(CallingCode::parse("995").unwrap().value(), 995);
        assert_eq!(CallingCode::parse("+1").unwrap().value(), 1);
        assert_eq!(CallingCode::parse("44").unwrap().to_string(), "44");
    }

    #[test]
    fn refuses_unassigned_padded_and_non_geographic_codes() {
        for bad in [
            "9950", "999", "0995", "", "+", "abc", "800", "882", "28", "-1", "++1", "+ 1", "00001",
            "99999999",
        ] {
            assert!(CallingCode::parse(bad).is_err(), "{bad} accepted");
        }
    }
}

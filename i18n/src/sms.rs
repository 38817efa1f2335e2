//! How long an SMS is, in the units networks bill: GSM-7 septets (3GPP TS 23.038, default
//! alphabet, characters of its extension table counting two) when every character is in the
//! alphabet, UCS-2 (UTF-16) code units otherwise. One segment holds 160 septets or 70 UCS-2
//! units; a longer text is sent in parts of 153 or 67 (the rest is the concatenation header).

/// How a text is encoded for the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The GSM 7-bit default alphabet.
    Gsm7,
    /// UCS-2 / UTF-16 (anything outside GSM-7: Georgian, emoji, curly quotes...).
    Ucs2,
}

/// The size of an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsLength {
    /// The encoding the whole text needs.
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// Segments it is sent in (0 for an empty text).
    pub segments: usize,
}

/// Septets in one GSM-7 segment.
pub const GSM7_SINGLE: usize = 160;
/// UTF-16 units in one UCS-2 segment.
pub const UCS2_SINGLE: usize = 70;

/// The GSM 03.38 default alphabet (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table (an escape and the character: two septets each).
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets of `c` in GSM-7, or `None` if the alphabet lacks it.
fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Whether the whole text can be sent as GSM-7.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_septets(c).is_some())
}

/// The encoding, size and number of segments of `text`.
pub fn measure(text: &str) -> SmsLength {
    let gsm: Option<usize> = text.chars().map(gsm7_septets).sum();
    let (encoding, units, single, part) = match gsm {
        Some(septets) => (Encoding::Gsm7, septets, GSM7_SINGLE, 153),
        None => (Encoding::Ucs2, text.encode_utf16().count(), UCS2_SINGLE, 67),
    };
    let segments = match units {
        0 => 0,
        u if u <= single => 1,
        u => u.div_ceil(part),
    };
    SmsLength {
        encoding,
        units,
        segments,
    }
}

/// Whether `text` goes out as one segment.
pub fn fits_one_segment(text: &str) -> bool {
    measure(text).segments <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_counts_septets_with_extension_characters_as_two() {
        let plain = "a".repeat(160);
        assert_eq!(
            measure(&plain),
            SmsLength {
                encoding: Encoding::Gsm7,
                units: 160,
                segments: 1
            }
        );
        assert_eq!(measure(&format!("{plain}a")).segments, 2);
        let euro = format!("{}€", "a".repeat(158));
        assert_eq!(measure(&euro).units, 160);
        assert_eq!(measure(&euro).segments, 1);
        assert_eq!(measure(&format!("{}{{", "a".repeat(159))).segments, 2);
        assert_eq!(measure(&"a".repeat(306)).segments, 2);
        assert_eq!(measure(&"a".repeat(307)).segments, 3);
        assert_eq!(measure("").segments, 0);
    }

    #[test]
    fn accented_latin_letters_are_gsm7_only_where_the_alphabet_has_them() {
        assert!(is_gsm7("Gültig für 10 Minuten. Ändern Sie es, ß"));
        assert!(is_gsm7("vérification à personne, teléfono, año"));
        assert!(!is_gsm7("código"), "ó is not in GSM-7");
        assert!(!is_gsm7("reçu"), "lower-case ç is not in GSM-7");
        assert!(!is_gsm7("l’accès"), "a curly apostrophe is not");
        assert!(!is_gsm7("a\u{a0}b"), "a non-breaking space is not");
    }

    #[test]
    fn anything_else_is_ucs2_counted_in_utf16_units() {
        let georgian = "კ".repeat(70);
        assert_eq!(
            measure(&georgian),
            SmsLength {
                encoding: Encoding::Ucs2,
                units: 70,
                segments: 1
            }
        );
        assert_eq!(measure(&format!("{georgian}a")).segments, 2);
        // One non-GSM character makes the whole text UCS-2.
        assert_eq!(measure(&format!("{}ó", "a".repeat(70))).segments, 2);
        // Characters outside the BMP take two units.
        assert_eq!(measure("🔐").units, 2);
        assert_eq!(measure(&"კ".repeat(134)).segments, 2);
        assert_eq!(measure(&"კ".repeat(135)).segments, 3);
    }
}

//! What a captured mail says: its headers and decoded text parts, and the code in it.

use base64::Engine;

/// One message the SMTP capture server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The raw message (headers and body, as sent after `DATA`, dot-unstuffed).
    pub data: String,
    /// The name the client gave in `EHLO` / `HELO`.
    pub helo: String,
}

impl ReceivedMail {
    /// The value of the first header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        header_of(split_message(&self.data).0, name)
    }

    /// Whether this is a security notice (its Message-ID is made from a notification id).
    pub fn is_notice(&self) -> bool {
        self.header("Message-ID").is_some_and(|id| {
            id.trim()
                .trim_start_matches('<')
                .starts_with(crate::fakes::NOTICE_ID_PREFIX)
        })
    }

    /// The decoded `text/plain` part (or the body of a single-part plain message).
    pub fn text(&self) -> Option<String> {
        text_parts(&self.data)
            .into_iter()
            .find(|(ty, _)| ty.starts_with("text/plain"))
            .map(|(_, body)| body)
    }

    /// The decoded `text/html` part.
    pub fn html(&self) -> Option<String> {
        text_parts(&self.data)
            .into_iter()
            .find(|(ty, _)| ty.starts_with("text/html"))
            .map(|(_, body)| body)
    }
}

/// The first standalone run of exactly `digits` ASCII digits (not touching another letter or
/// digit) in `text`. `text` may be a raw mail: then its headers are skipped and its text parts
/// are decoded (quoted-printable, base64) first, plain text before HTML.
pub fn extract_code(text: &str, digits: usize) -> Option<String> {
    if looks_like_mail(text) {
        let parts = text_parts(text);
        let mut ordered: Vec<&(String, String)> = parts
            .iter()
            .filter(|(ty, _)| ty.starts_with("text/plain"))
            .collect();
        ordered.extend(parts.iter().filter(|(ty, _)| !ty.starts_with("text/plain")));
        return ordered
            .into_iter()
            .find_map(|(_, body)| find_digits(body, digits));
    }
    find_digits(text, digits)
}

fn find_digits(text: &str, digits: usize) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let before = start.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i).copied();
            let touches = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
            if i - start == digits && !touches(before) && !touches(after) {
                return Some(chars[start..i].iter().collect());
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Whether `text` starts with an RFC 5322 header block.
fn looks_like_mail(text: &str) -> bool {
    let first = text.lines().next().unwrap_or("");
    let (name, _) = match first.split_once(':') {
        Some(pair) => pair,
        None => return false,
    };
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && (text.contains("\r\n\r\n") || text.contains("\n\n"))
}

/// Headers and body of a message or a MIME part.
fn split_message(text: &str) -> (&str, &str) {
    for sep in ["\r\n\r\n", "\n\n"] {
        if let Some(i) = text.find(sep) {
            return (&text[..i], &text[i + sep.len()..]);
        }
    }
    (text, "")
}

fn header_of(headers: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in headers.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(v) = found.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case(name) {
                found = Some(v.trim().to_owned());
            }
        }
    }
    found
}

/// The `boundary` parameter of a multipart Content-Type.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Every text part of a message as (lower-case content type, decoded text), in order.
fn text_parts(raw: &str) -> Vec<(String, String)> {
    let (headers, body) = split_message(raw);
    let content_type = header_of(headers, "Content-Type")
        .unwrap_or_else(|| "text/plain".to_owned())
        .to_ascii_lowercase();
    let original_type = header_of(headers, "Content-Type").unwrap_or_default();
    if content_type.starts_with("multipart/") {
        let Some(b) = boundary(&original_type) else {
            return Vec::new();
        };
        let delimiter = format!("--{b}");
        return body
            .split(delimiter.as_str())
            .skip(1)
            .take_while(|part| !part.starts_with("--"))
            .flat_map(|part| text_parts(part.trim_start_matches(['\r', '\n'])))
            .collect();
    }
    if !content_type.starts_with("text/") {
        return Vec::new();
    }
    let encoding = header_of(headers, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        }
        _ => body.to_owned(),
    };
    vec![(content_type, decoded)]
}

/// RFC 2045 quoted-printable: `=XX` escapes and `=` soft line breaks.
pub fn decode_quoted_printable(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if bytes[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

//! The email and the SMS that carry a one-time code, in the user's language: the one place
//! their texts are made (senders only transport them).
//!
//! - Email: a subject, a plain-text and an HTML body that name the sender and say how long the
//!   code lives (never longer than it does: seconds under two minutes, then whole minutes
//!   rounded down). The code has a line of its own. Sender names are escaped in HTML.
//! - SMS: the code first, in one segment (160 GSM-7 or 70 UCS-2 characters). When the whole
//!   text does not fit, the sender's name is cut (never below [`MIN_SMS_NAME_CHARS`] while
//!   the warning not to share the code is kept), then the warning goes, then the name, then
//!   how long the code lives, then every word; the code never. With the tenant's web origin, the last line is the autofill line
//!   `@host #code` (WebOTP, and the origin-bound one-time codes of iOS and Android).

use twofold_domain::channel::Purpose;

use crate::sms::fits_one_segment;
use crate::{display_name, escape_html, wrap, Arg, Catalog, Language};

/// The fewest characters of the sender's name an SMS keeps before it drops its warning not
/// to share the code.
pub const MIN_SMS_NAME_CHARS: usize = 12;

/// What a code message says.
#[derive(Clone, Copy)]
pub struct CodeText<'a> {
    /// The language to write in.
    pub language: Language,
    /// Sign-in or channel verification.
    pub purpose: Purpose,
    /// Who the message is from: the tenant's sender name (its name until it sets one).
    pub sender_name: &'a str,
    /// The code.
    pub code: &'a str,
    /// Seconds the code has left.
    pub valid_seconds: u32,
    /// The host of the tenant's web origin, for the SMS autofill line.
    pub web_host: Option<&'a str>,
}

impl std::fmt::Debug for CodeText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeText")
            .field("language", &self.language)
            .field("purpose", &self.purpose)
            .field("code", &"<redacted>")
            .finish()
    }
}

/// An email's texts.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailText {
    /// The subject, unencoded (the mail library encodes it per RFC 2047).
    pub subject: String,
    /// The `text/plain` part.
    pub plain: String,
    /// The `text/html` part.
    pub html: String,
}

impl std::fmt::Debug for EmailText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailText(<redacted>)")
    }
}

/// How long a code lives, as a message says it: never more than it really has. Under two
/// minutes in seconds ("90 seconds", not "2 minutes"), then in whole minutes rounded down.
pub fn validity(language: Language, seconds: u32) -> String {
    let catalog = Catalog::get();
    if seconds < 120 {
        catalog.message(language, "validity-seconds", &[("count", seconds.into())])
    } else {
        catalog.message(
            language,
            "validity-minutes",
            &[("count", (seconds / 60).into())],
        )
    }
}

/// The email of a code.
pub fn email(text: &CodeText<'_>) -> EmailText {
    let catalog = Catalog::get();
    let tenant = display_name(text.sender_name);
    let valid = validity(text.language, text.valid_seconds);
    let args = [
        ("tenant", Arg::Text(&tenant)),
        ("validity", Arg::Text(&valid)),
    ];
    let kind = match text.purpose {
        Purpose::SignIn => "sign-in",
        Purpose::VerifyChannel => "verify",
    };
    let say = |part: &str| catalog.message(text.language, &format!("email-{kind}-{part}"), &args);
    let (subject, intro, outro) = (say("subject"), say("intro"), say("outro"));
    // The code has a line of its own, so no transfer encoding ever breaks it.
    let plain = format!(
        "{}\n\n    {}\n\n{}\n",
        wrap(&intro, 72),
        text.code,
        wrap(&outro, 72)
    );
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head><meta charset=\"utf-8\"></head>\n\
         <body style=\"font-family: sans-serif\">\n<p>\n{intro}\n</p>\n\
         <p style=\"font-size: x-large; font-weight: bold\">\n{code}\n</p>\n\
         <p>\n{outro}\n</p>\n</body>\n</html>\n",
        lang = text.language.code(),
        intro = wrap(&escape_html(&intro), 72),
        code = escape_html(text.code),
        outro = wrap(&escape_html(&outro), 72),
    );
    EmailText {
        subject,
        plain,
        html,
    }
}

/// The SMS of a code: one segment, the code first.
pub fn sms(text: &CodeText<'_>) -> String {
    let catalog = Catalog::get();
    let tenant = display_name(text.sender_name);
    let valid = validity(text.language, text.valid_seconds);
    let ids = match text.purpose {
        Purpose::SignIn => [
            "sms-sign-in",
            "sms-sign-in-short",
            "sms-sign-in-minimal",
            "sms-sign-in-bare",
        ],
        Purpose::VerifyChannel => [
            "sms-verify",
            "sms-verify-short",
            "sms-verify-minimal",
            "sms-verify-bare",
        ],
    };
    let autofill = text
        .web_host
        .map(|host| format!("\n\n@{host} #{}", text.code));
    let finish = |body: String| match &autofill {
        Some(line) => body + line,
        None => body,
    };
    let with_name = |id: &str, min_chars: usize| {
        let total = tenant.chars().count();
        (min_chars.min(total)..=total).rev().find_map(|n| {
            let name: String = tenant.chars().take(n).collect();
            let args = [
                ("code", Arg::Text(text.code)),
                ("tenant", Arg::Text(name.trim_end())),
                ("validity", Arg::Text(&valid)),
            ];
            let sms = finish(catalog.message(text.language, id, &args));
            fits_one_segment(&sms).then_some(sms)
        })
    };
    if let Some(sms) = with_name(ids[0], MIN_SMS_NAME_CHARS).or_else(|| with_name(ids[1], 1)) {
        return sms;
    }
    let args = [
        ("code", Arg::Text(text.code)),
        ("validity", Arg::Text(&valid)),
    ];
    [ids[2], ids[3]]
        .into_iter()
        .map(|id| finish(catalog.message(text.language, id, &args)))
        .find(|sms| fits_one_segment(sms))
        // The autofill line alone still names the code and the site; the host is bounded so
        // that it always fits.
        .unwrap_or_else(|| finish(text.code.to_owned()))
}

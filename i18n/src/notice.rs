//! The email and the SMS of a security notice, in the user's language (texts in
//! `locales/<language>/notifications.ftl`).
//!
//! A notice says what happened, when (UTC, a form every language reads), and what to do if it
//! was not the user: contact the sender's support. It never holds a code, a secret or a full
//! address: a new address or number appears only masked (`a•••@example.com`, `+995 •••• 56`),
//! as the domain masked it. The SMS is one segment (160 GSM-7 or 70 UCS-2 characters): the
//! sender's name is cut (to no fewer than [`MIN_SMS_NAME_CHARS`]), then dropped, when the
//! text would not fit.

use chrono::{DateTime, Utc};
use twofold_domain::user::NotificationKind;

use crate::code::EmailText;
use crate::sms::fits_one_segment;
use crate::{display_name, escape_html, wrap, Arg, Catalog, Language};

/// What a notice says.
#[derive(Debug, Clone, Copy)]
pub struct NoticeText<'a> {
    /// The language to write in.
    pub language: Language,
    /// Who the notice is from: the tenant's sender name (its name until it sets one).
    pub sender_name: &'a str,
    /// What happened.
    pub kind: &'a NotificationKind,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// A time as notices show it.
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The fewest characters of the sender's name an SMS keeps before it drops the name.
pub const MIN_SMS_NAME_CHARS: usize = 4;

/// The kind's part of the message ids (`notice-{id}-subject`).
fn id(kind: &NotificationKind) -> &'static str {
    match kind {
        NotificationKind::FactorAdded { .. } => "factor-added",
        NotificationKind::FactorReplaced { .. } => "factor-replaced",
        NotificationKind::FactorRemoved { .. } => "factor-removed",
        NotificationKind::TwoFactorDisabled => "two-factor-disabled",
        NotificationKind::TwoFactorReset => "two-factor-reset",
        NotificationKind::RecoveryCodeUsed { .. } => "recovery-code-used",
        NotificationKind::DeviceTrusted => "device-trusted",
        NotificationKind::LockedOut { .. } => "locked-out",
    }
}

/// The variables of a notice's messages (the sender's name apart).
struct Vars {
    method: &'static str,
    masked: String,
    remaining: i64,
    until: String,
    admin: &'static str,
}

fn vars(kind: &NotificationKind) -> Vars {
    let mut v = Vars {
        method: "",
        masked: String::new(),
        remaining: 0,
        until: String::new(),
        admin: "no",
    };
    match kind {
        NotificationKind::FactorAdded { method, masked }
        | NotificationKind::FactorReplaced { method, masked } => {
            v.method = method.as_str();
            // Non-breaking: a masked number is never wrapped across lines.
            v.masked = masked.as_deref().unwrap_or_default().replace(' ', "\u{a0}");
        }
        NotificationKind::FactorRemoved { method } => v.method = method.as_str(),
        NotificationKind::RecoveryCodeUsed { remaining } => v.remaining = i64::from(*remaining),
        NotificationKind::LockedOut {
            until,
            admin_required,
        } => {
            v.until = when(*until);
            v.admin = if *admin_required { "yes" } else { "no" };
        }
        NotificationKind::TwoFactorDisabled
        | NotificationKind::TwoFactorReset
        | NotificationKind::DeviceTrusted => {}
    }
    v
}

fn args<'a>(tenant: &'a str, v: &'a Vars, when: &'a str) -> [(&'static str, Arg<'a>); 7] {
    [
        ("tenant", Arg::Text(tenant)),
        ("method", Arg::Text(v.method)),
        ("masked", Arg::Text(&v.masked)),
        ("remaining", Arg::Number(v.remaining)),
        ("until", Arg::Text(&v.until)),
        ("admin", Arg::Text(v.admin)),
        ("when", Arg::Text(when)),
    ]
}

/// The email of a notice.
pub fn email(text: &NoticeText<'_>) -> EmailText {
    let catalog = Catalog::get();
    let tenant = display_name(text.sender_name);
    let v = vars(text.kind);
    let at = when(text.at);
    let args = args(&tenant, &v, &at);
    let say = |id: &str| catalog.message(text.language, id, &args);
    let kind = id(text.kind);
    let subject = say(&format!("notice-{kind}-subject"));
    let paragraphs = [
        say(&format!("notice-{kind}-body")),
        say("notice-when"),
        format!("{} {}", say("notice-not-you"), say("notice-if-you")),
        say("notice-footer"),
    ];
    let plain = paragraphs
        .iter()
        .map(|p| wrap(p, 72))
        .collect::<Vec<_>>()
        .join("\n\n")
        + "\n";
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head><meta charset=\"utf-8\"></head>\n\
         <body style=\"font-family: sans-serif\">\n{body}</body>\n</html>\n",
        lang = text.language.code(),
        body = paragraphs
            .iter()
            .map(|p| format!("<p>\n{}\n</p>\n", wrap(&escape_html(p), 72)))
            .collect::<String>(),
    );
    EmailText {
        subject,
        plain,
        html,
    }
}

/// The SMS of a notice: one segment.
pub fn sms(text: &NoticeText<'_>) -> String {
    let catalog = Catalog::get();
    let tenant = display_name(text.sender_name);
    let v = vars(text.kind);
    let at = when(text.at);
    let kind = id(text.kind);
    let full = format!("notice-{kind}-sms");
    let total = tenant.chars().count();
    (MIN_SMS_NAME_CHARS.min(total)..=total)
        .rev()
        .find_map(|n| {
            let name: String = tenant.chars().take(n).collect();
            let sms = catalog.message(text.language, &full, &args(name.trim_end(), &v, &at));
            fits_one_segment(&sms).then_some(sms)
        })
        .unwrap_or_else(|| {
            catalog.message(
                text.language,
                &format!("{full}-short"),
                &args(&tenant, &v, &at),
            )
        })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use twofold_domain::Method;

    use super::*;

    fn kinds() -> Vec<NotificationKind> {
        let until = Utc.with_ymd_and_hms(2026, 12, 3, 17, 5, 0).unwrap();
        let mut kinds = Vec::new();
        for method in [Method::Totp, Method::Email, Method::Sms, Method::WebAuthn] {
            let masked = match method {
                Method::Email => Some("a•••@example.com".to_owned()),
                Method::Sms => Some("+995 •••• 56".to_owned()),
                _ => None,
            };
            kinds.push(NotificationKind::FactorAdded {
                method,
                masked: masked.clone(),
            });
            kinds.push(NotificationKind::FactorReplaced { method, masked });
            kinds.push(NotificationKind::FactorRemoved { method });
        }
        kinds.extend([
            NotificationKind::TwoFactorDisabled,
            NotificationKind::TwoFactorReset,
            NotificationKind::RecoveryCodeUsed { remaining: 0 },
            NotificationKind::RecoveryCodeUsed { remaining: 1 },
            NotificationKind::RecoveryCodeUsed { remaining: 7 },
            NotificationKind::DeviceTrusted,
            NotificationKind::LockedOut {
                until,
                admin_required: false,
            },
            NotificationKind::LockedOut {
                until,
                admin_required: true,
            },
        ]);
        kinds
    }

    #[test]
    fn every_notice_is_written_in_every_language_and_fits_one_sms() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 16, 5, 0).unwrap();
        for language in Language::ALL {
            for kind in kinds() {
                for name in ["Demo", "Acme Bank of the Caucasus and the Black Sea Region"] {
                    let text = NoticeText {
                        language,
                        sender_name: name,
                        kind: &kind,
                        at,
                    };
                    let mail = email(&text);
                    let sms = sms(&text);
                    for part in [&mail.subject, &mail.plain, &mail.html, &sms] {
                        assert!(!part.contains("notice-"), "{language} {kind:?}: {part}");
                        assert!(!part.contains('{'), "{language} {kind:?}: {part}");
                    }
                    assert!(mail.plain.contains("2026-12-03 16:05 UTC"), "{language}");
                    assert!(fits_one_segment(&sms), "{language} {kind:?}: {sms}");
                    if name == "Demo" {
                        assert!(sms.contains("Demo"), "{language} {kind:?}: {sms}");
                    }
                    if let NotificationKind::RecoveryCodeUsed { remaining: 7 } = kind {
                        assert!(mail.plain.contains('7') && sms.contains('7'), "{language}");
                    }
                    if let NotificationKind::FactorAdded {
                        masked: Some(m), ..
                    } = &kind
                    {
                        let kept = m.replace(' ', "\u{a0}");
                        assert!(mail.plain.contains(&kept), "{language}: {}", mail.plain);
                    }
                }
            }
        }
    }

    #[test]
    fn georgian_notices_are_in_georgian_script() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 16, 5, 0).unwrap();
        let text = NoticeText {
            language: Language::Ka,
            sender_name: "Demo",
            kind: &NotificationKind::TwoFactorReset,
            at,
        };
        let mail = email(&text);
        let georgian = |s: &str| s.chars().any(|c| ('\u{10D0}'..='\u{10FF}').contains(&c));
        assert!(georgian(&mail.subject) && georgian(&mail.plain) && georgian(&sms(&text)));
    }

    #[test]
    fn sender_names_are_escaped_in_html() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 16, 5, 0).unwrap();
        let text = NoticeText {
            language: Language::En,
            sender_name: "<b>Evil</b>",
            kind: &NotificationKind::DeviceTrusted,
            at,
        };
        let html = email(&text).html;
        assert!(html.contains("&lt;b&gt;Evil") && !html.contains("<b>Evil"));
    }
}

//! The texts of a security notice. Interim: plain English until the message catalog crate
//! (`twofold-i18n`) is merged, which renders them in the user's language.

use chrono::{DateTime, Utc};
use twofold_domain::user::{NotificationKind, User};

use crate::ports::TenantView;

/// The language a notice is written in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Language;

/// What a notice says.
pub(super) struct NoticeText<'a> {
    pub language: Language,
    pub sender_name: &'a str,
    pub kind: &'a NotificationKind,
    pub at: DateTime<Utc>,
}

/// An email's texts.
pub(super) struct EmailText {
    pub subject: String,
    pub plain: String,
    pub html: String,
}

pub(super) fn language(_user: &User, _tenant: &TenantView) -> Language {
    Language
}

fn what(text: &NoticeText<'_>) -> String {
    format!("Your {} account: {}", text.sender_name, text.kind.as_str())
}

pub(super) fn email(text: &NoticeText<'_>) -> EmailText {
    let _ = text.language;
    let when = text.at.format("%Y-%m-%d %H:%M UTC");
    let plain = format!(
        "{}\n\nWhen: {when}\n\nIf this was not you, contact {} support right away.\n",
        what(text),
        text.sender_name
    );
    EmailText {
        subject: what(text),
        html: format!("<p>{plain}</p>"),
        plain,
    }
}

pub(super) fn sms(text: &NoticeText<'_>) -> String {
    what(text)
}

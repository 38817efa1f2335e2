//! The texts of a security notice come from the message catalog (`twofold-i18n`), in the
//! user's language: theirs, else the tenant's default, else English.

use twofold_domain::user::User;
pub(super) use twofold_i18n::notice::{email, sms, NoticeText};
use twofold_i18n::Language;

use crate::ports::TenantView;

/// The language to write a notice to this user in.
pub(super) fn language(user: &User, tenant: &TenantView) -> Language {
    Language::choose(user.locale(), tenant.policy.default_locale.as_ref())
}

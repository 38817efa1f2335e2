//! What a code message says, made in one place: the texts come from the message catalog
//! (`twofold-i18n`, in the user's language) and the senders only transport them.

use twofold_i18n::code::{self, CodeText, EmailText};
use twofold_services::ports::OutgoingCode;

/// Who a message says it is from: the sender name the tenant set with its providers, else its
/// name (`OutgoingCode::tenant_name`, chosen by `TenantView::sender_name`).
fn sender_name(message: &OutgoingCode) -> &str {
    &message.tenant_name
}

/// The renderer's view of a message.
fn code_text(message: &OutgoingCode) -> CodeText<'_> {
    CodeText {
        language: message.language,
        purpose: message.purpose,
        sender_name: sender_name(message),
        code: message.code.as_str(),
        valid_seconds: message.valid_seconds,
        web_host: message.web_host.as_deref(),
    }
}

/// The subject and bodies of a code's email.
pub fn email(message: &OutgoingCode) -> EmailText {
    code::email(&code_text(message))
}

/// The text of a code's SMS: the code first, one segment, the autofill line last when the
/// tenant has a web origin.
pub fn sms(message: &OutgoingCode) -> String {
    code::sms(&code_text(message))
}

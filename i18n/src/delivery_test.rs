//! The message `testDelivery` sends through a tenant's own providers (texts in
//! `locales/<language>/delivery-test.ftl`). It carries no code: a recipient must not take a
//! test for a sign-in, and a test must not teach anyone what a code from the tenant looks like.

use crate::code::EmailText;
use crate::notice::MIN_SMS_NAME_CHARS;
use crate::sms::fits_one_segment;
use crate::{display_name, escape_html, wrap, Catalog, Language};

/// The email of a test message.
pub fn email(language: Language, sender_name: &str) -> EmailText {
    let catalog = Catalog::get();
    let tenant = display_name(sender_name);
    let args = [("tenant", tenant.as_str().into())];
    let body = catalog.message(language, "delivery-test-body", &args);
    EmailText {
        subject: catalog.message(language, "delivery-test-subject", &args),
        plain: wrap(&body, 72) + "\n",
        html: format!(
            "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head><meta charset=\"utf-8\"></head>\n\
             <body style=\"font-family: sans-serif\">\n<p>\n{body}\n</p>\n</body>\n</html>\n",
            lang = language.code(),
            body = wrap(&escape_html(&body), 72),
        ),
    }
}

/// The SMS of a test message: one segment, the sender's name cut, then dropped, to fit.
pub fn sms(language: Language, sender_name: &str) -> String {
    let catalog = Catalog::get();
    let tenant = display_name(sender_name);
    let total = tenant.chars().count();
    (MIN_SMS_NAME_CHARS.min(total)..=total)
        .rev()
        .find_map(|n| {
            let name: String = tenant.chars().take(n).collect();
            let sms = catalog.message(
                language,
                "delivery-test-sms",
                &[("tenant", name.trim_end().into())],
            );
            fits_one_segment(&sms).then_some(sms)
        })
        .unwrap_or_else(|| catalog.message(language, "delivery-test-sms-short", &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_message_names_the_sender_fits_one_sms_and_holds_no_digits() {
        let long = "Georgian Bank of Tbilisi and Batumi, Retail and Business Division Ltd";
        for language in Language::ALL {
            for name in ["Acme", long, "საქართველოს ბანკი"] {
                let sms = sms(language, name);
                assert!(fits_one_segment(&sms), "{language}: {sms}");
                let mail = email(language, name);
                for text in [&mail.subject, &mail.plain, &sms] {
                    assert!(
                        !text.contains(|c: char| c.is_ascii_digit()),
                        "{language}: {text}"
                    );
                }
            }
            let mail = email(language, "<b>Acme</b>");
            assert!(mail.subject.contains("<b>Acme</b>"), "{language}");
            assert!(!mail.html.contains("<b>Acme"), "{language}: {}", mail.html);
            assert!(sms(language, "Acme").contains("Acme"), "{language}");
        }
    }
}

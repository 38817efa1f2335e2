//! The catalog is complete and every code message fits its channel, in every language.

use std::collections::BTreeMap;

use twofold_domain::channel::Purpose;

use crate::code::{self, CodeText};
use crate::sms::{is_gsm7, measure, Encoding};
use crate::*;

#[test]
fn every_message_exists_in_every_language_with_the_same_variables() {
    Catalog::load().expect("every embedded file parses");
    let inventory = Catalog::inventory();
    // (file, message) -> variables, per language.
    let mut by_language: BTreeMap<Language, BTreeMap<(String, String), Vec<String>>> =
        BTreeMap::new();
    for file in &inventory {
        for (id, variables) in &file.messages {
            by_language
                .entry(file.language)
                .or_default()
                .insert((file.file.to_owned(), id.clone()), variables.clone());
        }
    }
    let english = by_language
        .get(&Language::En)
        .expect("English texts")
        .clone();
    assert!(english.len() >= 16, "the code messages at least");
    for language in Language::ALL {
        let texts = by_language.get(&language).cloned().unwrap_or_default();
        for (key, variables) in &english {
            if !crate::file_languages(&key.0).contains(&language) {
                continue;
            }
            assert_eq!(
                texts.get(key),
                Some(variables),
                "{language}: {}/{} missing or with other variables",
                key.0,
                key.1
            );
        }
        for key in texts.keys() {
            assert!(
                crate::file_languages(&key.0).contains(&language),
                "{language}: {} is a file of other languages only",
                key.0
            );
            assert!(
                english.contains_key(key),
                "{language}: {key:?} is not in English"
            );
        }
    }
}

#[test]
fn messages_have_no_isolation_marks_and_fall_back_to_english() {
    let catalog = Catalog::get();
    for language in Language::ALL {
        let text = catalog.message(
            language,
            "sms-sign-in",
            &[
                ("code", "123456".into()),
                ("tenant", "Acme".into()),
                ("validity", "x".into()),
            ],
        );
        assert!(!text.contains(['\u{2068}', '\u{2069}']), "{text:?}");
        assert!(text.starts_with("123456 "), "{text}");
        assert!(text.contains("Acme"), "{text}");
    }
    assert_eq!(
        catalog.message(Language::Ka, "no-such-message", &[]),
        "no-such-message"
    );
}

#[test]
fn negotiation_reads_the_language_of_a_tag() {
    assert_eq!(negotiate("ka"), Some(Language::Ka));
    assert_eq!(negotiate("de-CH"), Some(Language::De));
    assert_eq!(negotiate("fr-CA"), Some(Language::Fr));
    assert_eq!(negotiate("es-419"), Some(Language::Es));
    assert_eq!(negotiate("EN-gb"), Some(Language::En));
    assert_eq!(negotiate("it"), None);
    assert_eq!(negotiate("de_CH"), None);
}

#[test]
fn validity_is_never_rounded_up_and_agrees_in_number() {
    assert_eq!(code::validity(Language::En, 1), "1 second");
    assert_eq!(code::validity(Language::En, 90), "90 seconds");
    assert_eq!(code::validity(Language::En, 599), "9 minutes");
    assert_eq!(code::validity(Language::De, 1), "1 Sekunde");
    assert_eq!(code::validity(Language::De, 600), "10 Minuten");
    assert_eq!(code::validity(Language::Fr, 119), "119 secondes");
    assert_eq!(code::validity(Language::Es, 3600), "60 minutos");
    assert_eq!(code::validity(Language::Ka, 600), "10 წუთი");
    assert_eq!(code::validity(Language::Ka, 45), "45 წამი");
}

fn text<'a>(
    language: Language,
    purpose: Purpose,
    name: &'a str,
    host: Option<&'a str>,
) -> CodeText<'a> {
    CodeText {
        language,
        purpose,
        sender_name: name,
        code: "12345678",
        valid_seconds: 600,
        web_host: host,
    }
}

#[test]
fn every_sms_starts_with_the_code_and_fits_one_segment() {
    let long_latin = "Bank of the Caucasus and Black Sea Region Customer Services Ltd.";
    let long_georgian = "საქართველოს ბანკი — მომხმარებელთა მომსახურების ცენტრი, თბილისი 1";
    assert_eq!(long_latin.chars().count(), 64);
    assert_eq!(long_georgian.chars().count(), 64);
    let host = "login.bankofgeorgia.ge";
    for language in Language::ALL {
        for purpose in [Purpose::SignIn, Purpose::VerifyChannel] {
            for name in ["Acme", long_latin, long_georgian] {
                for web_host in [None, Some(host)] {
                    let sms = code::sms(&text(language, purpose, name, web_host));
                    let length = measure(&sms);
                    assert_eq!(length.segments, 1, "{language} {name}: {sms} ({length:?})");
                    assert!(sms.starts_with("12345678 "), "the code, then words: {sms}");
                    if let Some(host) = web_host {
                        assert!(sms.ends_with(&format!("\n\n@{host} #12345678")), "{sms}");
                    } else {
                        assert!(!sms.contains('@'), "{sms}");
                    }
                }
            }
            // A short name is never cut, and the full text is kept.
            let sms = code::sms(&text(language, purpose, "Acme", None));
            assert!(sms.contains("Acme"), "{sms}");
        }
    }
}

#[test]
fn the_longest_host_still_fits_with_the_code_first() {
    let host = "a".repeat(twofold_domain::web_origin::MAX_HOST_CHARS - 3) + ".ge";
    for language in Language::ALL {
        for purpose in [Purpose::SignIn, Purpose::VerifyChannel] {
            let sms = code::sms(&text(language, purpose, &"ა".repeat(64), Some(&host)));
            assert_eq!(measure(&sms).segments, 1, "{sms}");
            assert!(sms.starts_with("12345678"), "{sms}");
            assert!(sms.ends_with(&format!("\n\n@{host} #12345678")), "{sms}");
        }
    }
}

#[test]
fn latin_languages_stay_gsm7_and_georgian_is_ucs2() {
    for language in [Language::En, Language::De, Language::Fr, Language::Es] {
        for purpose in [Purpose::SignIn, Purpose::VerifyChannel] {
            let sms = code::sms(&text(language, purpose, "Acme", Some("login.acme.com")));
            assert!(is_gsm7(&sms), "{language}: {sms}");
            assert!(sms.contains("Acme"), "{sms}");
        }
    }
    let sms = code::sms(&text(Language::Ka, Purpose::SignIn, "Acme", None));
    assert_eq!(measure(&sms).encoding, Encoding::Ucs2);
    assert_eq!(
        sms,
        "12345678 — Acme-ში შესვლის კოდი. ვადა: 10 წუთი. არავის გაუზიაროთ."
    );
}

#[test]
fn a_long_name_is_cut_before_the_warning_goes() {
    let name = "Bank of the Caucasus and Black Sea Region Customer Services Ltd.";
    let sms = code::sms(&text(
        Language::En,
        Purpose::SignIn,
        name,
        Some("login.example.com"),
    ));
    assert!(sms.contains("Do not share it."), "{sms}");
    let ka = code::sms(&text(Language::Ka, Purpose::SignIn, name, None));
    assert!(ka.contains("Bank of the"), "{ka}");
}

#[test]
fn emails_name_the_sender_escape_html_and_say_how_long() {
    for language in Language::ALL {
        for purpose in [Purpose::SignIn, Purpose::VerifyChannel] {
            let mail = code::email(&text(language, purpose, "Acme <Corp>", None));
            assert!(mail.subject.contains("Acme <Corp>"), "{}", mail.subject);
            assert!(
                mail.plain.contains("\n\n    12345678\n\n"),
                "{}",
                mail.plain
            );
            assert!(mail.plain.contains("Acme <Corp>"), "{}", mail.plain);
            assert!(mail.html.contains("Acme &lt;Corp&gt;"), "{}", mail.html);
            assert!(!mail.html.contains("<Corp>"), "{}", mail.html);
            let plain = mail.plain.replace('\n', " ");
            assert!(
                plain.contains(&code::validity(language, 600)),
                "{language}: {plain}"
            );
            assert!(
                mail.html
                    .contains(&format!("<html lang=\"{}\">", language.code())),
                "{}",
                mail.html
            );
        }
    }
    let ka = code::email(&text(Language::Ka, Purpose::SignIn, "Acme", None));
    assert_eq!(ka.subject, "Acme — თქვენი შესვლის კოდი");
    assert!(
        ka.plain.starts_with("თქვენი კოდი Acme-ში შესასვლელად:"),
        "{}",
        ka.plain
    );
}

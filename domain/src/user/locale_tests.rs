//! The user's language: recorded with the code a request sends, and only when it changes.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::channel::{Channel, Purpose};
use crate::locale::Locale;
use crate::secrets::SealedSecret;

fn add_phone(locale: Option<&str>) -> UserAction {
    UserAction::AddPhone {
        proof: None,
        phone: SealedSecret::from_encoded("sealed-phone".into()),
        calling_code: "995".into(),
        region: Some("GE".into()),
        masked: "+995 *** ** 34 56".into(),
        challenge: challenge("c0", t0()),
        locale: locale.map(|l| Locale::parse(l).unwrap()),
    }
}

fn changed(locale: &str, at: chrono::DateTime<chrono::Utc>) -> UserEvent {
    UserEvent::LocaleChanged {
        locale: locale.into(),
        at,
    }
}

#[tokio::test]
async fn a_locale_is_recorded_before_the_code_it_comes_with() {
    tf().given_no_previous_events()
        .when_async(cmd(t0(), add_phone(Some("ka-ge"))))
        .await
        .then_expect_events(vec![
            UserEvent::PhoneFactorAdded {
                replacing: false,
                phone: SealedSecret::from_encoded("sealed-phone".into()),
                calling_code: "995".into(),
                region: Some("GE".into()),
                masked: "+995 *** ** 34 56".into(),
                at: t0(),
            },
            changed("ka-GE", t0()),
            sent("c0", Channel::Sms, Purpose::VerifyChannel, t0()),
        ]);
}

#[tokio::test]
async fn the_same_locale_again_records_nothing_new() {
    let mut given = phone_user();
    given.insert(1, changed("de-CH", t0()));
    let later = t0() + Duration::minutes(5);
    tf().given(given.clone())
        .when_async(cmd(
            later,
            UserAction::SendCode {
                channel: None,
                challenge: challenge("s1", later),
                locale: Some(Locale::parse("de-ch").unwrap()),
            },
        ))
        .await
        .then_expect_events(vec![sent("s1", Channel::Sms, Purpose::SignIn, later)]);
    tf().given(given)
        .when_async(cmd(
            later,
            UserAction::SendCode {
                channel: None,
                challenge: challenge("s1", later),
                locale: Some(Locale::parse("fr").unwrap()),
            },
        ))
        .await
        .then_expect_events(vec![
            changed("fr", later),
            sent("s1", Channel::Sms, Purpose::SignIn, later),
        ]);
}

#[tokio::test]
async fn a_refused_send_changes_no_locale() {
    // Not enrolled: sendCode is refused, and the locale with it.
    tf().given_no_previous_events()
        .when_async(cmd(
            t0(),
            UserAction::SendCode {
                channel: Some(Channel::Sms),
                challenge: challenge("s1", t0()),
                locale: Some(Locale::parse("ka").unwrap()),
            },
        ))
        .await
        .then_expect_error(UserError::NotEnrolled);
}

#[test]
fn the_state_keeps_the_locale_through_a_reset_and_forgets_unknown_tags() {
    let mut events = phone_user();
    events.push(changed("ka", t0()));
    assert_eq!(
        state(events.clone()).locale().map(Locale::as_str),
        Some("ka")
    );
    events.push(UserEvent::TwoFactorReset {
        by: crate::ApiKeyId::parse("admin0001").unwrap(),
        reason: crate::Reason::parse("lost phone").unwrap(),
        at: t0(),
    });
    assert_eq!(
        state(events.clone()).locale().map(Locale::as_str),
        Some("ka")
    );
    events.push(changed("tlh", t0()));
    assert_eq!(state(events).locale(), None);
}

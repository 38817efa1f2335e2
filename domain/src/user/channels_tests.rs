//! Email and SMS: registering and confirming a destination, sending codes, delivery.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::channel::{Channel, Purpose};
use crate::secrets::SealedSecret;
use crate::Method;

#[tokio::test]
async fn adding_a_phone_registers_it_unverified_and_sends_a_verification_code() {
    tf().given_no_previous_events()
        .when_async(cmd(
            t0(),
            UserAction::AddPhone {
                proof: None,
                phone: SealedSecret::from_encoded("sealed-phone".into()),
                calling_code: "995".into(),
                region: Some("GE".into()),
                masked: "+995 *** ** 34 56".into(),
                challenge: challenge("c0", t0()),
                locale: None,
            },
        ))
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
            sent("c0", Channel::Sms, Purpose::VerifyChannel, t0()),
        ]);
}

#[tokio::test]
async fn confirming_the_first_channel_enables_2fa_with_recovery_codes() {
    let given = phone_user()[..2].to_vec();
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::ConfirmChannel {
                proof: None,
                challenge_id: "c0".into(),
                code: "code-of-c0".into(),
                recovery_codes: codes("r"),
            },
        ))
        .await
        .then_expect_events(phone_user()[2..].to_vec());
}

#[tokio::test]
async fn five_wrong_codes_end_a_challenge() {
    let mut given = phone_user()[..2].to_vec();
    for i in 1..=5 {
        given.push(UserEvent::VerificationFailed {
            method: Method::Sms,
            challenge_id: Some("c0".into()),
            consecutive_failures: i,
            at: t0(),
        });
    }
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::ConfirmChannel {
                proof: None,
                challenge_id: "c0".into(),
                code: "code-of-c0".into(),
                recovery_codes: codes("r"),
            },
        ))
        .await
        .then_expect_error(UserError::CodeExpired(
            "too many wrong codes for this challenge: request a new one",
        ));
}

#[tokio::test]
async fn a_resend_within_thirty_seconds_or_with_the_same_key_reuses_the_challenge() {
    let mut given = phone_user();
    given.push(sent("s1", Channel::Sms, Purpose::SignIn, t0()));
    tf().given(given.clone())
        .when_async(cmd(
            t0() + Duration::seconds(29),
            UserAction::SendCode {
                channel: None,
                challenge: challenge("s2", t0()),
                locale: None,
            },
        ))
        .await
        .then_expect_events(vec![]);
    let later = t0() + Duration::seconds(31);
    tf().given(given)
        .when_async(cmd(
            later,
            UserAction::SendCode {
                channel: Some(Channel::Sms),
                challenge: challenge("s2", later),
                locale: None,
            },
        ))
        .await
        .then_expect_events(vec![sent("s2", Channel::Sms, Purpose::SignIn, later)]);
}

#[tokio::test]
async fn at_most_five_codes_per_destination_in_ten_minutes() {
    let mut given = phone_user(); // c0 was sent at t0
    for i in 1..5 {
        given.push(sent(
            &format!("s{i}"),
            Channel::Sms,
            Purpose::SignIn,
            t0() + Duration::minutes(i),
        ));
    }
    let at = t0() + Duration::minutes(6);
    tf().given(given)
        .when_async(cmd(
            at,
            UserAction::SendCode {
                channel: None,
                challenge: challenge("s9", at),
                locale: None,
            },
        ))
        .await
        .then_expect_error(UserError::RateLimited {
            retry_after_seconds: 4 * 60,
        });
}

#[tokio::test]
async fn sending_needs_a_verified_channel_and_a_choice() {
    tf().given(phone_user())
        .when_async(cmd(
            t0(),
            UserAction::SendCode {
                channel: Some(Channel::Email),
                challenge: challenge("s1", t0()),
                locale: None,
            },
        ))
        .await
        .then_expect_error(UserError::MethodNotEnrolled(Method::Email));
    let mut totp_only = enrolled();
    totp_only.truncate(3);
    tf().given(totp_only)
        .when_async(cmd(
            t0(),
            UserAction::SendCode {
                channel: None,
                challenge: challenge("s1", t0()),
                locale: None,
            },
        ))
        .await
        .then_expect_error(UserError::NoPreferredChannel);
}

#[tokio::test]
async fn a_delivery_is_recorded_once() {
    let mut given = phone_user();
    given.push(sent("s1", Channel::Sms, Purpose::SignIn, t0()));
    let record = || {
        cmd(
            t0(),
            UserAction::RecordDelivery {
                challenge_id: "s1".into(),
                outcome: DeliveryOutcome::Delivered {
                    provider_message_id: Some("SM1".into()),
                },
            },
        )
    };
    tf().given(given.clone())
        .when_async(record())
        .await
        .then_expect_events(vec![UserEvent::CodeDelivered {
            challenge_id: "s1".into(),
            provider_message_id: Some("SM1".into()),
            at: t0(),
        }]);
    given.push(UserEvent::CodeDelivered {
        challenge_id: "s1".into(),
        provider_message_id: Some("SM1".into()),
        at: t0(),
    });
    tf().given(given)
        .when_async(record())
        .await
        .then_expect_events(vec![]);
}

fn keyed(id: &str, channel: Channel, key: &str, at: chrono::DateTime<chrono::Utc>) -> UserEvent {
    let UserEvent::CodeSent {
        challenge_id,
        channel,
        purpose,
        digits,
        expires_at,
        sent_to,
        at,
        ..
    } = sent(id, channel, Purpose::SignIn, at)
    else {
        unreachable!()
    };
    UserEvent::CodeSent {
        challenge_id,
        channel,
        purpose,
        digits,
        expires_at,
        sent_to,
        idempotency_key: Some(key.into()),
        at,
    }
}

/// The phone user with a verified email address too.
fn email_and_phone_user() -> Vec<UserEvent> {
    let mut events = phone_user();
    events.push(UserEvent::EmailFactorAdded {
        replacing: false,
        email: SealedSecret::from_encoded("sealed-email".into()),
        masked: "j***@example.com".into(),
        at: t0(),
    });
    events.push(sent("e0", Channel::Email, Purpose::VerifyChannel, t0()));
    events.push(UserEvent::ChannelVerified {
        channel: Channel::Email,
        challenge_id: "e0".into(),
        at: t0(),
    });
    events
}

fn reused(
    user: &User,
    channel: Channel,
    key: Option<&str>,
    at: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    user.reusable_challenge(channel, Purpose::SignIn, key, at)
        .map(|c| c.id.clone())
}

#[test]
fn a_resend_thirty_seconds_later_is_a_new_code() {
    let mut events = phone_user();
    events.push(sent("s1", Channel::Sms, Purpose::SignIn, t0()));
    let user = state(events);
    let after = |s| t0() + Duration::seconds(s);
    assert_eq!(
        reused(&user, Channel::Sms, None, after(29)),
        Some("s1".into())
    );
    assert_eq!(reused(&user, Channel::Sms, None, after(30)), None);
    // Another purpose or channel is never the same request.
    assert_eq!(
        user.reusable_challenge(Channel::Sms, Purpose::VerifyChannel, None, after(1)),
        None
    );
    assert_eq!(reused(&user, Channel::Email, None, after(1)), None);
}

#[test]
fn a_spent_code_is_never_handed_out_again() {
    let mut events = phone_user();
    events.push(sent("s1", Channel::Sms, Purpose::SignIn, t0()));
    let open = state(events.clone());
    assert_eq!(reused(&open, Channel::Sms, None, t0()), Some("s1".into()));
    let mut used = events.clone();
    used.push(UserEvent::CodeVerified {
        method: Method::Sms,
        totp_step: None,
        challenge_id: Some("s1".into()),
        at: t0(),
    });
    assert_eq!(reused(&state(used), Channel::Sms, None, t0()), None);
    let mut wrong = events;
    for i in 1..=ATTEMPTS_PER_CHALLENGE {
        wrong.push(UserEvent::VerificationFailed {
            method: Method::Sms,
            challenge_id: Some("s1".into()),
            consecutive_failures: i,
            at: t0(),
        });
        let expected = (i < ATTEMPTS_PER_CHALLENGE).then(|| "s1".to_owned());
        assert_eq!(
            reused(&state(wrong.clone()), Channel::Sms, None, t0()),
            expected,
            "{i}"
        );
    }
}

#[test]
fn the_same_idempotency_key_gets_the_same_code_until_it_expires() {
    let mut events = email_and_phone_user();
    events.push(keyed("s1", Channel::Sms, "k1", t0()));
    let user = state(events);
    let expires = t0() + Duration::minutes(10);
    let just_before = expires - Duration::seconds(1);
    assert_eq!(
        reused(&user, Channel::Sms, Some("k1"), just_before),
        Some("s1".into())
    );
    assert_eq!(reused(&user, Channel::Sms, Some("k1"), expires), None);
    // Another key, or the same key for another channel, is another request.
    assert_eq!(reused(&user, Channel::Sms, Some("k2"), just_before), None);
    assert_eq!(reused(&user, Channel::Email, Some("k1"), just_before), None);
}

#[test]
fn a_code_sent_to_a_replaced_number_goes_nowhere_and_is_not_reused() {
    let mut events = phone_user();
    events.push(sent("s1", Channel::Sms, Purpose::SignIn, t0()));
    let later = t0() + Duration::seconds(5);
    events.push(UserEvent::PhoneFactorAdded {
        replacing: true,
        phone: SealedSecret::from_encoded("new-phone".into()),
        calling_code: "995".into(),
        region: None,
        masked: "+995 *** ** 00 00".into(),
        at: later,
    });
    events.push(sent("c1", Channel::Sms, Purpose::VerifyChannel, later));
    events.push(UserEvent::ChannelVerified {
        channel: Channel::Sms,
        challenge_id: "c1".into(),
        at: later,
    });
    let user = state(events);
    let s1 = user.challenge("s1").unwrap();
    assert_eq!(user.destination_of(s1), None);
    assert_eq!(reused(&user, Channel::Sms, None, later), None);
}

#[tokio::test]
async fn only_a_verified_channel_can_be_preferred_and_choosing_it_again_records_nothing() {
    let choose = |channel| cmd(t0(), UserAction::ChoosePreferredChannel { channel });
    tf().given(phone_user())
        .when_async(choose(Channel::Email))
        .await
        .then_expect_error(UserError::MethodNotEnrolled(Method::Email));
    tf().given(phone_user())
        .when_async(choose(Channel::Sms))
        .await
        .then_expect_events(vec![]);
    tf().given(email_and_phone_user())
        .when_async(choose(Channel::Email))
        .await
        .then_expect_events(vec![UserEvent::PreferredChannelChosen {
            channel: Channel::Email,
            at: t0(),
        }]);
}

#[tokio::test]
async fn codes_older_than_ten_minutes_or_sent_by_the_other_channel_do_not_count() {
    let mut given = email_and_phone_user(); // c0 (SMS) and e0 (email) were sent at t0
    for i in 1..5 {
        given.push(sent(
            &format!("s{i}"),
            Channel::Sms,
            Purpose::SignIn,
            t0() + Duration::minutes(i),
        ));
        given.push(sent(
            &format!("e{i}"),
            Channel::Email,
            Purpose::SignIn,
            t0() + Duration::minutes(i),
        ));
    }
    // Ten minutes after c0: four SMS codes in the window, whatever was emailed.
    let at = t0() + Duration::minutes(10);
    tf().given(given)
        .when_async(cmd(
            at,
            UserAction::SendCode {
                channel: Some(Channel::Sms),
                challenge: challenge("s9", at),
                locale: None,
            },
        ))
        .await
        .then_expect_events(vec![sent("s9", Channel::Sms, Purpose::SignIn, at)]);
}

#[tokio::test]
async fn a_failed_delivery_is_recorded_and_shown() {
    let mut given = phone_user();
    given.push(sent("s1", Channel::Sms, Purpose::SignIn, t0()));
    let failed = UserEvent::CodeDeliveryFailed {
        challenge_id: "s1".into(),
        error: "unreachable".into(),
        attempts: 3,
        at: t0(),
    };
    tf().given(given.clone())
        .when_async(cmd(
            t0(),
            UserAction::RecordDelivery {
                challenge_id: "s1".into(),
                outcome: DeliveryOutcome::Failed {
                    error: "unreachable".into(),
                    attempts: 3,
                },
            },
        ))
        .await
        .then_expect_events(vec![failed.clone()]);
    let mut delivered = given.clone();
    delivered.push(UserEvent::CodeDelivered {
        challenge_id: "s1".into(),
        provider_message_id: None,
        at: t0(),
    });
    given.push(failed);
    let delivery = |events| state(events).challenge("s1").map(|c| c.delivery);
    assert_eq!(delivery(given), Some(DeliveryState::Failed));
    assert_eq!(delivery(delivered), Some(DeliveryState::Delivered));
    assert_eq!(delivery(phone_user()), None);
}

#[test]
fn only_the_latest_thirty_two_challenges_are_kept() {
    let mut events = phone_user();
    for i in 1..=32 {
        events.push(sent(
            &format!("s{i}"),
            Channel::Sms,
            Purpose::SignIn,
            t0() + Duration::hours(i),
        ));
    }
    let user = state(events);
    assert_eq!(user.challenges().len(), 32);
    assert_eq!(user.challenges()[0].id, "s1", "c0, the oldest, went");
}

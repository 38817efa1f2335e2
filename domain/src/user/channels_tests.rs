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

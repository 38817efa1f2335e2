//! Checking codes: TOTP time steps, recovery codes, sign-in codes with their challenge.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::channel::{Channel, Purpose};
use crate::secrets::SealedSecret;
use crate::Method;

#[tokio::test]
async fn a_time_step_is_never_accepted_twice_or_out_of_order() {
    for used in ["step:100", "step:99"] {
        tf().given(enrolled())
            .when_async(cmd(
                t0(),
                UserAction::Verify {
                    proof: proof(Method::Totp, used),
                    trust: None,
                },
            ))
            .await
            .then_expect_events(vec![UserEvent::VerificationFailed {
                challenge_id: None,
                method: Method::Totp,
                consecutive_failures: 1,
                at: t0(),
            }]);
    }
    tf().given(enrolled())
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: proof(Method::Totp, "step:101"),
                trust: None,
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::CodeVerified {
            challenge_id: None,
            method: Method::Totp,
            totp_step: Some(101),
            at: t0(),
        }]);
}

#[tokio::test]
async fn a_recovery_code_works_once_in_any_order_and_any_case() {
    tf().given(enrolled())
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: proof(Method::RecoveryCode, "R-7"),
                trust: None,
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::RecoveryCodeUsed {
            index: 7,
            remaining: 9,
            at: t0(),
        }]);
    let mut given = enrolled();
    given.push(UserEvent::RecoveryCodeUsed {
        index: 7,
        remaining: 9,
        at: t0(),
    });
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: proof(Method::RecoveryCode, "r7"),
                trust: None,
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::VerificationFailed {
            challenge_id: None,
            method: Method::RecoveryCode,
            consecutive_failures: 1,
            at: t0(),
        }]);
}

#[tokio::test]
async fn an_expired_or_used_code_is_refused() {
    let mut given = phone_user();
    given.push(sent("s1", Channel::Sms, Purpose::SignIn, t0()));
    tf().given(given.clone())
        .when_async(cmd(
            t0() + Duration::minutes(10),
            UserAction::Verify {
                proof: sms_proof("s1", "code-of-s1"),
                trust: None,
            },
        ))
        .await
        .then_expect_error(UserError::CodeExpired(
            "the code has expired: request a new one",
        ));
    given.push(UserEvent::CodeVerified {
        method: Method::Sms,
        totp_step: None,
        challenge_id: Some("s1".into()),
        at: t0(),
    });
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: sms_proof("s1", "code-of-s1"),
                trust: None,
            },
        ))
        .await
        .then_expect_error(UserError::CodeExpired(
            "this code was already used: request a new one",
        ));
}

#[tokio::test]
async fn a_sign_in_code_verifies_once_with_its_challenge() {
    let mut given = phone_user();
    given.push(sent("s1", Channel::Sms, Purpose::SignIn, t0()));
    tf().given(given.clone())
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: sms_proof("s1", "code-of-s1"),
                trust: None,
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::CodeVerified {
            method: Method::Sms,
            totp_step: None,
            challenge_id: Some("s1".into()),
            at: t0(),
        }]);
    // A verification challenge cannot be used to sign in, and the id is required.
    tf().given(given.clone())
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: sms_proof("c0", "code-of-c0"),
                trust: None,
            },
        ))
        .await
        .then_expect_error(UserError::ChallengeNotFound);
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: Proof {
                    method: Method::Sms,
                    code: "code-of-s1".into(),
                    challenge_id: None,
                },
                trust: None,
            },
        ))
        .await
        .then_expect_error(UserError::ChallengeRequired);
}

#[tokio::test]
async fn a_recovery_code_with_two_characters_swapped_is_wrong() {
    // "r0" is a saved code; "0r" differs from it in two places that cancel out byte for byte.
    tf().given(enrolled())
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: proof(Method::RecoveryCode, "0r"),
                trust: None,
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::VerificationFailed {
            challenge_id: None,
            method: Method::RecoveryCode,
            consecutive_failures: 1,
            at: t0(),
        }]);
}

#[tokio::test]
async fn a_sign_in_code_answers_only_for_the_channel_it_was_sent_by() {
    let mut given = phone_user();
    given.push(UserEvent::EmailFactorAdded {
        replacing: false,
        email: SealedSecret::from_encoded("sealed-email".into()),
        masked: "j***@example.com".into(),
        at: t0(),
    });
    given.push(sent("e0", Channel::Email, Purpose::VerifyChannel, t0()));
    given.push(UserEvent::ChannelVerified {
        channel: Channel::Email,
        challenge_id: "e0".into(),
        at: t0(),
    });
    let later = t0() + Duration::minutes(1);
    given.push(sent("e1", Channel::Email, Purpose::SignIn, later));
    let verify = |method| {
        cmd(
            later,
            UserAction::Verify {
                proof: Proof {
                    method,
                    code: "code-of-e1".into(),
                    challenge_id: Some("e1".into()),
                },
                trust: None,
            },
        )
    };
    tf().given(given.clone())
        .when_async(verify(Method::Sms))
        .await
        .then_expect_error(UserError::ChallengeNotFound);
    tf().given(given)
        .when_async(verify(Method::Email))
        .await
        .then_expect_events(vec![UserEvent::CodeVerified {
            method: Method::Email,
            totp_step: None,
            challenge_id: Some("e1".into()),
            at: later,
        }]);
}

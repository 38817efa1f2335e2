//! The proof a factor change needs: a current factor in the same call, checked like a sign-in,
//! and asked for before anything else is checked or counted.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::channel::{Channel, Purpose};
use crate::secrets::SealedSecret;
use crate::Method;

fn add_phone(proof: Option<Proof>, id: &str, at: chrono::DateTime<chrono::Utc>) -> UserCommand {
    cmd(
        at,
        UserAction::AddPhone {
            proof,
            phone: SealedSecret::from_encoded("new-phone".into()),
            calling_code: "995".into(),
            region: None,
            masked: "+995 *** ** 00 00".into(),
            challenge: challenge(id, at),
            locale: None,
        },
    )
}

#[tokio::test]
async fn adding_a_factor_to_an_enabled_account_needs_proof_in_the_same_call() {
    let later = t0() + Duration::minutes(1);
    // Right after a sign-in makes no difference any more: no proof, no change.
    tf().given(phone_user())
        .when_async(add_phone(None, "x1", later))
        .await
        .then_expect_error(UserError::ProofRequired);

    // A wrong proof is a recorded failure, counted toward the lockout, and nothing else.
    let events = tf()
        .given(phone_user())
        .when_async(add_phone(
            Some(proof(Method::RecoveryCode, "wrong")),
            "x1",
            later,
        ))
        .await
        .inspect_result()
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [UserEvent::VerificationFailed {
            method: Method::RecoveryCode,
            consecutive_failures: 1,
            ..
        }]
    ));

    // The right proof is used up with the change.
    let events = tf()
        .given(phone_user())
        .when_async(add_phone(
            Some(proof(Method::RecoveryCode, "r3")),
            "x1",
            later,
        ))
        .await
        .inspect_result()
        .unwrap();
    assert!(matches!(
        events[0],
        UserEvent::RecoveryCodeUsed { index: 3, .. }
    ));
    assert!(matches!(
        events[1],
        UserEvent::PhoneFactorAdded {
            replacing: true,
            ..
        }
    ));
}

#[tokio::test]
async fn a_totp_code_used_as_proof_is_a_used_time_step() {
    let mut given = enrolled();
    given.push(UserEvent::TotpEnrollmentStarted {
        secret: SealedSecret::from_encoded("new-secret".into()),
        algorithm: crate::TotpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        at: t0(),
    });
    let confirm = |proof_code: &str| {
        cmd(
            t0(),
            UserAction::ConfirmTotp {
                code: "step:200".into(),
                proof: Some(proof(Method::Totp, proof_code)),
                recovery_codes: codes("n"),
            },
        )
    };
    // Step 100 was accepted at enrollment: as proof it is a replay, so a failure.
    let events = tf()
        .given(given.clone())
        .when_async(confirm("step:100"))
        .await
        .inspect_result()
        .unwrap();
    assert!(matches!(
        events.as_slice(),
        [UserEvent::VerificationFailed { .. }]
    ));
    let events = tf()
        .given(given)
        .when_async(confirm("step:150"))
        .await
        .inspect_result()
        .unwrap();
    assert!(matches!(
        events[0],
        UserEvent::CodeVerified {
            totp_step: Some(150),
            ..
        }
    ));
    assert!(matches!(
        events[1],
        UserEvent::TotpEnabled { step: 200, .. }
    ));
    // Replacing TOTP keeps the recovery codes the user saved.
    assert!(!events
        .iter()
        .any(|e| matches!(e, UserEvent::RecoveryCodesGenerated { .. })));
}

#[tokio::test]
async fn a_wrong_new_code_is_a_failure_and_leaves_the_proof_unchecked() {
    let mut given = enrolled();
    given.push(UserEvent::TotpEnrollmentStarted {
        secret: SealedSecret::from_encoded("new-secret".into()),
        algorithm: crate::TotpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        at: t0(),
    });
    let events = tf()
        .given(given)
        .when_async(cmd(
            t0(),
            UserAction::ConfirmTotp {
                code: "wrong".into(),
                proof: Some(proof(Method::RecoveryCode, "r3")),
                recovery_codes: codes("n"),
            },
        ))
        .await
        .inspect_result()
        .unwrap();
    // A typo costs an attempt toward the lockout, not the recovery code the user proved with:
    // the proof was never checked, so it was never accepted (nothing to replay either).
    assert!(matches!(
        events.as_slice(),
        [UserEvent::VerificationFailed {
            method: Method::Totp,
            consecutive_failures: 1,
            ..
        }]
    ));
}

#[test]
fn a_proof_never_shows_its_code_in_debug() {
    let shown = format!("{:?}", proof(Method::Totp, "271828"));
    assert!(!shown.contains("271828"), "{shown}");
    assert!(shown.contains("Totp"));
}

#[tokio::test]
async fn a_change_missing_its_proof_is_refused_before_any_code_is_checked() {
    let mut given = enrolled();
    given.push(UserEvent::TotpEnrollmentStarted {
        secret: SealedSecret::from_encoded("new-secret".into()),
        algorithm: crate::TotpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        at: t0(),
    });
    // A wrong code without the proof costs nothing: the call was incomplete.
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::ConfirmTotp {
                code: "wrong".into(),
                proof: None,
                recovery_codes: codes("n"),
            },
        ))
        .await
        .then_expect_error(UserError::ProofRequired);
    let mut given = phone_user();
    given.push(UserEvent::PhoneFactorAdded {
        phone: SealedSecret::from_encoded("new-phone".into()),
        calling_code: "995".into(),
        region: None,
        masked: "+995 *** ** 00 00".into(),
        replacing: true,
        at: t0(),
    });
    given.push(sent("x1", Channel::Sms, Purpose::VerifyChannel, t0()));
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::ConfirmChannel {
                challenge_id: "x1".into(),
                code: "wrong".into(),
                recovery_codes: codes("n"),
                proof: None,
            },
        ))
        .await
        .then_expect_error(UserError::ProofRequired);
}

#[tokio::test]
async fn checking_a_proof_records_a_failure_and_nothing_else() {
    let check = |code: &str| {
        cmd(
            t0(),
            UserAction::CheckProof {
                proof: proof(Method::Totp, code),
            },
        )
    };
    tf().given(enrolled())
        .when_async(check("step:101"))
        .await
        .then_expect_events(vec![]);
    tf().given(enrolled())
        .when_async(check("step:100"))
        .await
        .then_expect_events(vec![UserEvent::VerificationFailed {
            method: Method::Totp,
            challenge_id: None,
            consecutive_failures: 1,
            at: t0(),
        }]);
    // Nothing to prove without a factor; nothing checked while locked out.
    tf().given(vec![started()])
        .when_async(check("step:1"))
        .await
        .then_expect_events(vec![]);
    let mut locked = enrolled();
    locked.extend(failures(10, Method::Totp));
    tf().given(locked)
        .when_async(check("step:101"))
        .await
        .then_expect_error(UserError::LockedOut(Lockout::new(
            t0() + Duration::minutes(5),
            false,
            t0(),
        )));
}

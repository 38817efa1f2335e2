//! Changing factors on an account that has 2FA: proof in the same call, replacements that keep
//! the old factor working until confirmed, trusted devices revoked, `removeFactor`.

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
async fn a_replaced_number_keeps_working_until_its_replacement_is_confirmed() {
    let mut events = phone_user();
    events.push(trusted("d1", t0(), 30));
    events.push(UserEvent::RecoveryCodeUsed {
        index: 3,
        remaining: 9,
        at: t0(),
    });
    events.push(UserEvent::PhoneFactorAdded {
        phone: SealedSecret::from_encoded("new-phone".into()),
        calling_code: "995".into(),
        region: None,
        masked: "+995 *** ** 00 00".into(),
        replacing: true,
        at: t0(),
    });
    events.push(sent("x1", Channel::Sms, Purpose::VerifyChannel, t0()));
    let user = state(events.clone());
    // Still enrolled with the old number, which sign-in codes still go to.
    assert!(user.enabled());
    assert_eq!(user.methods(), vec![Method::Sms, Method::RecoveryCode]);
    assert_eq!(
        user.contact(Channel::Sms).unwrap().sealed.as_encoded(),
        "sealed-phone"
    );
    assert_eq!(
        user.destination_of(user.challenge("x1").unwrap())
            .unwrap()
            .sealed
            .as_encoded(),
        "new-phone"
    );
    assert_eq!(user.preferred_channel(), Some(Channel::Sms));

    // Confirming the new number (with proof) swaps it in and revokes trusted devices.
    let confirmed = tf()
        .given(events.clone())
        .when_async(cmd(
            t0(),
            UserAction::ConfirmChannel {
                challenge_id: "x1".into(),
                code: "code-of-x1".into(),
                recovery_codes: codes("n"),
                proof: Some(proof(Method::RecoveryCode, "r4")),
            },
        ))
        .await
        .inspect_result()
        .unwrap();
    assert!(confirmed.iter().any(|e| matches!(
        e,
        UserEvent::DeviceTrustRevoked {
            reason: DeviceRevocation::FactorReplaced,
            ..
        }
    )));
    assert!(!confirmed
        .iter()
        .any(|e| matches!(e, UserEvent::RecoveryCodesGenerated { .. })));
    events.extend(confirmed);
    let user = state(events);
    let phone = user.contact(Channel::Sms).unwrap();
    assert_eq!(phone.sealed.as_encoded(), "new-phone");
    assert!(phone.verified);
    assert!(user.pending_contact(Channel::Sms).is_none());
    assert_eq!(user.trusted_devices(t0()).count(), 0);
}

#[tokio::test]
async fn an_old_replacing_event_still_replaces_at_once() {
    // Recorded before `replacing` existed: no field, so the old meaning.
    let old: UserEvent = serde_json::from_value(serde_json::json!({
        "PhoneFactorAdded": {
            "phone": "new-phone", "calling_code": "995", "region": null,
            "masked": "+995 *** ** 00 00", "at": t0(),
        }
    }))
    .unwrap();
    let mut events = phone_user();
    events.push(old);
    assert!(!state(events).enabled());
}

#[tokio::test]
async fn remove_factor_removes_one_and_refuses_the_last_under_an_enforcing_policy() {
    let mut given = enrolled();
    given.extend(phone_user());
    given.push(trusted("d1", t0(), 30));
    let remove = |method, enforced| {
        cmd(
            t0() + Duration::minutes(1),
            UserAction::RemoveFactor {
                method,
                proof: proof(Method::RecoveryCode, "r5"),
                policy_enforced: enforced,
            },
        )
    };
    let events = tf()
        .given(given.clone())
        .when_async(remove(Method::Sms, true))
        .await
        .inspect_result()
        .unwrap();
    assert!(matches!(events[0], UserEvent::RecoveryCodeUsed { .. }));
    assert!(matches!(
        events[1],
        UserEvent::DeviceTrustRevoked {
            reason: DeviceRevocation::FactorRemoved,
            ..
        }
    ));
    assert!(matches!(
        events[2],
        UserEvent::FactorRemoved {
            method: Method::Sms,
            ..
        }
    ));
    assert_eq!(events.len(), 3);
    let mut after = given.clone();
    after.extend(events);
    let user = state(after.clone());
    assert_eq!(user.methods(), vec![Method::Totp, Method::RecoveryCode]);
    assert_eq!(user.preferred_channel(), None);

    // TOTP is now the last factor.
    let totp_last = |enforced| {
        cmd(
            t0() + Duration::minutes(2),
            UserAction::RemoveFactor {
                method: Method::Totp,
                proof: proof(Method::RecoveryCode, "r6"),
                policy_enforced: enforced,
            },
        )
    };
    tf().given(after.clone())
        .when_async(totp_last(true))
        .await
        .then_expect_error(UserError::PolicyEnforced);
    let events = tf()
        .given(after.clone())
        .when_async(totp_last(false))
        .await
        .inspect_result()
        .unwrap();
    assert!(matches!(
        events.last(),
        Some(UserEvent::TwoFactorDisabled { .. })
    ));
    after.extend(events);
    assert!(!state(after).enabled());

    tf().given(given.clone())
        .when_async(remove(Method::RecoveryCode, false))
        .await
        .then_expect_error(UserError::RecoveryCodesNotAFactor);
    tf().given(enrolled())
        .when_async(remove(Method::Email, false))
        .await
        .then_expect_error(UserError::MethodNotEnrolled(Method::Email));
    let _ = started();
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
async fn regenerating_needs_a_current_factor_and_replaces_every_code() {
    tf().given(enrolled())
        .when_async(cmd(
            t0(),
            UserAction::RegenerateRecoveryCodes {
                proof: proof(Method::Totp, "step:101"),
                recovery_codes: codes("n"),
            },
        ))
        .await
        .then_expect_events(vec![
            UserEvent::CodeVerified {
                challenge_id: None,
                method: Method::Totp,
                totp_step: Some(101),
                at: t0(),
            },
            UserEvent::RecoveryCodesGenerated {
                hashes: codes("n"),
                at: t0(),
            },
        ]);
    tf().given(enrolled())
        .when_async(cmd(
            t0(),
            UserAction::RegenerateRecoveryCodes {
                proof: proof(Method::Totp, "step:50"),
                recovery_codes: codes("n"),
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

#[tokio::test]
async fn disabling_is_refused_while_the_policy_enforces_2fa() {
    tf().given(enrolled())
        .when_async(cmd(
            t0(),
            UserAction::Disable {
                proof: proof(Method::Totp, "step:101"),
                policy_enforced: true,
            },
        ))
        .await
        .then_expect_error(UserError::PolicyEnforced);
    tf().given(enrolled())
        .when_async(cmd(
            t0(),
            UserAction::Disable {
                proof: proof(Method::RecoveryCode, "r1"),
                policy_enforced: false,
            },
        ))
        .await
        .then_expect_events(vec![
            UserEvent::RecoveryCodeUsed {
                index: 1,
                remaining: 9,
                at: t0(),
            },
            UserEvent::TwoFactorDisabled {
                method: Method::RecoveryCode,
                at: t0(),
            },
        ]);
}

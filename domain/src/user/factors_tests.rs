//! Changing factors on an account that has 2FA: replacements that keep the old factor working
//! until confirmed, trusted devices revoked, `removeFactor`, new recovery codes, disabling.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::channel::{Channel, Purpose};
use crate::secrets::SealedSecret;
use crate::Method;

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

#[tokio::test]
async fn codes_sent_to_the_old_number_stop_working_when_the_new_one_is_confirmed() {
    let mut events = phone_user();
    let added = t0() + Duration::minutes(1);
    events.push(UserEvent::PhoneFactorAdded {
        phone: SealedSecret::from_encoded("new-phone".into()),
        calling_code: "995".into(),
        region: None,
        masked: "+995 *** ** 00 00".into(),
        replacing: true,
        at: added,
    });
    events.push(sent("x1", Channel::Sms, Purpose::VerifyChannel, added));
    // While the new number waits, a sign-in code still goes to the old one.
    let sign_in = added + Duration::minutes(1);
    events.push(sent("s1", Channel::Sms, Purpose::SignIn, sign_in));
    let confirmed = sign_in + Duration::minutes(1);
    events.push(UserEvent::ChannelVerified {
        channel: Channel::Sms,
        challenge_id: "x1".into(),
        at: confirmed,
    });
    tf().given(events)
        .when_async(cmd(
            confirmed,
            UserAction::Verify {
                proof: sms_proof("s1", "code-of-s1"),
                trust: None,
            },
        ))
        .await
        .then_expect_error(UserError::ChallengeNotFound);
}

#[tokio::test]
async fn a_code_sent_to_a_number_replaced_since_cannot_confirm_the_newer_one() {
    let mut events = phone_user();
    for (i, number) in ["first-new", "second-new"].into_iter().enumerate() {
        let at = t0() + Duration::minutes(i as i64 + 1);
        events.push(UserEvent::PhoneFactorAdded {
            phone: SealedSecret::from_encoded(number.into()),
            calling_code: "995".into(),
            region: None,
            masked: "+995 *** ** 00 00".into(),
            replacing: true,
            at,
        });
        events.push(sent(
            &format!("x{i}"),
            Channel::Sms,
            Purpose::VerifyChannel,
            at,
        ));
    }
    // x0 went to "first-new", which "second-new" replaced before anything was confirmed.
    tf().given(events)
        .when_async(cmd(
            t0() + Duration::minutes(3),
            UserAction::ConfirmChannel {
                challenge_id: "x0".into(),
                code: "code-of-x0".into(),
                recovery_codes: codes("n"),
                proof: Some(proof(Method::RecoveryCode, "r1")),
            },
        ))
        .await
        .then_expect_error(UserError::ChallengeNotFound);
}

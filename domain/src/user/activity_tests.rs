//! Which commits are sign-ins, what ends a lockout and who is in grace, checked against what the
//! aggregate really records and folds.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::channel::Channel;
use crate::tenant::KeyedHash;
use crate::Method;

/// The events a command records on `given`.
async fn commit(given: Vec<UserEvent>, action: UserAction) -> Vec<UserEvent> {
    tf().given(given)
        .when_async(cmd(t0(), action))
        .await
        .inspect_result()
        .unwrap()
}

fn is_sign_in(events: &[UserEvent]) -> bool {
    let types: Vec<String> = events
        .iter()
        .map(cqrs_es::DomainEvent::event_type)
        .collect();
    completes_sign_in(types.iter().map(String::as_str))
}

fn verify(method: Method, code: &str) -> UserAction {
    UserAction::Verify {
        proof: proof(method, code),
        trust: None,
    }
}

#[tokio::test]
async fn a_verify_that_passes_is_a_sign_in_whatever_the_method() {
    assert!(is_sign_in(
        &commit(enrolled(), verify(Method::Totp, "step:101")).await
    ));
    assert!(is_sign_in(
        &commit(enrolled(), verify(Method::RecoveryCode, "r4")).await
    ));
    // Trusting the device in the same call is still one sign-in.
    let trusting = UserAction::Verify {
        proof: proof(Method::Totp, "step:101"),
        trust: Some(NewTrustedDevice {
            id: "d1".into(),
            token_hash: KeyedHash::from_hex("t1".into()),
            label: None,
            lifetime_days: 30,
        }),
    };
    let events = commit(enrolled(), trusting).await;
    assert!(events
        .iter()
        .any(|e| matches!(e, UserEvent::DeviceTrusted { .. })));
    assert!(is_sign_in(&events));
    // A passkey records the credential it used beside its CodeVerified: one sign-in.
    let events = super::webauthn_fixtures::tf()
        .given(super::webauthn_fixtures::signing_in())
        .when_async(cmd(
            t0(),
            super::webauthn_fixtures::assertion("a1", "sig:R1:6"),
        ))
        .await
        .inspect_result()
        .unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e, UserEvent::WebAuthnCredentialUsed { .. })));
    assert!(is_sign_in(&events));
}

#[tokio::test]
async fn a_wrong_code_is_no_sign_in_but_a_failed_code() {
    let events = commit(enrolled(), verify(Method::Totp, "step:100")).await;
    assert!(!is_sign_in(&events));
    assert!(events
        .iter()
        .any(|e| is_failed_code(&cqrs_es::DomainEvent::event_type(e))));
}

#[tokio::test]
async fn a_code_that_proves_a_change_is_no_sign_in() {
    let regenerate = UserAction::RegenerateRecoveryCodes {
        proof: proof(Method::Totp, "step:101"),
        recovery_codes: codes("n"),
    };
    let disable = UserAction::Disable {
        proof: proof(Method::RecoveryCode, "r1"),
        policy_enforced: false,
    };
    let remove = UserAction::RemoveFactor {
        method: Method::Totp,
        proof: proof(Method::Totp, "step:101"),
        policy_enforced: false,
    };
    let add_email = UserAction::AddEmail {
        proof: Some(proof(Method::Totp, "step:101")),
        email: crate::secrets::SealedSecret::from_encoded("sealed-mail".into()),
        masked: "a***@example.com".into(),
        challenge: challenge("e1", t0()),
        locale: None,
    };
    for action in [regenerate, disable, remove, add_email] {
        let events = commit(enrolled(), action).await;
        assert!(
            events.iter().any(|e| matches!(
                e,
                UserEvent::CodeVerified { .. } | UserEvent::RecoveryCodeUsed { .. }
            )),
            "{events:?}"
        );
        assert!(!is_sign_in(&events), "{events:?}");
    }
}

#[test]
fn enrollment_and_confirmation_are_no_sign_ins() {
    for commit in [
        vec!["TotpEnabled", "RecoveryCodesGenerated"],
        vec!["ChannelVerified"],
        vec!["WebAuthnCredentialRegistered"],
        vec!["WebAuthnCredentialUsed"],
        vec![],
    ] {
        assert!(!completes_sign_in(commit.iter().copied()), "{commit:?}");
    }
}

#[test]
fn the_lockout_change_of_an_event_is_what_the_aggregate_folds() {
    let at = t0();
    let locked = || {
        let mut events = enrolled();
        events.extend(failures(10, Method::Totp));
        events
    };
    let until = state(locked()).locked_until(at).expect("ten failures lock");
    assert!(matches!(
        locked().last().unwrap().lockout_change(),
        Some(LockoutChange::Until(u)) if u == until
    ));
    let admin = crate::ApiKeyId::parse("adminkey").unwrap();
    let reason = crate::Reason::parse("lost phone").unwrap();
    let candidates = vec![
        UserEvent::LockoutCleared {
            by: admin.clone(),
            reason: reason.clone(),
            at,
        },
        UserEvent::TwoFactorReset {
            by: admin,
            reason,
            at,
        },
        UserEvent::CodeVerified {
            method: Method::Totp,
            totp_step: Some(500),
            challenge_id: None,
            at,
        },
        UserEvent::RecoveryCodeUsed {
            index: 0,
            remaining: 9,
            at,
        },
        UserEvent::ChannelVerified {
            channel: Channel::Email,
            challenge_id: "none".into(),
            at,
        },
        UserEvent::VerificationFailed {
            method: Method::Totp,
            challenge_id: None,
            consecutive_failures: 11,
            at,
        },
        UserEvent::TwoFactorDisabled {
            method: Method::Totp,
            at,
        },
        UserEvent::PreferredChannelChosen {
            channel: Channel::Sms,
            at,
        },
    ];
    for event in candidates {
        let mut events = locked();
        events.push(event.clone());
        let still_locked = state(events).locked_until(at).is_some();
        assert_eq!(
            event.lockout_change() == Some(LockoutChange::Ended),
            !still_locked,
            "{event:?}"
        );
    }
}

#[test]
fn the_grace_cohort_agrees_with_each_users_grace_end() {
    let now = t0();
    assert_eq!(grace_cohort(None, 7, now), GraceCohort::Nobody);
    for since_days_ago in [0i64, 3, 6, 7, 8, 30] {
        let since = now - Duration::days(since_days_ago);
        let cohort = grace_cohort(Some(since), 7, now);
        for seen_days_ago in [-1i64, 0, 1, 6, 7, 8, 40] {
            for wiggle in [
                Duration::zero(),
                Duration::seconds(1),
                -Duration::seconds(1),
            ] {
                let first_seen = now - Duration::days(seen_days_ago) + wiggle;
                let in_grace =
                    grace_ends_at(Some(since), 7, first_seen).is_some_and(|end| end > now);
                let counted = match cohort {
                    GraceCohort::Nobody => false,
                    GraceCohort::Everyone => true,
                    GraceCohort::FirstSeenAfter(bound) => first_seen > bound,
                };
                assert_eq!(counted, in_grace, "since {since}, first seen {first_seen}");
            }
        }
    }
}

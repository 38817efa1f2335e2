use twofold_domain::user::UserEvent;
use twofold_domain::Method;

use super::{check, factor, remaining_attempts};
use crate::testing::{app, Harness};
use crate::ServiceError;

#[tokio::test]
async fn a_recovery_code_signs_in_once() {
    let h = Harness::new();
    let (_, codes) = h.enroll_totp("alice").await;

    let first = h
        .users
        .verify(
            &app(),
            "alice",
            check(factor(Method::RecoveryCode, &codes.0[0])),
        )
        .await
        .unwrap();
    assert_eq!(first.recovery_codes_remaining, 9);

    let again = h
        .users
        .verify(
            &app(),
            "alice",
            check(factor(Method::RecoveryCode, &codes.0[0])),
        )
        .await;
    assert_eq!(remaining_attempts(again), 9);

    // Typed without dashes and in capitals, another code of the set still works.
    let typed = codes.0[1].replace('-', "").to_uppercase();
    let next = h
        .users
        .verify(&app(), "alice", check(factor(Method::RecoveryCode, &typed)))
        .await
        .unwrap();
    assert_eq!(next.recovery_codes_remaining, 8);
}

#[tokio::test]
async fn new_recovery_codes_replace_the_old_ones() {
    let h = Harness::new();
    let (secret, old) = h.enroll_totp("alice").await;

    let new = h
        .users
        .regenerate_recovery_codes(&app(), "alice", &factor(Method::Totp, &h.app_code(&secret)))
        .await
        .unwrap();

    assert_eq!(new.0.len(), 10);
    let stale = h
        .users
        .verify(
            &app(),
            "alice",
            check(factor(Method::RecoveryCode, &old.0[0])),
        )
        .await;
    assert_eq!(remaining_attempts(stale), 9);
    h.users
        .verify(
            &app(),
            "alice",
            check(factor(Method::RecoveryCode, &new.0[0])),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn adding_a_factor_to_a_protected_account_needs_a_current_one() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("alice").await;

    let unproven = h
        .users
        .add_email(&app(), "alice", "attacker@example.com", None, None)
        .await;
    assert!(
        matches!(unproven, Err(ServiceError::PolicyViolation(_))),
        "{unproven:?}"
    );
    let wrong = h
        .users
        .add_email(
            &app(),
            "alice",
            "attacker@example.com",
            Some(&factor(Method::Totp, "123456")),
            None,
        )
        .await;
    assert_eq!(remaining_attempts(wrong), 9);
    let sent = |events: &[UserEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, UserEvent::CodeSent { .. }))
            .count()
    };
    assert_eq!(sent(&h.events("alice").await), 0, "no code went out");

    let challenge = h
        .users
        .add_email(
            &app(),
            "alice",
            "alice@example.com",
            Some(&factor(Method::Totp, &h.app_code(&secret))),
            None,
        )
        .await
        .unwrap();
    assert_eq!(sent(&h.events("alice").await), 1);
    assert!(challenge.sent_to.ends_with("@example.com"));
}

#[tokio::test]
async fn turning_two_factor_off_needs_a_current_code_and_is_refused_where_enforced() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("alice").await;

    let wrong = h
        .users
        .disable(&app(), "alice", &factor(Method::Totp, "123456"))
        .await;
    assert_eq!(remaining_attempts(wrong), 9);

    h.set_policy(|p| p.enforce_two_factor = true);
    let enforced = h
        .users
        .disable(&app(), "alice", &factor(Method::Totp, &h.app_code(&secret)))
        .await;
    assert!(
        matches!(enforced, Err(ServiceError::PolicyViolation(_))),
        "{enforced:?}"
    );

    h.set_policy(|_| {});
    let status = h
        .users
        .disable(&app(), "alice", &factor(Method::Totp, &h.app_code(&secret)))
        .await
        .unwrap();
    assert!(!status.enabled);
    assert!(status.methods.is_empty());
}

#[tokio::test]
async fn removing_the_app_leaves_the_other_factor_in_place() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("alice").await;
    let challenge = h
        .users
        .add_email(
            &app(),
            "alice",
            "alice@example.com",
            Some(&factor(Method::Totp, &h.app_code(&secret))),
            None,
        )
        .await
        .unwrap();
    h.next_step();
    let code = h.code_sent("alice", &challenge.id).await;
    h.users
        .confirm_channel(
            &app(),
            "alice",
            &challenge.id,
            &code,
            Some(&factor(Method::Totp, &h.app_code(&secret))),
        )
        .await
        .unwrap();
    h.next_step();

    let status = h
        .users
        .remove_factor(
            &app(),
            "alice",
            Method::Totp,
            &factor(Method::Totp, &h.app_code(&secret)),
        )
        .await
        .unwrap();

    assert!(status.enabled);
    assert!(!status.methods.contains(&Method::Totp));
    assert!(status.methods.contains(&Method::Email));
}

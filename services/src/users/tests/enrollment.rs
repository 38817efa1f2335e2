use twofold_domain::user::UserEvent;
use twofold_domain::Method;

use super::{remaining_attempts, verify_totp};
use crate::testing::{app, Harness};

#[tokio::test]
async fn an_app_is_enrolled_by_typing_its_code_and_ten_recovery_codes_come_with_it() {
    let h = Harness::new();
    let enrollment = h
        .users
        .start_totp_enrollment(&app(), "alice", Some("alice@acme"))
        .await
        .unwrap();
    assert_eq!(enrollment.params.digits, 6);
    let status = h.users.status(app().tenant(), "alice").await.unwrap();
    assert!(status.is_some_and(|s| s.totp_pending && !s.enabled));

    let secret = enrollment.provisioning.secret_base32;
    let codes = h
        .users
        .confirm_totp_enrollment(&app(), "alice", &h.app_code(&secret), None)
        .await
        .unwrap();

    assert_eq!(codes.0.len(), 10);
    let mut distinct = codes.0.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);
    let status = h
        .users
        .status(app().tenant(), "alice")
        .await
        .unwrap()
        .unwrap();
    assert!(status.enabled && !status.totp_pending);
    assert_eq!(status.methods, vec![Method::Totp, Method::RecoveryCode]);
    assert_eq!(status.recovery_codes_remaining, 10);
}

#[tokio::test]
async fn a_wrong_code_does_not_activate_the_app() {
    let h = Harness::new();
    let secret = h
        .users
        .start_totp_enrollment(&app(), "alice", None)
        .await
        .unwrap()
        .provisioning
        .secret_base32;
    let wrong = if h.app_code(&secret) == "000000" {
        "111111"
    } else {
        "000000"
    };

    let refused = h
        .users
        .confirm_totp_enrollment(&app(), "alice", wrong, None)
        .await;

    assert_eq!(remaining_attempts(refused), 9);
    let status = h
        .users
        .status(app().tenant(), "alice")
        .await
        .unwrap()
        .unwrap();
    assert!(!status.enabled && status.totp_pending);
}

#[tokio::test]
async fn a_totp_code_is_accepted_once_even_the_one_that_confirmed_the_app() {
    let h = Harness::new();
    let secret = h
        .users
        .start_totp_enrollment(&app(), "alice", None)
        .await
        .unwrap()
        .provisioning
        .secret_base32;
    let first = h.app_code(&secret);
    h.users
        .confirm_totp_enrollment(&app(), "alice", &first, None)
        .await
        .unwrap();

    // Someone who saw the code typed at enrollment cannot sign in with it.
    assert_eq!(
        remaining_attempts(verify_totp(&h, "alice", &first).await),
        9
    );

    h.next_step();
    let code = h.app_code(&secret);
    verify_totp(&h, "alice", &code).await.unwrap();
    // Replayed within its step, the same code is refused and counts as a failure.
    assert_eq!(remaining_attempts(verify_totp(&h, "alice", &code).await), 9);

    h.next_step();
    verify_totp(&h, "alice", &h.app_code(&secret))
        .await
        .unwrap();
    let verified = h
        .events("alice")
        .await
        .into_iter()
        .filter(|e| matches!(e, UserEvent::CodeVerified { .. }))
        .count();
    assert_eq!(verified, 2);
}

#[tokio::test]
async fn an_app_cannot_be_enrolled_where_the_policy_forbids_it() {
    let h = Harness::new();
    h.set_policy(|p| {
        p.allowed_methods.remove(&Method::Totp);
    });

    let refused = h.users.start_totp_enrollment(&app(), "alice", None).await;

    assert!(
        matches!(refused, Err(crate::ServiceError::PolicyViolation(_))),
        "{refused:?}"
    );
    assert!(h.events("alice").await.is_empty());
}

// A document may select the pictures under many aliases: each is drawn once, when first asked
// for, and not at all when nobody asks.
#[tokio::test]
async fn qr_codes_are_drawn_only_when_asked_and_once_per_format() {
    use std::sync::atomic::Ordering;
    let h = Harness::new();
    let enrollment = h
        .users
        .start_totp_enrollment(&app(), "alice", None)
        .await
        .unwrap();
    assert_eq!(h.totp.1.load(Ordering::SeqCst), 0);
    let uri = enrollment.provisioning.uri.clone();
    for _ in 0..20 {
        assert_eq!(enrollment.pictures.png().unwrap(), format!("png of {uri}"));
        assert_eq!(
            enrollment.pictures.clone().svg().unwrap(),
            format!("svg of {uri}")
        );
    }
    assert_eq!(h.totp.1.load(Ordering::SeqCst), 2);
}

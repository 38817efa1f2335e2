use chrono::Duration;
use twofold_domain::user::SignInReason;
use twofold_domain::Method;

use super::{factor, remaining_attempts, verify_totp};
use crate::testing::{app, Harness};
use crate::users::VerifyInput;
use crate::ServiceError;

/// A six-digit code that is not the one given.
fn other_than(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[tokio::test]
async fn ten_wrong_codes_lock_the_user_out_until_the_lockout_ends() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("alice").await;
    let wrong = other_than(&h.app_code(&secret));

    for left in (1..=9).rev() {
        assert_eq!(
            remaining_attempts(verify_totp(&h, "alice", &wrong).await),
            left
        );
    }
    let tenth = verify_totp(&h, "alice", &wrong).await;
    assert!(
        matches!(
            tenth,
            Err(ServiceError::LockedOut {
                retry_after_seconds: 300,
                ..
            })
        ),
        "{tenth:?}"
    );
    // Locked out, even the right code is refused: guessing cannot continue.
    let right = verify_totp(&h, "alice", &h.app_code(&secret)).await;
    assert!(
        matches!(right, Err(ServiceError::LockedOut { .. })),
        "{right:?}"
    );

    h.clock.advance(Duration::minutes(5));
    verify_totp(&h, "alice", &h.app_code(&secret))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_success_starts_the_count_of_wrong_codes_afresh() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("alice").await;
    let wrong = other_than(&h.app_code(&secret));
    for _ in 0..9 {
        verify_totp(&h, "alice", &wrong).await.unwrap_err();
    }

    verify_totp(&h, "alice", &h.app_code(&secret))
        .await
        .unwrap();

    assert_eq!(
        remaining_attempts(verify_totp(&h, "alice", &wrong).await),
        9
    );
}

#[tokio::test]
async fn a_trusted_device_skips_the_second_factor_for_its_user_only() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("alice").await;
    h.enroll_totp("carol").await;
    let asked = h
        .users
        .sign_in_requirement(&app(), "alice", None, false)
        .await
        .unwrap();
    assert!(asked.required);
    assert_eq!(asked.reason, SignInReason::Enrolled);

    let verified = h
        .users
        .verify(
            &app(),
            "alice",
            VerifyInput {
                factor: factor(Method::Totp, &h.app_code(&secret)),
                trust_device: true,
                device_label: Some("Alice's laptop".into()),
            },
        )
        .await
        .unwrap();
    let token = verified.device_token.expect("a device token, shown once");
    assert!(token.starts_with("tfd_"));

    let trusted = h
        .users
        .sign_in_requirement(&app(), "alice", Some(&token), false)
        .await
        .unwrap();
    assert!(!trusted.required);
    assert_eq!(trusted.reason, SignInReason::TrustedDevice);
    let status = h
        .users
        .status(app().tenant(), "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        trusted.trusted_device,
        Some(status.trusted_devices[0].id.clone())
    );
    assert_eq!(
        status.trusted_devices[0].label.as_deref(),
        Some("Alice's laptop")
    );

    // Alice's token on Carol's sign-in is no reason to skip Carol's factor.
    let elsewhere = h
        .users
        .sign_in_requirement(&app(), "carol", Some(&token), false)
        .await
        .unwrap();
    assert!(elsewhere.required && elsewhere.device_token_rejected);
}

#[tokio::test]
async fn a_revoked_device_needs_the_second_factor_again() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("alice").await;
    let token = h
        .users
        .verify(
            &app(),
            "alice",
            VerifyInput {
                factor: factor(Method::Totp, &h.app_code(&secret)),
                trust_device: true,
                device_label: None,
            },
        )
        .await
        .unwrap()
        .device_token
        .unwrap();
    let status = h
        .users
        .status(app().tenant(), "alice")
        .await
        .unwrap()
        .unwrap();

    h.users
        .revoke_trusted_device(&app(), "alice", &status.trusted_devices[0].id, None)
        .await
        .unwrap();

    let asked = h
        .users
        .sign_in_requirement(&app(), "alice", Some(&token), false)
        .await
        .unwrap();
    assert!(asked.required && asked.device_token_rejected);
}

#[tokio::test]
async fn no_device_is_trusted_where_the_policy_turns_trust_off() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("alice").await;
    h.set_policy(|p| p.trusted_device_days = 0);

    let refused = h
        .users
        .verify(
            &app(),
            "alice",
            VerifyInput {
                factor: factor(Method::Totp, &h.app_code(&secret)),
                trust_device: true,
                device_label: None,
            },
        )
        .await;

    assert!(
        matches!(refused, Err(ServiceError::PolicyViolation(_))),
        "{refused:?}"
    );
}

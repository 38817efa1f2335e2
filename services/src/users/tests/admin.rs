use twofold_domain::user::UserEvent;
use twofold_domain::Method;

use super::{check, factor, remaining_attempts, verify_totp};
use crate::testing::{admin, app, Harness};
use crate::users::VerifyInput;
use crate::ServiceError;

#[tokio::test]
async fn an_admin_reset_removes_every_factor_and_records_who_did_it_and_why() {
    let h = Harness::new();
    let (secret, codes) = h.enroll_totp("alice").await;
    h.users
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
        .unwrap();

    let status = h
        .users
        .reset(
            &admin(),
            "alice",
            "lost her phone, identity checked by ticket 4711",
        )
        .await
        .unwrap();

    assert!(!status.enabled);
    assert!(status.methods.is_empty());
    assert_eq!(status.recovery_codes_remaining, 0);
    assert!(status.trusted_devices.is_empty());
    let recovery = h
        .users
        .verify(
            &app(),
            "alice",
            check(factor(Method::RecoveryCode, &codes.0[1])),
        )
        .await;
    assert!(recovery.is_err(), "{recovery:?}");

    let envelopes = h.envelopes("alice").await;
    let reset = envelopes
        .iter()
        .find(|e| matches!(e.payload, UserEvent::TwoFactorReset { .. }))
        .expect("the reset is recorded");
    let UserEvent::TwoFactorReset { by, reason, .. } = &reset.payload else {
        unreachable!()
    };
    assert_eq!(by, &admin().key.key_id);
    assert_eq!(
        reason.to_string(),
        "lost her phone, identity checked by ticket 4711"
    );
    assert_eq!(reset.metadata["request_id"], "req-admin");
    assert_eq!(reset.metadata["tenant_id"], "acme");
    assert_eq!(
        reset.metadata["actor"],
        r#"{"keyId":"adminkey","role":"ADMIN"}"#
    );
}

#[tokio::test]
async fn a_reset_needs_a_reason() {
    let h = Harness::new();
    h.enroll_totp("alice").await;

    let refused = h.users.reset(&admin(), "alice", "").await;

    assert!(
        matches!(refused, Err(ServiceError::InvalidInput(_))),
        "{refused:?}"
    );
    let status = h
        .users
        .status(app().tenant(), "alice")
        .await
        .unwrap()
        .unwrap();
    assert!(status.enabled);
}

#[tokio::test]
async fn an_admin_ends_a_lockout_early() {
    let h = Harness::new();
    let (secret, _) = h.enroll_totp("alice").await;
    let right = h.app_code(&secret);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    for _ in 0..10 {
        verify_totp(&h, "alice", &wrong).await.unwrap_err();
    }
    let locked = h
        .users
        .status(app().tenant(), "alice")
        .await
        .unwrap()
        .unwrap();
    assert!(locked.locked_until.is_some());

    let status = h
        .users
        .clear_lockout(&admin(), "alice", "confirmed by phone")
        .await
        .unwrap();

    assert!(status.locked_until.is_none());
    verify_totp(&h, "alice", &right).await.unwrap();
    assert_eq!(
        remaining_attempts(verify_totp(&h, "alice", &wrong).await),
        9
    );
}

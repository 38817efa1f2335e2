//! Given/when/then tests of the user aggregate. The services double maps code "step:N" to time
//! step N and hashes recovery code "c" to "h-c": the crypto is tested in infra, the decisions here.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::secrets::{SealedSecret, TotpParams};
use crate::tenant::KeyedHash;
use crate::{ApiKeyId, Method, Reason, TenantId, TotpAlgorithm, UserId};

struct Codes;

#[async_trait]
impl UserServices for Codes {
    async fn totp_step(
        &self,
        _user: &UserRef,
        secret: &SealedSecret,
        _params: &TotpParams,
        code: &str,
        _at: DateTime<Utc>,
    ) -> Result<Option<u64>, ServicesError> {
        if secret.as_encoded() == "broken" {
            return Err(ServicesError("data key unavailable".into()));
        }
        Ok(code.strip_prefix("step:").and_then(|s| s.parse().ok()))
    }

    fn recovery_code_hash(&self, _user: &UserRef, normalized_code: &str) -> KeyedHash {
        KeyedHash::from_hex(format!("h-{normalized_code}"))
    }
}

fn tf() -> TestFramework<User> {
    TestFramework::with(Arc::new(Codes) as Arc<dyn UserServices>)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn cmd(at: DateTime<Utc>, action: UserAction) -> UserCommand {
    UserCommand {
        user: UserRef {
            tenant: TenantId::parse("acme").unwrap(),
            user: UserId::parse("alice").unwrap(),
        },
        at,
        action,
    }
}

fn codes(prefix: &str) -> Vec<KeyedHash> {
    (0..10)
        .map(|i| KeyedHash::from_hex(format!("h-{prefix}{i}")))
        .collect()
}

fn proof(method: Method, code: &str) -> Proof {
    Proof {
        method,
        code: code.into(),
    }
}

fn started() -> UserEvent {
    UserEvent::TotpEnrollmentStarted {
        secret: SealedSecret::from_encoded("sealed".into()),
        algorithm: TotpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        label: "alice".into(),
        at: t0(),
    }
}

/// An enrolled user whose last accepted step is 100, with recovery codes r0..r9.
fn enrolled() -> Vec<UserEvent> {
    vec![
        started(),
        UserEvent::TotpEnabled {
            step: 100,
            at: t0(),
        },
        UserEvent::RecoveryCodesGenerated {
            hashes: codes("r"),
            at: t0(),
        },
    ]
}

fn failures(n: u32, method: Method) -> Vec<UserEvent> {
    let mut user = User::default();
    for e in enrolled() {
        cqrs_es::Aggregate::apply(&mut user, e);
    }
    let mut events = Vec::new();
    for _ in 0..n {
        for e in user.failure(method, t0()) {
            cqrs_es::Aggregate::apply(&mut user, e.clone());
            events.push(e);
        }
    }
    events
}

#[tokio::test]
async fn confirming_enables_totp_with_recovery_codes() {
    tf().given(vec![started()])
        .when_async(cmd(
            t0(),
            UserAction::ConfirmTotp {
                code: "step:7".into(),
                recovery_codes: codes("r"),
            },
        ))
        .await
        .then_expect_events(vec![
            UserEvent::TotpEnabled { step: 7, at: t0() },
            UserEvent::RecoveryCodesGenerated {
                hashes: codes("r"),
                at: t0(),
            },
        ]);
}

#[tokio::test]
async fn a_wrong_confirmation_code_is_a_recorded_failure() {
    tf().given(vec![started()])
        .when_async(cmd(
            t0(),
            UserAction::ConfirmTotp {
                code: "nope".into(),
                recovery_codes: codes("r"),
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::VerificationFailed {
            method: Method::Totp,
            consecutive_failures: 1,
            at: t0(),
        }]);
}

#[tokio::test]
async fn nothing_to_confirm_without_an_enrollment() {
    tf().given_no_previous_events()
        .when_async(cmd(
            t0(),
            UserAction::ConfirmTotp {
                code: "step:7".into(),
                recovery_codes: codes("r"),
            },
        ))
        .await
        .then_expect_error(UserError::NoPendingEnrollment);
}

#[tokio::test]
async fn a_pending_enrollment_is_not_a_factor() {
    tf().given(vec![started()])
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: proof(Method::Totp, "step:7"),
            },
        ))
        .await
        .then_expect_error(UserError::NotEnrolled);
}

#[tokio::test]
async fn a_time_step_is_never_accepted_twice_or_out_of_order() {
    for used in ["step:100", "step:99"] {
        tf().given(enrolled())
            .when_async(cmd(
                t0(),
                UserAction::Verify {
                    proof: proof(Method::Totp, used),
                },
            ))
            .await
            .then_expect_events(vec![UserEvent::VerificationFailed {
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
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::CodeVerified {
            method: Method::Totp,
            totp_step: Some(101),
            at: t0(),
        }]);
}

#[tokio::test]
async fn the_tenth_failure_locks_for_five_minutes() {
    let mut given = enrolled();
    given.extend(failures(9, Method::Totp));
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: proof(Method::RecoveryCode, "wrong"),
            },
        ))
        .await
        .then_expect_events(vec![
            UserEvent::VerificationFailed {
                method: Method::RecoveryCode,
                consecutive_failures: 10,
                at: t0(),
            },
            UserEvent::UserLockedOut {
                until: t0() + Duration::minutes(5),
                lockout: 1,
                admin_required: false,
                at: t0(),
            },
        ]);
}

#[tokio::test]
async fn while_locked_no_code_is_checked_not_even_a_valid_one() {
    let mut given = enrolled();
    given.extend(failures(10, Method::Totp));
    tf().given(given.clone())
        .when_async(cmd(
            t0() + Duration::minutes(4),
            UserAction::Verify {
                proof: proof(Method::Totp, "step:200"),
            },
        ))
        .await
        .then_expect_error(UserError::LockedOut {
            until: t0() + Duration::minutes(5),
            admin_required: false,
        });
    // After the window a valid code works and resets the count.
    tf().given(given)
        .when_async(cmd(
            t0() + Duration::minutes(6),
            UserAction::Verify {
                proof: proof(Method::Totp, "step:200"),
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::CodeVerified {
            method: Method::Totp,
            totp_step: Some(200),
            at: t0() + Duration::minutes(6),
        }]);
}

#[test]
fn repeated_lockouts_back_off_and_the_hundredth_failure_needs_an_admin() {
    let events = failures(100, Method::Totp);
    let lockouts: Vec<(u32, Duration, bool)> = events
        .iter()
        .filter_map(|e| match e {
            UserEvent::UserLockedOut {
                until,
                lockout,
                admin_required,
                at,
            } => Some((*lockout, *until - *at, *admin_required)),
            _ => None,
        })
        .collect();
    assert_eq!(lockouts.len(), 10);
    assert_eq!(lockouts[0], (1, Duration::minutes(5), false));
    assert_eq!(lockouts[1], (2, Duration::minutes(10), false));
    assert!(lockouts[8].1 > lockouts[7].1);
    assert!(lockouts[9].2, "the 100th failure requires an admin");
    let mut user = User::default();
    for e in enrolled().into_iter().chain(events) {
        cqrs_es::Aggregate::apply(&mut user, e);
    }
    assert!(user.locked_until(t0() + Duration::days(3650)).is_some());
}

#[tokio::test]
async fn an_admin_clears_a_lockout() {
    let mut given = enrolled();
    given.extend(failures(10, Method::Totp));
    let by = ApiKeyId::parse("admin0001").unwrap();
    let reason = Reason::parse("called support").unwrap();
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::ClearLockout {
                by: by.clone(),
                reason: reason.clone(),
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::LockoutCleared {
            by,
            reason,
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
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::VerificationFailed {
            method: Method::RecoveryCode,
            consecutive_failures: 1,
            at: t0(),
        }]);
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
async fn a_reset_needs_a_known_user_and_clears_everything() {
    let by = ApiKeyId::parse("admin0001").unwrap();
    let reason = Reason::parse("lost phone").unwrap();
    tf().given_no_previous_events()
        .when_async(cmd(
            t0(),
            UserAction::Reset {
                by: by.clone(),
                reason: reason.clone(),
            },
        ))
        .await
        .then_expect_error(UserError::UnknownUser);
    let mut user = User::default();
    let mut events = enrolled();
    events.extend(failures(10, Method::Totp));
    events.push(UserEvent::TwoFactorReset {
        by,
        reason,
        at: t0(),
    });
    for e in events {
        cqrs_es::Aggregate::apply(&mut user, e);
    }
    assert!(!user.enabled());
    assert_eq!(user.recovery_codes_remaining(), 0);
    assert_eq!(user.locked_until(t0()), None);
    assert!(user.exists());
}

#[tokio::test]
async fn a_services_failure_is_an_error_not_a_wrong_code() {
    tf().given(vec![UserEvent::TotpEnrollmentStarted {
        secret: SealedSecret::from_encoded("broken".into()),
        algorithm: TotpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        label: "alice".into(),
        at: t0(),
    }])
    .when_async(cmd(
        t0(),
        UserAction::ConfirmTotp {
            code: "step:1".into(),
            recovery_codes: codes("r"),
        },
    ))
    .await
    .then_expect_error(UserError::Services(ServicesError(
        "data key unavailable".into(),
    )));
}

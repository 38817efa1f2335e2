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

    fn challenge_code_matches(
        &self,
        _user: &UserRef,
        challenge_id: &str,
        _digits: u8,
        code: &str,
    ) -> bool {
        code == format!("code-of-{challenge_id}")
    }
}

pub(super) fn tf() -> TestFramework<User> {
    TestFramework::with(Arc::new(Codes) as Arc<dyn UserServices>)
}

pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

pub(super) fn cmd(at: DateTime<Utc>, action: UserAction) -> UserCommand {
    UserCommand {
        user: UserRef {
            tenant: TenantId::parse("acme").unwrap(),
            user: UserId::parse("alice").unwrap(),
        },
        at,
        action,
    }
}

pub(super) fn codes(prefix: &str) -> Vec<KeyedHash> {
    (0..10)
        .map(|i| KeyedHash::from_hex(format!("h-{prefix}{i}")))
        .collect()
}

pub(super) fn proof(method: Method, code: &str) -> Proof {
    Proof {
        method,
        code: code.into(),
        challenge_id: None,
    }
}

pub(super) fn started() -> UserEvent {
    UserEvent::TotpEnrollmentStarted {
        secret: SealedSecret::from_encoded("sealed".into()),
        algorithm: TotpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        at: t0(),
    }
}

/// An enrolled user whose last accepted step is 100, with recovery codes r0..r9.
pub(super) fn enrolled() -> Vec<UserEvent> {
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

pub(super) fn failures(n: u32, method: Method) -> Vec<UserEvent> {
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
                proof: None,
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
                proof: None,
                code: "nope".into(),
                recovery_codes: codes("r"),
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
async fn nothing_to_confirm_without_an_enrollment() {
    tf().given_no_previous_events()
        .when_async(cmd(
            t0(),
            UserAction::ConfirmTotp {
                proof: None,
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
                trust: None,
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
async fn the_tenth_failure_locks_for_five_minutes() {
    let mut given = enrolled();
    given.extend(failures(9, Method::Totp));
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::Verify {
                proof: proof(Method::RecoveryCode, "wrong"),
                trust: None,
            },
        ))
        .await
        .then_expect_events(vec![
            UserEvent::VerificationFailed {
                challenge_id: None,
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
                trust: None,
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
                trust: None,
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::CodeVerified {
            challenge_id: None,
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
        at: t0(),
    }])
    .when_async(cmd(
        t0(),
        UserAction::ConfirmTotp {
            proof: None,
            code: "step:1".into(),
            recovery_codes: codes("r"),
        },
    ))
    .await
    .then_expect_error(UserError::Services(ServicesError(
        "data key unavailable".into(),
    )));
}

// ---- email and SMS channels, challenges ----

use crate::channel::{Channel, Purpose};

pub(super) fn challenge(id: &str, at: DateTime<Utc>) -> NewChallenge {
    NewChallenge {
        id: id.into(),
        digits: 6,
        expires_at: at + Duration::minutes(10),
        idempotency_key: None,
    }
}

pub(super) fn sent(id: &str, channel: Channel, purpose: Purpose, at: DateTime<Utc>) -> UserEvent {
    UserEvent::CodeSent {
        challenge_id: id.into(),
        channel,
        purpose,
        digits: 6,
        expires_at: at + Duration::minutes(10),
        sent_to: "+995 *** ** 34 56".into(),
        idempotency_key: None,
        at,
    }
}

/// A user whose phone is verified (and preferred), with recovery codes.
pub(super) fn phone_user() -> Vec<UserEvent> {
    vec![
        UserEvent::PhoneFactorAdded {
            replacing: false,
            phone: SealedSecret::from_encoded("sealed-phone".into()),
            calling_code: "995".into(),
            region: Some("GE".into()),
            masked: "+995 *** ** 34 56".into(),
            at: t0(),
        },
        sent("c0", Channel::Sms, Purpose::VerifyChannel, t0()),
        UserEvent::ChannelVerified {
            channel: Channel::Sms,
            challenge_id: "c0".into(),
            at: t0(),
        },
        UserEvent::RecoveryCodesGenerated {
            hashes: codes("r"),
            at: t0(),
        },
        UserEvent::PreferredChannelChosen {
            channel: Channel::Sms,
            at: t0(),
        },
    ]
}

fn sms_proof(challenge: &str, code: &str) -> Proof {
    Proof {
        method: Method::Sms,
        code: code.into(),
        challenge_id: Some(challenge.into()),
    }
}

#[tokio::test]
async fn adding_a_phone_registers_it_unverified_and_sends_a_verification_code() {
    tf().given_no_previous_events()
        .when_async(cmd(
            t0(),
            UserAction::AddPhone {
                proof: None,
                phone: SealedSecret::from_encoded("sealed-phone".into()),
                calling_code: "995".into(),
                region: Some("GE".into()),
                masked: "+995 *** ** 34 56".into(),
                challenge: challenge("c0", t0()),
            },
        ))
        .await
        .then_expect_events(vec![
            UserEvent::PhoneFactorAdded {
                replacing: false,
                phone: SealedSecret::from_encoded("sealed-phone".into()),
                calling_code: "995".into(),
                region: Some("GE".into()),
                masked: "+995 *** ** 34 56".into(),
                at: t0(),
            },
            sent("c0", Channel::Sms, Purpose::VerifyChannel, t0()),
        ]);
}

#[tokio::test]
async fn confirming_the_first_channel_enables_2fa_with_recovery_codes() {
    let given = phone_user()[..2].to_vec();
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::ConfirmChannel {
                proof: None,
                challenge_id: "c0".into(),
                code: "code-of-c0".into(),
                recovery_codes: codes("r"),
            },
        ))
        .await
        .then_expect_events(phone_user()[2..].to_vec());
}

#[tokio::test]
async fn five_wrong_codes_end_a_challenge() {
    let mut given = phone_user()[..2].to_vec();
    for i in 1..=5 {
        given.push(UserEvent::VerificationFailed {
            method: Method::Sms,
            challenge_id: Some("c0".into()),
            consecutive_failures: i,
            at: t0(),
        });
    }
    tf().given(given)
        .when_async(cmd(
            t0(),
            UserAction::ConfirmChannel {
                proof: None,
                challenge_id: "c0".into(),
                code: "code-of-c0".into(),
                recovery_codes: codes("r"),
            },
        ))
        .await
        .then_expect_error(UserError::CodeExpired(
            "too many wrong codes for this challenge: request a new one",
        ));
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
async fn a_resend_within_thirty_seconds_or_with_the_same_key_reuses_the_challenge() {
    let mut given = phone_user();
    given.push(sent("s1", Channel::Sms, Purpose::SignIn, t0()));
    tf().given(given.clone())
        .when_async(cmd(
            t0() + Duration::seconds(29),
            UserAction::SendCode {
                channel: None,
                challenge: challenge("s2", t0()),
            },
        ))
        .await
        .then_expect_events(vec![]);
    let later = t0() + Duration::seconds(31);
    tf().given(given)
        .when_async(cmd(
            later,
            UserAction::SendCode {
                channel: Some(Channel::Sms),
                challenge: challenge("s2", later),
            },
        ))
        .await
        .then_expect_events(vec![sent("s2", Channel::Sms, Purpose::SignIn, later)]);
}

#[tokio::test]
async fn at_most_five_codes_per_destination_in_ten_minutes() {
    let mut given = phone_user(); // c0 was sent at t0
    for i in 1..5 {
        given.push(sent(
            &format!("s{i}"),
            Channel::Sms,
            Purpose::SignIn,
            t0() + Duration::minutes(i),
        ));
    }
    let at = t0() + Duration::minutes(6);
    tf().given(given)
        .when_async(cmd(
            at,
            UserAction::SendCode {
                channel: None,
                challenge: challenge("s9", at),
            },
        ))
        .await
        .then_expect_error(UserError::RateLimited {
            retry_after_seconds: 4 * 60,
        });
}

#[tokio::test]
async fn sending_needs_a_verified_channel_and_a_choice() {
    tf().given(phone_user())
        .when_async(cmd(
            t0(),
            UserAction::SendCode {
                channel: Some(Channel::Email),
                challenge: challenge("s1", t0()),
            },
        ))
        .await
        .then_expect_error(UserError::MethodNotEnrolled(Method::Email));
    let mut totp_only = enrolled();
    totp_only.truncate(3);
    tf().given(totp_only)
        .when_async(cmd(
            t0(),
            UserAction::SendCode {
                channel: None,
                challenge: challenge("s1", t0()),
            },
        ))
        .await
        .then_expect_error(UserError::NoPreferredChannel);
}

#[tokio::test]
async fn a_delivery_is_recorded_once() {
    let mut given = phone_user();
    given.push(sent("s1", Channel::Sms, Purpose::SignIn, t0()));
    let record = || {
        cmd(
            t0(),
            UserAction::RecordDelivery {
                challenge_id: "s1".into(),
                outcome: DeliveryOutcome::Delivered {
                    provider_message_id: Some("SM1".into()),
                },
            },
        )
    };
    tf().given(given.clone())
        .when_async(record())
        .await
        .then_expect_events(vec![UserEvent::CodeDelivered {
            challenge_id: "s1".into(),
            provider_message_id: Some("SM1".into()),
            at: t0(),
        }]);
    given.push(UserEvent::CodeDelivered {
        challenge_id: "s1".into(),
        provider_message_id: Some("SM1".into()),
        at: t0(),
    });
    tf().given(given)
        .when_async(record())
        .await
        .then_expect_events(vec![]);
}

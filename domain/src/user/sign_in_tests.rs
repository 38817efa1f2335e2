//! The sign-in decision: what a sign-in needs, and why.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use super::fixtures::*;
use super::*;
use crate::tenant::KeyedHash;
use crate::Method;

fn all_methods() -> BTreeSet<Method> {
    [
        Method::Totp,
        Method::Email,
        Method::Sms,
        Method::RecoveryCode,
    ]
    .into_iter()
    .collect()
}

fn policy() -> SignInPolicy {
    SignInPolicy {
        enforced_since: None,
        grace_days: 7,
        sso_bypass: false,
        trusted_device_days: 30,
        allowed_methods: all_methods(),
    }
}

fn attempt(policy: SignInPolicy) -> SignInAttempt {
    SignInAttempt {
        device_token_hash: None,
        sso_login: false,
        policy,
    }
}

/// A user first seen at `at` (asked about once, never enrolled).
fn seen(at: DateTime<Utc>) -> Vec<UserEvent> {
    vec![UserEvent::SignInEvaluated {
        required: false,
        reason: SignInReason::NotEnrolled,
        methods: vec![],
        trusted_device: None,
        device_token_rejected: false,
        sso_login: false,
        locked_until: None,
        grace_ends_at: None,
        at,
    }]
}

fn with_token(id: &str, policy: SignInPolicy) -> SignInAttempt {
    SignInAttempt {
        device_token_hash: Some(KeyedHash::from_hex(format!("token-{id}"))),
        ..attempt(policy)
    }
}

#[test]
fn without_2fa_and_without_enforcement_nothing_is_required() {
    let d = User::default().sign_in_decision(&attempt(policy()), t0());
    assert_eq!(d.reason, SignInReason::NotEnrolled);
    assert!(!d.required);
    assert!(d.methods.is_empty());
    assert_eq!(d.grace_ends_at, None);
}

#[test]
fn an_enrolled_user_needs_a_factor_from_the_methods_the_policy_allows() {
    let user = state(enrolled());
    let d = user.sign_in_decision(&attempt(policy()), t0());
    assert_eq!(d.reason, SignInReason::Enrolled);
    assert!(d.required);
    assert_eq!(d.methods, vec![Method::Totp, Method::RecoveryCode]);
    let mut strict = policy();
    strict.allowed_methods.remove(&Method::RecoveryCode);
    let d = user.sign_in_decision(&attempt(strict), t0());
    assert_eq!(d.methods, vec![Method::Totp]);
}

#[test]
fn enforcement_starts_the_grace_period_of_users_already_known() {
    let first_seen = t0();
    let enforced = t0() + Duration::days(3);
    let mut p = policy();
    p.enforced_since = Some(enforced);
    let user = state(seen(first_seen));
    // Grace counts from the enforcement, not from the first sighting.
    let ends = enforced + Duration::days(7);
    let inside = user.sign_in_decision(&attempt(p.clone()), ends - Duration::seconds(1));
    assert_eq!(inside.reason, SignInReason::GracePeriod);
    assert!(!inside.required);
    assert_eq!(inside.grace_ends_at, Some(ends));
    let after = user.sign_in_decision(&attempt(p), ends);
    assert_eq!(after.reason, SignInReason::EnrollmentRequired);
    assert!(after.required);
    assert_eq!(
        after.methods,
        vec![Method::Totp, Method::Email, Method::Sms],
        "enrollment offers the methods that can stand alone"
    );
}

#[test]
fn users_first_seen_after_enforcement_start_their_grace_when_first_seen() {
    let enforced = t0();
    let first_seen = t0() + Duration::days(30);
    let mut p = policy();
    p.enforced_since = Some(enforced);
    let user = state(seen(first_seen));
    let d = user.sign_in_decision(&attempt(p.clone()), first_seen + Duration::days(6));
    assert_eq!(d.reason, SignInReason::GracePeriod);
    assert_eq!(d.grace_ends_at, Some(first_seen + Duration::days(7)));
    // A user never seen before is first seen now.
    let now = t0() + Duration::days(100);
    let d = User::default().sign_in_decision(&attempt(p.clone()), now);
    assert_eq!(d.reason, SignInReason::GracePeriod);
    assert_eq!(d.grace_ends_at, Some(now + Duration::days(7)));
    // No grace period at all: enrollment is required at once.
    p.grace_days = 0;
    let d = User::default().sign_in_decision(&attempt(p), now);
    assert_eq!(d.reason, SignInReason::EnrollmentRequired);
}

#[test]
fn sso_sign_ins_skip_the_factor_only_when_the_tenant_says_so() {
    let user = state(enrolled());
    let mut sso = attempt(policy());
    sso.sso_login = true;
    assert_eq!(
        user.sign_in_decision(&sso, t0()).reason,
        SignInReason::Enrolled
    );
    sso.policy.sso_bypass = true;
    let d = user.sign_in_decision(&sso, t0());
    assert_eq!(d.reason, SignInReason::SsoBypass);
    assert!(!d.required);
    // A password sign-in of the same user still needs the factor.
    let mut password = attempt(policy());
    password.policy.sso_bypass = true;
    assert_eq!(
        user.sign_in_decision(&password, t0()).reason,
        SignInReason::Enrolled
    );
}

#[test]
fn a_lockout_wins_over_every_other_reason() {
    let mut events = enrolled();
    events.extend(failures(10, Method::Totp));
    events.push(trusted("d1", t0(), 30));
    let user = state(events);
    let mut p = policy();
    p.sso_bypass = true;
    let mut a = with_token("d1", p);
    a.sso_login = true;
    let d = user.sign_in_decision(&a, t0() + Duration::minutes(1));
    assert_eq!(d.reason, SignInReason::LockedOut);
    assert!(d.required);
    assert!(d.methods.is_empty());
    assert_eq!(d.locked_until, Some(t0() + Duration::minutes(5)));
    // Once the lockout ends, the device is trusted again.
    let d = user.sign_in_decision(&a, t0() + Duration::minutes(5));
    assert_eq!(d.reason, SignInReason::SsoBypass);
}

#[test]
fn a_trusted_device_stands_in_for_the_factor_until_it_expires() {
    let mut events = enrolled();
    events.push(trusted("d1", t0(), 30));
    let user = state(events);
    let d = user.sign_in_decision(&with_token("d1", policy()), t0() + Duration::days(29));
    assert_eq!(d.reason, SignInReason::TrustedDevice);
    assert!(!d.required);
    assert_eq!(d.trusted_device.as_deref(), Some("d1"));
    assert!(!d.device_token_rejected);
    // Expired, unknown, or the policy has since shortened the lifetime or turned it off.
    let expired = user.sign_in_decision(&with_token("d1", policy()), t0() + Duration::days(30));
    let unknown = user.sign_in_decision(&with_token("d2", policy()), t0());
    let mut short = policy();
    short.trusted_device_days = 1;
    let shortened = user.sign_in_decision(&with_token("d1", short), t0() + Duration::days(2));
    let mut off = policy();
    off.trusted_device_days = 0;
    let turned_off = user.sign_in_decision(&with_token("d1", off), t0());
    for d in [expired, unknown, shortened, turned_off] {
        assert_eq!(d.reason, SignInReason::Enrolled);
        assert!(d.required);
        assert!(d.device_token_rejected);
        assert_eq!(d.trusted_device, None);
    }
}

#[test]
fn a_trusted_device_never_stands_in_for_a_missing_factor() {
    // Trusted, then 2FA was disabled (which revokes), and a stale token is presented.
    let mut events = seen(t0());
    events.push(trusted("d1", t0(), 30));
    let user = state(events);
    let d = user.sign_in_decision(&with_token("d1", policy()), t0());
    assert_eq!(d.reason, SignInReason::NotEnrolled);
}

#[tokio::test]
async fn every_evaluation_is_recorded_with_its_reason() {
    let mut p = policy();
    p.enforced_since = Some(t0());
    tf().given_no_previous_events()
        .when_async(cmd(
            t0(),
            UserAction::EvaluateSignIn {
                attempt: attempt(p),
            },
        ))
        .await
        .then_expect_events(vec![UserEvent::SignInEvaluated {
            required: false,
            reason: SignInReason::GracePeriod,
            methods: vec![],
            trusted_device: None,
            device_token_rejected: false,
            sso_login: false,
            locked_until: None,
            grace_ends_at: Some(t0() + Duration::days(7)),
            at: t0(),
        }]);
}

#[test]
fn reason_names_are_the_api_and_event_names() {
    for (reason, name) in [
        (SignInReason::NotEnrolled, "NOT_ENROLLED"),
        (SignInReason::Enrolled, "ENROLLED"),
        (SignInReason::PolicyEnforced, "POLICY_ENFORCED"),
        (SignInReason::GracePeriod, "GRACE_PERIOD"),
        (SignInReason::TrustedDevice, "TRUSTED_DEVICE"),
        (SignInReason::SsoBypass, "SSO_BYPASS"),
        (SignInReason::LockedOut, "LOCKED_OUT"),
        (SignInReason::EnrollmentRequired, "ENROLLMENT_REQUIRED"),
    ] {
        assert_eq!(reason.as_str(), name);
        assert_eq!(reason.to_string(), name);
        assert_eq!(serde_json::to_value(reason).unwrap(), name);
    }
}

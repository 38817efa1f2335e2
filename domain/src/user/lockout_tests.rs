//! Throttling: the lockout schedule and what a lockout refuses.

use chrono::Duration;

use super::fixtures::*;
use super::*;
use crate::Method;

#[test]
fn lockouts_double_and_are_capped() {
    assert_eq!(lockout_duration(1), Duration::minutes(5));
    assert_eq!(lockout_duration(2), Duration::minutes(10));
    assert_eq!(lockout_duration(4), Duration::minutes(40));
    assert_eq!(
        lockout_duration(9),
        Duration::hours(21) + Duration::minutes(20)
    );
    assert_eq!(lockout_duration(10), Duration::hours(24));
    assert_eq!(lockout_duration(500), Duration::hours(24));
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
        .then_expect_error(UserError::LockedOut(Lockout {
            until: t0() + Duration::minutes(5),
            admin_required: false,
            retry_after_seconds: 60,
        }));
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

#[test]
fn the_wait_counts_from_the_command_and_is_never_zero() {
    let until = t0() + Duration::minutes(5);
    let at = |d: Duration| Lockout::new(until, false, until - d).retry_after_seconds;
    assert_eq!(at(Duration::minutes(5)), 300);
    assert_eq!(at(Duration::milliseconds(1500)), 1);
    assert_eq!(at(Duration::zero()), 1, "a client never retries at once");
}

#[test]
fn the_caller_is_told_when_to_retry_or_that_an_admin_must_unlock() {
    let until = t0() + Duration::minutes(5);
    assert_eq!(
        UserError::LockedOut(Lockout::new(until, false, t0())).to_string(),
        "too many failed attempts: try again after 2026-11-23T12:05:00+00:00"
    );
    assert_eq!(
        UserError::LockedOut(Lockout::new(until, true, t0())).to_string(),
        "too many failed attempts: the account is locked until an administrator unlocks it"
    );
}

#[test]
fn an_admin_lock_has_no_end_of_its_own() {
    let events = failures(100, Method::Totp);
    let Some(UserEvent::UserLockedOut {
        until,
        admin_required,
        at,
        ..
    }) = events.last()
    else {
        panic!("the 100th failure locks");
    };
    assert!(admin_required);
    assert_eq!(*until, *at + Duration::days(365 * 100));
}

#[test]
fn a_passing_code_ends_the_count_and_the_lockout() {
    let mut events = enrolled();
    events.extend(failures(10, Method::Totp));
    let locked = state(events.clone());
    assert_eq!(locked.consecutive_failures(), 10);
    assert_eq!(locked.locked_until(t0()), Some(t0() + Duration::minutes(5)));
    let after = t0() + Duration::minutes(6);
    events.push(UserEvent::RecoveryCodeUsed {
        index: 0,
        remaining: 9,
        at: after,
    });
    let user = state(events);
    assert_eq!(user.consecutive_failures(), 0);
    assert_eq!(user.locked_until(after), None);
    assert_eq!(user.last_verified_at(), Some(after));
    // The next ten failures are a first lockout again, not a second.
    let next = user.failure_on(Method::Totp, None, after);
    assert_eq!(next.len(), 1);
}
